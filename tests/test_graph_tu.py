"""TU datasets (issue 24): MUTAG and ENZYMES load from a temporary copy of the shared data (the
shared folder stays untouched), and GIN trained with the block-diagonal batching learns MUTAG
well above chance."""
from __future__ import annotations

import pytest
import torch

from conftest import shared_data_dir
from gnnkit.errors import GnnkitError
from gnnkit.fileio import writable_copy
from gnnkit.graphs import GraphBatcher, GraphLoader, accuracy, graph_loss, load_tu, stratified_kfold
from gnnkit.models.gin import GIN


@pytest.fixture
def tu_root(tmp_path):
    """A writable copy of ``shared/data/TU`` (PyG writes ``processed/`` beside ``raw/``)."""
    src = shared_data_dir() / "TU"
    if not (src / "MUTAG" / "raw").is_dir() or not (src / "ENZYMES" / "raw").is_dir():
        pytest.skip(f"TU raw files (MUTAG, ENZYMES) not found under {src} (set GNNKIT_SHARED_DATA)")
    return writable_copy(src, tmp_path / "TU")  # without the shared folder's read-only bits


@pytest.mark.parametrize("name, graphs, nodes, edges, features, classes", [
    ("MUTAG", 188, 3371, 7442, 7, 2),
    ("ENZYMES", 600, 19580, 74564, 3, 6),
])
def test_tu_sets_load_from_a_copy(tu_root, name, graphs, nodes, edges, features, classes):
    coll = load_tu(name, tu_root)
    assert (coll.num_graphs, coll.num_nodes, coll.num_edges) == (graphs, nodes, edges)
    assert (coll.num_features, coll.num_classes) == (features, classes)
    assert torch.equal(torch.bincount(coll.y), torch.bincount(coll.y, minlength=classes))  # labels 0..C-1
    assert (tu_root / name / "processed").is_dir()
    assert not (shared_data_dir() / "TU" / name / "processed").exists()


def test_enzymes_node_attributes_and_degree_features(tu_root):
    assert load_tu("ENZYMES", tu_root, use_node_attr=True).num_features == 21
    deg = load_tu("MUTAG", tu_root, degree="replace")
    assert deg.num_features == 5  # MUTAG's largest degree is 4
    assert torch.equal(deg.x.argmax(1), torch.bincount(deg.edge_index[1], minlength=deg.num_nodes))


def test_missing_tu_files_refused(tmp_path):
    (tmp_path / "MUTAG" / "raw").mkdir(parents=True)
    with pytest.raises(GnnkitError, match="MUTAG_A.txt, MUTAG_graph_indicator.txt, MUTAG_graph_labels.txt"):
        load_tu("MUTAG", tmp_path)


def test_gin_learns_mutag_above_chance(tu_root):
    coll = load_tu("MUTAG", tu_root)
    train, test = stratified_kfold(coll.y, 5, seed=0)[0]
    torch.manual_seed(0)
    model = GIN(coll.num_features, 32, coll.num_classes, num_layers=4, dropout=0.5)
    batcher = GraphBatcher(coll, model.adj_norm)
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    loader = GraphLoader(batcher, train, 32, seed=0)
    for epoch in range(40):
        loader.set_epoch(epoch)
        model.train()
        for b in loader:
            opt.zero_grad()
            graph_loss(model(b.x, b.adj, b.ptr), b.y).backward()
            opt.step()
    model.eval()
    b = batcher(test)
    with torch.no_grad():
        acc = accuracy(model(b.x, b.adj, b.ptr), b.y)
    majority = float(torch.bincount(coll.y[test]).max()) / test.numel()  # chance: 0.66
    assert acc >= majority + 0.1, (acc, majority)


def test_malformed_tu_files_refused(tu_root):
    raw = tu_root / "MUTAG" / "raw"
    lines = (raw / "MUTAG_graph_indicator.txt").read_text().splitlines()
    (raw / "MUTAG_graph_indicator.txt").write_text("\n".join(lines[:-40] + ["x"]) + "\n")
    with pytest.raises(GnnkitError, match="MUTAG: cannot read the TU files") as info:
        load_tu("MUTAG", tu_root)
    assert "\n" not in str(info.value)


def test_featureless_tu_set_gets_degree_features(tmp_path):
    """IMDB-BINARY style: no node labels; an isolated last node keeps its graph's node count."""
    _tu_files(tmp_path, "TOY", "1, 2\n2, 1\n2, 3\n3, 2\n4, 5\n5, 4\n", "1\n1\n1\n2\n2\n2\n", "1\n-1\n")
    for _ in range(2):  # raw files, then PyG's processed file
        coll = load_tu("TOY", tmp_path)
        assert coll.node_ptr.tolist() == [0, 3, 6] and coll.y.tolist() == [1, 0]
        assert coll.x.argmax(1).tolist() == [1, 2, 1, 1, 1, 0]


def _tu_files(root, name: str, edges: str, indicator: str, labels: str) -> None:
    """``root/name/raw`` with the three required TU files."""
    raw = root / name / "raw"
    raw.mkdir(parents=True)
    for kind, text in (("A", edges), ("graph_indicator", indicator), ("graph_labels", labels)):
        (raw / f"{name}_{kind}.txt").write_text(text)


class _Payload:
    """Unpickling it would create ``path`` (the proof that a file ran code)."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return open, (self.path, "w")


def _toy(root):
    _tu_files(root, "TOY", "1, 2\n2, 1\n3, 4\n4, 3\n", "1\n1\n2\n2\n", "0\n1\n")


@pytest.mark.parametrize("crafted", ["data.pt", "pre_transform.pt"])
def test_crafted_processed_file_is_refused_and_never_runs(tmp_path, crafted):
    """PyG's TUDataset retries a file weights_only refuses with weights_only=False; gnnkit must not."""
    _toy(tmp_path)
    load_tu("TOY", tmp_path)  # PyG writes processed/ (data.pt, pre_transform.pt, pre_filter.pt)
    marker = tmp_path / "MARKER"
    torch.save(_Payload(marker), tmp_path / "TOY" / "processed" / crafted)
    with pytest.raises(GnnkitError, match=r"TOY: refused .*processed: a file there does not load with weights_only"):
        load_tu("TOY", tmp_path)
    assert not marker.exists()


def test_read_only_folder_is_refused_even_for_root(tmp_path):
    """A folder without write bits is meant read-only (a shared copy): PyG's processed/ never goes there."""
    _toy(tmp_path)
    (tmp_path / "TOY").chmod(0o555)
    try:
        with pytest.raises(GnnkitError, match="TOY is not writable: PyG writes processed/ there; pass a copy"):
            load_tu("TOY", tmp_path)
        assert not (tmp_path / "TOY" / "processed").exists()
    finally:
        (tmp_path / "TOY").chmod(0o755)
