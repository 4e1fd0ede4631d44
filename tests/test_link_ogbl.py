"""ogbl-* through ogb's own loader, offline, in OGB's exact on-disk layout, scored by OGB's Evaluator."""
from __future__ import annotations

import gzip
import io
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("ogb")

from gnnkit.errors import GnnkitError  # noqa: E402
from gnnkit.link import EdgeSet, auc_ap, ogbl_score  # noqa: E402
from gnnkit.link.ogbl import load_ogbl  # noqa: E402


def _csv(path: Path, rows) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wt") as f:
        for row in np.asarray(rows):
            f.write(",".join(str(v) for v in np.atleast_1d(row)) + "\n")


def _save_as_ogb(path: Path, obj) -> None:
    """``torch.save(obj)`` with numpy's arrays pickled as ``numpy.core.multiarray._reconstruct``,
    the module name in OGB's released split files (written with numpy 1.x)."""
    buf = io.BytesIO()
    torch.save(obj, buf)
    src = zipfile.ZipFile(io.BytesIO(buf.getvalue()))
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as out:
        for info in src.infolist():
            data = src.read(info.filename)
            if info.filename.endswith("data.pkl"):
                data = data.replace(b"numpy._core.multiarray\n", b"numpy.core.multiarray\n")
                assert b"cnumpy.core.multiarray\n_reconstruct" in data
            out.writestr(info, data)


def _blocks(n: int, seed: int):
    """Two dense communities; features = a noisy community indicator (learnable links)."""
    rng = np.random.default_rng(seed)
    comm = np.arange(n) % 2
    u, v = np.triu_indices(n, 1)
    same = comm[u] == comm[v]
    keep = rng.random(u.size) < np.where(same, 0.5, 0.01)
    edges = np.stack([u[keep], v[keep]], 1)
    x = np.stack([comm, 1 - comm], 1) + 0.1 * rng.normal(size=(n, 2))
    return rng, comm, edges[rng.permutation(len(edges))], x


def write_mini_collab(root: Path, n: int = 80, seed: int = 0) -> dict:
    """``<root>/ogbl_collab/``: RELEASE_v1.txt, raw/{edge, num-node-list, num-edge-list, node-feat,
    edge_weight, edge_year}.csv.gz, split/time/{train,valid,test}.pt (dicts of numpy arrays)."""
    rng, comm, edges, x = _blocks(n, seed)
    m = len(edges)
    train, val, test = edges[: int(0.7 * m)], edges[int(0.7 * m): int(0.85 * m)], edges[int(0.85 * m):]
    folder = root / "ogbl_collab"
    folder.mkdir(parents=True)
    (folder / "RELEASE_v1.txt").write_text("mini\n")
    raw = folder / "raw"
    _csv(raw / "edge.csv.gz", train)
    _csv(raw / "num-node-list.csv.gz", [n])
    _csv(raw / "num-edge-list.csv.gz", [len(train)])
    _csv(raw / "node-feat.csv.gz", x.round(4))
    _csv(raw / "edge_weight.csv.gz", np.ones((len(train), 1), dtype=np.int64))
    _csv(raw / "edge_year.csv.gz", np.full((len(train), 1), 2010))
    u, v = np.triu_indices(n, 1)
    cross = np.stack([u, v], 1)[comm[u] != comm[v]]  # negatives: pairs across communities
    neg = cross[rng.permutation(len(cross))]
    for name, part, negs in (("train", train, None), ("valid", val, neg[:len(val)]),
                             ("test", test, neg[len(val): len(val) + len(test)])):
        d = {"edge": part.astype(np.int64), "weight": np.ones(len(part), dtype=np.int64),
             "year": np.full(len(part), 2019 if name == "test" else 2018, dtype=np.int64)}
        if negs is not None:
            d["edge_neg"] = negs.astype(np.int64)
        _save_as_ogb(folder / "split" / "time" / f"{name}.pt", d)
    return {"train": train, "valid": val, "test": test}


def test_mini_collab_loads_through_ogb(tmp_path):
    parts = write_mini_collab(tmp_path)
    data, split = load_ogbl("ogbl-collab", tmp_path)
    assert data.num_nodes == 80 and data.x.shape == (80, 2) and data.evaluator_name == "ogbl-collab"
    assert torch.equal(split.train_pos, torch.as_tensor(parts["train"]).t())
    assert torch.equal(split.test_pos, torch.as_tensor(parts["test"]).t())
    assert split.val_neg.shape == split.val_pos.shape
    assert split.val_in_test_graph  # ogbl-collab's rule, on by default
    assert split.message_edges("test").shape[1] == 2 * (parts["train"].shape[0] + parts["valid"].shape[0])
    assert split.message_edges("val").shape[1] == 2 * parts["train"].shape[0]
    mp = EdgeSet(split.message_edges("train"), 80)
    assert not mp.contains(split.test_pos[0], split.test_pos[1]).any()
    assert set(split.extra) >= {"train_weight", "val_year", "test_year"}
    _, off = load_ogbl("ogbl-collab", tmp_path, val_in_test_graph=False)
    assert off.message_edges("test").shape[1] == 2 * parts["train"].shape[0]


def test_mini_collab_scored_by_ogb_evaluator(tmp_path):
    write_mini_collab(tmp_path)
    data, split = load_ogbl("ogbl-collab", tmp_path)
    z = data.x  # community indicator: same-community pairs score high
    score = lambda e: (z[e[0]] * z[e[1]]).sum(-1)  # noqa: E731
    pos, neg = score(split.test_pos), score(split.test_neg)
    got = ogbl_score("ogbl-collab", pos, neg)
    kth = torch.topk(neg, min(50, neg.numel())).values[-1]  # OGB: a hit beats the 50th best negative
    assert neg.numel() > 50
    want = float((pos > kth).float().mean())
    assert got == {"hits@50": pytest.approx(want)}
    assert got["hits@50"] > 0.9 and auc_ap(pos, neg)["auc"] > 0.95
    rand = ogbl_score("ogbl-collab", torch.rand(pos.numel(), generator=torch.Generator().manual_seed(0)),
                      torch.rand(neg.numel(), generator=torch.Generator().manual_seed(1)))
    assert rand["hits@50"] < got["hits@50"]


def _write_citation2(tmp_path, n=30):
    rng, comm, edges, x = _blocks(n, 1)
    folder = tmp_path / "ogbl_citation2"
    (folder / "raw").mkdir(parents=True)
    (folder / "RELEASE_v1.txt").write_text("mini\n")
    m = len(edges)
    train, test, val = edges[: m - 20], edges[m - 20: m - 10], edges[m - 10:]
    _csv(folder / "raw/edge.csv.gz", train)
    _csv(folder / "raw/num-node-list.csv.gz", [n])
    _csv(folder / "raw/num-edge-list.csv.gz", [len(train)])
    _csv(folder / "raw/node-feat.csv.gz", x.round(4))
    _csv(folder / "raw/node_year.csv.gz", np.full((n, 1), 2000))
    for name, part in (("train", train), ("valid", val), ("test", test)):
        d = {"source_node": part[:, 0].copy(), "target_node": part[:, 1].copy()}
        if name != "train":
            d["target_node_neg"] = rng.integers(0, n, (len(part), 7))
        _save_as_ogb(folder / "split" / "time" / f"{name}.pt", d)


def test_citation2_layout_and_mrr(tmp_path):
    _write_citation2(tmp_path)
    data, split = load_ogbl("ogbl-citation2", tmp_path)
    assert split.test_neg.shape == (10, 7) and not split.val_in_test_graph
    pos = torch.zeros(10)
    neg = torch.tensor([-3.0, -2, -1, 0, 1, 2, 3]).repeat(10, 1)  # 3 negatives above the positive, one tied
    assert ogbl_score("ogbl-citation2", pos, neg) == {"mrr": pytest.approx(1 / 4.5)}


def test_crafted_split_file_refused(tmp_path):
    write_mini_collab(tmp_path)
    bad = tmp_path / "ogbl_collab" / "split" / "time" / "valid.pt"

    class Boom:
        def __reduce__(self):
            return (print, ("pwned",))

    buf = io.BytesIO()
    torch.save({"edge": Boom()}, buf, pickle_protocol=pickle.DEFAULT_PROTOCOL)
    bad.write_bytes(buf.getvalue())
    with pytest.raises(GnnkitError, match="ogbl-collab: cannot read"):
        load_ogbl("ogbl-collab", tmp_path)


def test_missing_files_named_never_prompts(tmp_path, monkeypatch):
    monkeypatch.setattr("builtins.input", lambda *_a: pytest.fail("ogb asked on stdin"))
    with pytest.raises(GnnkitError, match=r"ogbl-collab not found: expected RELEASE_v1\.txt, raw/edge\.csv\.gz"):
        load_ogbl("ogbl-collab", tmp_path)
    with pytest.raises(GnnkitError, match="not supported"):
        load_ogbl("ogbl-wikikg2", tmp_path)
    with pytest.raises(GnnkitError, match="unknown OGB link dataset"):
        load_ogbl("ogbl-nope", tmp_path)


def test_citation2_through_the_link_task(tmp_path):
    """Per-source negatives ([E, K]) scored by the task with OGB's MRR."""
    from gnnkit import Trainer
    from gnnkit.models import GCN

    _write_citation2(tmp_path)
    data, split = load_ogbl("ogbl-citation2", tmp_path)
    assert split.neg_per_source
    data.link_split = split
    torch.manual_seed(0)
    trainer = Trainer(task="link", max_epochs=3, seed=0, progress=False)
    result = trainer.fit(GCN(2, 8, 8, num_layers=2, dropout=0.0), data)
    assert trainer.task.metric == "mrr" and 0.0 < result["test"] <= 1.0
