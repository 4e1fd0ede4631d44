"""OGB through the real ogb code, on a miniature ogbn-arxiv in OGB's exact on-disk layout.

The miniature: 12 nodes on a directed ring 0 -> 1 -> ... -> 11 -> 0, 4 features, labels
``i % 3``, years 2000..2011, time split train 0-5 / valid 6-8 / test 9-11.
"""
import builtins
import gzip

import numpy as np
import pytest
import torch

from gnnkit.data import is_present, load
from gnnkit.errors import GnnkitError


def _csv_gz(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wt") as f:
        for row in rows:
            f.write(",".join(str(v) for v in np.atleast_1d(row)) + "\n")


def mini_arxiv(root, n=12):
    folder = root / "ogbn_arxiv"
    folder.mkdir(parents=True)
    (folder / "RELEASE_v1.txt").write_text("miniature for tests\n")
    src = np.arange(n)
    _csv_gz(folder / "raw/edge.csv.gz", np.stack([src, (src + 1) % n], 1))
    _csv_gz(folder / "raw/num-node-list.csv.gz", [n])
    _csv_gz(folder / "raw/num-edge-list.csv.gz", [n])
    _csv_gz(folder / "raw/node-feat.csv.gz", np.random.default_rng(0).normal(size=(n, 4)).round(4))
    _csv_gz(folder / "raw/node-label.csv.gz", src[:, None] % 3)
    _csv_gz(folder / "raw/node_year.csv.gz", 2000 + src[:, None])
    for part, idx in (("train", range(0, 6)), ("valid", range(6, 9)), ("test", range(9, 12))):
        _csv_gz(folder / f"split/time/{part}.csv.gz", list(idx))
    return folder


@pytest.fixture
def never_prompt(monkeypatch):
    def fail(*_a, **_k):
        raise AssertionError("input() was called")

    monkeypatch.setattr(builtins, "input", fail)


def test_mini_arxiv_loads_through_ogb(tmp_path, never_prompt):
    mini_arxiv(tmp_path)
    assert is_present("ogbn-arxiv", tmp_path)
    for _ in range(2):  # first run processes the raw files, the second reads processed/
        data = load("ogbn-arxiv", root=tmp_path)
        assert data.x.shape == (12, 4) and data.x.dtype == torch.float32
        assert data.y.tolist() == [i % 3 for i in range(12)] and data.y.dtype == torch.long
        assert data.edge_index[:, :3].tolist() == [[0, 1, 2], [1, 2, 3]]  # directed, as OGB gives it
        assert data.train_mask.nonzero().view(-1).tolist() == list(range(6))
        assert data.val_mask.nonzero().view(-1).tolist() == [6, 7, 8]
        assert int(data.test_mask.sum()) == 3
        assert data.num_classes == 40 and data.evaluator_name == "ogbn-arxiv" and data.name == "ogbn-arxiv"
    assert (tmp_path / "ogbn_arxiv" / "processed" / "geometric_data_processed.pt").is_file()
    assert load("ogbn-arxiv", root=tmp_path, undirected=True).edge_index.size(1) == 24


def test_evaluator_accepts_the_name(tmp_path, never_prompt):
    from ogb.nodeproppred import Evaluator

    mini_arxiv(tmp_path)
    data = load("ogbn-arxiv", root=tmp_path)
    y = data.y[data.test_mask].view(-1, 1)
    assert Evaluator(data.evaluator_name).eval({"y_true": y, "y_pred": y})["acc"] == 1.0


def test_missing_dataset_names_folder_and_files(tmp_path, never_prompt):
    with pytest.raises(GnnkitError, match=r"ogbn-products not found: expected RELEASE_v1\.txt, raw/edge\.csv\.gz, "
                                          r".*split/sales_ranking/test\.csv\.gz under .*ogbn_products"):
        load("ogbn-products", root=tmp_path)


def test_outdated_folder_never_prompts(tmp_path, never_prompt):
    # Without RELEASE_v1.txt ogb would ask "Will you update the dataset now? (y/N)" on stdin.
    folder = mini_arxiv(tmp_path)
    (folder / "RELEASE_v1.txt").unlink()
    with pytest.raises(GnnkitError, match=r"expected RELEASE_v1\.txt under .*ogbn_arxiv"):
        load("ogbn-arxiv", root=tmp_path)


def test_unsupported_ogb_dataset(tmp_path):
    with pytest.raises(GnnkitError, match="ogbn-mag is not supported"):
        load("ogbn-mag", root=tmp_path)


class _Payload:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        import subprocess

        return subprocess.Popen, (["touch", self.marker],)


def test_processed_payload_refused_never_run(tmp_path, never_prompt):
    folder = mini_arxiv(tmp_path)
    load("ogbn-arxiv", root=tmp_path)  # writes processed/
    marker = tmp_path / "MARKER"
    torch.save(_Payload(marker), folder / "processed" / "geometric_data_processed.pt")
    with pytest.raises(GnnkitError, match=r"ogbn-arxiv: cannot read the files under .*ogbn_arxiv \(Unsupported global"):
        load("ogbn-arxiv", root=tmp_path)
    assert not marker.exists()


def test_forced_weights_only_even_when_the_environment_turns_it_off(tmp_path, never_prompt, monkeypatch):
    folder = mini_arxiv(tmp_path)
    load("ogbn-arxiv", root=tmp_path)
    marker = tmp_path / "MARKER"
    torch.save(_Payload(marker), folder / "processed" / "geometric_data_processed.pt")
    monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")  # what ogb's bare torch.load would obey
    with pytest.raises(GnnkitError, match="Unsupported global"):
        load("ogbn-arxiv", root=tmp_path)
    assert not marker.exists()


def test_split_dict_of_numpy_arrays_loads_and_payload_is_refused(tmp_path, never_prompt):
    folder = mini_arxiv(tmp_path)
    for part in ("train", "valid", "test"):
        (folder / f"split/time/{part}.csv.gz").unlink()
    split = {"train": np.arange(0, 6), "valid": np.arange(6, 9), "test": np.arange(9, 12)}
    torch.save(split, folder / "split/time/split_dict.pt")  # numpy arrays: numpy.core.multiarray._reconstruct
    data = load("ogbn-arxiv", root=tmp_path)
    assert data.val_mask.nonzero().view(-1).tolist() == [6, 7, 8]
    marker = tmp_path / "MARKER"
    torch.save({"train": _Payload(marker)}, folder / "split/time/split_dict.pt")
    with pytest.raises(GnnkitError, match="Unsupported global"):
        load("ogbn-arxiv", root=tmp_path)
    assert not marker.exists()


def test_empty_raw_folder_left_by_an_offline_ogb_never_prompts(tmp_path, never_prompt):
    # ogb, offline, leaves the dataset folder with an empty raw/ and then asks on stdin
    folder = mini_arxiv(tmp_path)
    for f in (folder / "raw").iterdir():
        f.unlink()
    with pytest.raises(GnnkitError, match=r"ogbn-arxiv not found: expected raw/edge\.csv\.gz, .* under .*ogbn_arxiv"):
        load("ogbn-arxiv", root=tmp_path)
