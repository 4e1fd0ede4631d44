"""ogbg-* datasets (issue 24): a miniature set in OGB's exact on-disk layout loads through ``ogb``,
its scaffold split comes from ``get_idx_split()``, it is scored by OGB's Evaluator, and OGB's
molecule models run on its batches. Missing files are refused without a prompt."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from ogb.utils.features import get_atom_feature_dims, get_bond_feature_dims

from gnnkit.errors import GnnkitError
from gnnkit.graphs import GraphBatcher, GraphLoader, graph_loss, load_ogbg, official_split, score
from gnnkit.models.mol import MolGIN


def _csv(path: Path, rows) -> None:
    import pandas as pd

    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_csv(path, compression="gzip", header=False, index=False)


def write_mini_ogbg(root: Path, name: str = "ogbg-molhiv", graphs: int = 60, tasks: int = 1, seed: int = 0):
    """OGB's layout for ``name`` (``<root>/ogbg_molhiv/{RELEASE_v1.txt, raw/*.csv.gz,
    split/scaffold/*.csv.gz}``): chain molecules whose label says whether atom type 5 occurs.
    Returns the per-graph (nodes, undirected edges, labels)."""
    rng = np.random.default_rng(seed)
    folder = root / name.replace("-", "_")
    (folder).mkdir(parents=True)
    (folder / "RELEASE_v1.txt").write_text("mini\n")
    nodes = rng.integers(2, 9, graphs)
    atom_dims, bond_dims = np.array(get_atom_feature_dims()), np.array(get_bond_feature_dims())
    atoms = [rng.integers(0, np.minimum(atom_dims, 8), (n, 9)) for n in nodes]
    edges = [np.stack([np.arange(n - 1), np.arange(1, n)], 1) for n in nodes]  # a chain, stored once
    label = np.array([[float((a[:, 0] == 5).any())] * tasks for a in atoms])
    if tasks > 1:
        label[rng.random(label.shape) < 0.3] = np.nan
    raw = folder / "raw"
    _csv(raw / "edge.csv.gz", np.concatenate(edges))
    _csv(raw / "num-node-list.csv.gz", nodes[:, None])
    _csv(raw / "num-edge-list.csv.gz", np.array([len(e) for e in edges])[:, None])
    _csv(raw / "node-feat.csv.gz", np.concatenate(atoms))
    _csv(raw / "edge-feat.csv.gz", rng.integers(0, np.minimum(bond_dims, 3), (sum(len(e) for e in edges), 3)))
    _csv(raw / "graph-label.csv.gz", label if tasks > 1 else label.astype(np.int64))
    perm = rng.permutation(graphs)
    cut = [int(0.8 * graphs), int(0.9 * graphs)]
    for part, ids in zip(("train", "valid", "test"), np.split(perm, cut)):
        _csv(folder / "split" / "scaffold" / f"{part}.csv.gz", np.sort(ids)[:, None])
    return nodes, edges, label, dict(zip(("train", "valid", "test"), np.split(perm, cut)))


def test_mini_molhiv_loads_through_ogb(tmp_path):
    nodes, edges, label, split = write_mini_ogbg(tmp_path)
    coll = load_ogbg("ogbg-molhiv", tmp_path)
    assert coll.num_graphs == 60 and coll.task == "binary" and coll.y.shape == (60, 1)
    assert coll.node_ptr.diff().tolist() == nodes.tolist()
    assert coll.edge_ptr.diff().tolist() == [2 * len(e) for e in edges]  # ogb adds the inverse edges
    assert coll.x.dtype == torch.long and coll.x.shape == (int(nodes.sum()), 9)
    assert coll.edge_attr.shape == (coll.num_edges, 3)
    assert torch.equal(coll.y.view(-1), torch.as_tensor(label[:, 0], dtype=torch.float))
    got = official_split(coll)
    for part in ("train", "valid", "test"):
        assert sorted(got[part].tolist()) == sorted(split[part].tolist())
    assert (tmp_path / "ogbg_molhiv" / "processed" / "geometric_data_processed.pt").is_file()
    again = load_ogbg("ogbg-molhiv", tmp_path)  # from processed/, through weights_only loads
    assert torch.equal(again.edge_index, coll.edge_index)


def test_nan_labels_of_a_multitask_set(tmp_path):
    _, _, label, _ = write_mini_ogbg(tmp_path, "ogbg-molpcba", tasks=128)
    coll = load_ogbg("ogbg-molpcba", tmp_path)
    assert coll.y.shape == (60, 128)
    assert torch.equal(torch.isnan(coll.y), torch.as_tensor(np.isnan(label)))


def test_missing_files_refused_without_prompt(tmp_path, monkeypatch):
    monkeypatch.setattr("builtins.input", lambda *a: pytest.fail("asked on stdin"))
    with pytest.raises(GnnkitError, match="ogbg-molhiv not found: expected RELEASE_v1.txt") as info:
        load_ogbg("ogbg-molhiv", tmp_path)
    assert "\n" not in str(info.value)
    write_mini_ogbg(tmp_path)
    (tmp_path / "ogbg_molhiv" / "RELEASE_v1.txt").unlink()  # ogb would ask whether to update
    with pytest.raises(GnnkitError, match="RELEASE_v1.txt"):
        load_ogbg("ogbg-molhiv", tmp_path)
    with pytest.raises(GnnkitError, match="unknown OGB graph dataset"):
        load_ogbg("ogbg-nothing", tmp_path)


@pytest.mark.parametrize("virtual_node", [False, True])
def test_mol_gin_learns_the_mini_set_and_evaluator_scores_it(tmp_path, virtual_node):
    write_mini_ogbg(tmp_path, graphs=120)
    coll = load_ogbg("ogbg-molhiv", tmp_path)
    split = official_split(coll)
    torch.manual_seed(0)
    model = MolGIN(1, 32, num_layers=2, dropout=0.0, virtual_node=virtual_node)
    batcher = GraphBatcher(coll, model.adj_norm, edges=True)
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    train_ids = torch.cat([split["train"], split["valid"]])
    for epoch in range(30):
        loader = GraphLoader(batcher, train_ids, 32, seed=0)
        loader.set_epoch(epoch)
        model.train()
        for b in loader:
            opt.zero_grad()
            graph_loss(model(b.x, b.adj, b.ptr, edge_index=b.edge_index, edge_attr=b.edge_attr), b.y, "binary").backward()
            opt.step()
    model.eval()
    b = batcher(torch.arange(coll.num_graphs))
    with torch.no_grad():
        logits = model(b.x, b.adj, b.ptr, edge_index=b.edge_index, edge_attr=b.edge_attr)
    figures = score(logits[train_ids], b.y[train_ids], "binary", evaluator_name="ogbg-molhiv")
    assert figures["rocauc"] == pytest.approx(figures["roc_auc"])
    assert figures["rocauc"] > 0.9  # the label is a function of the atom types: learnable


def test_out_of_range_atom_category_refused(tmp_path):
    write_mini_ogbg(tmp_path)
    import pandas as pd

    path = tmp_path / "ogbg_molhiv" / "raw" / "node-feat.csv.gz"
    feats = pd.read_csv(path, header=None).values
    feats[3, 1] = 50  # chirality has 4 categories
    _csv(path, feats)
    with pytest.raises(GnnkitError, match="node-feat column 1 holds 50 at row 3"):
        load_ogbg("ogbg-molhiv", tmp_path)


@pytest.mark.parametrize("virtual_node", [False, True])
def test_mol_gin_batch_equals_each_graph_alone(tmp_path, virtual_node):
    write_mini_ogbg(tmp_path)
    coll = load_ogbg("ogbg-molhiv", tmp_path)
    torch.manual_seed(0)
    model = MolGIN(1, 16, num_layers=3, virtual_node=virtual_node)
    batcher = GraphBatcher(coll, model.adj_norm, edges=True)
    model.train()
    b = batcher(torch.arange(coll.num_graphs))
    model(b.x, b.adj, b.ptr, edge_index=b.edge_index, edge_attr=b.edge_attr)  # move the BatchNorm statistics
    model.eval()
    idx = torch.tensor([9, 2, 40, 2])
    b = batcher(idx)
    with torch.no_grad():
        out = model(b.x, b.adj, b.ptr, edge_index=b.edge_index, edge_attr=b.edge_attr)
        alone = [model(g.x, g.adj, g.ptr, edge_index=g.edge_index, edge_attr=g.edge_attr)
                 for g in (batcher(i.view(1)) for i in idx)]
    torch.testing.assert_close(out, torch.cat(alone), rtol=1e-5, atol=1e-5)
