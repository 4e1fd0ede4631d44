"""Cluster-GCN: partition cache, batches (nodes, edges, normalization), bad input, a short fit."""
from __future__ import annotations

import json
import os

import pytest
import torch
from helpers import two_community_graph
from torch_geometric.data import Data

from gnnkit.cli import main
from gnnkit.errors import GnnkitError
from gnnkit.models import build_model
from gnnkit.partition import metis_graph, partition_graph
from gnnkit.partition import default_cache_dir
from gnnkit.samplers.cluster import ClusterSampler
from gnnkit.sparse.segments import concat_ranges
from gnnkit.trainer import Trainer
from sampler_context import make_ctx


def ring_of_cliques() -> Data:
    """Four 4-cliques joined in a ring by single edges (16 nodes, undirected, both directions)::

        [0 1 2 3] -3,4- [4 5 6 7] -7,8- [8 9 10 11] -11,12- [12 13 14 15] -15,0- back to [0..3]

    Nodes 0, 4, 8, 12 train; 1, 5, 9, 13 validate; the rest test.
    """
    src, dst = [], []
    for c in range(4):
        b = 4 * c
        for i in range(4):
            for j in range(4):
                if i != j:
                    src.append(b + i)
                    dst.append(b + j)
    for a, b in ((3, 4), (7, 8), (11, 12), (15, 0)):
        src += [a, b]
        dst += [b, a]
    n = 16
    mask = [torch.zeros(n, dtype=torch.bool) for _ in range(3)]
    mask[0][0::4], mask[1][1::4], mask[2][2::4], mask[2][3::4] = True, True, True, True
    return Data(x=torch.randn(n, 3, generator=torch.Generator().manual_seed(0)), y=torch.arange(n) % 2,
                edge_index=torch.tensor([src, dst]), train_mask=mask[0], val_mask=mask[1], test_mask=mask[2],
                num_classes=2)


def setup_sampler(data, tmp_path, world_size=1, rank=0, adj_norm="gcn", **kw):
    s = ClusterSampler(cache_dir=str(tmp_path / "parts"), **kw)
    lam = kw.get("diag_lambda") or 0.0
    s.setup(make_ctx(data, adj_norm=adj_norm, diag_lambda=lam, rank=rank, world_size=world_size), None)
    return s


def dense(data) -> torch.Tensor:
    a = torch.zeros(data.num_nodes, data.num_nodes)
    a[data.edge_index[1], data.edge_index[0]] = 1.0
    return a


def test_concat_ranges():
    out = concat_ranges(torch.tensor([5, 0, 9]), torch.tensor([2, 0, 3]))
    assert out.tolist() == [5, 6, 9, 10, 11]


def test_metis_graph_symmetrizes_and_drops_loops_and_repeats():
    # directed 0->1 twice, 1->2, self-loop 2->2, isolated node 3
    xadj, adjncy = metis_graph(torch.tensor([[0, 0, 1, 2], [1, 1, 2, 2]]), 4)
    assert xadj.tolist() == [0, 1, 3, 4, 4]
    assert adjncy.tolist() == [1, 0, 2, 1]
    # sorted, loop-free, equal in- and out-degrees, yet not symmetric: 0->1->2->0
    xadj, adjncy = metis_graph(torch.tensor([[0, 1, 2], [1, 2, 0]]), 3)
    assert xadj.tolist() == [0, 2, 4, 6] and adjncy.tolist() == [1, 2, 0, 2, 0, 1]


def test_metis_graph_of_coalesced_graph_is_its_edges():
    data = ring_of_cliques()
    order = torch.argsort(data.edge_index[0] * 16 + data.edge_index[1])
    ei = data.edge_index[:, order].contiguous()  # coalesced: the CSR in order
    xadj, adjncy = metis_graph(ei, 16)
    assert adjncy.data_ptr() == ei[1].data_ptr()  # no copy
    shuffled = ei[:, torch.randperm(ei.shape[1], generator=torch.Generator().manual_seed(0))]
    xs, adjs = metis_graph(torch.cat([shuffled, torch.tensor([[5, 5], [5, 6]])], 1), 16)  # + a loop, a repeat
    assert torch.equal(xadj, xs) and torch.equal(adjncy, adjs)
    assert xadj[1:].sub(xadj[:-1]).tolist() == [4, 3, 3, 4] * 4


def test_cliques_are_clusters_and_every_node_in_exactly_one(tmp_path):
    data = ring_of_cliques()
    s = setup_sampler(data, tmp_path, num_parts=4, clusters_per_batch=1)
    parts = s.partition.parts
    assert s.partition.edge_cut == 4 and s.partition.imbalance == 1.0  # METIS finds the cliques
    assert all(len(set(parts[4 * c:4 * c + 4].tolist())) == 1 for c in range(4))
    seen = torch.cat([b.n_id for b in s])
    assert sorted(seen.tolist()) == list(range(16))  # one epoch visits every node exactly once
    assert s.ptr.tolist() == [0, 4, 8, 12, 16]


def test_batch_keeps_every_edge_among_its_nodes_and_none_outside(tmp_path):
    data = two_community_graph(30)
    a = dense(data)
    s = setup_sampler(data, tmp_path, num_parts=10, clusters_per_batch=3)
    between = 0
    parts = s.partition.parts
    for epoch in range(2):
        s.set_epoch(epoch)
        for b in s:
            n_id = b.n_id
            sub = a[n_id][:, n_id]  # every edge among the batch's nodes, and only those
            got = b.adj.to_dense()
            got.fill_diagonal_(0.0)
            assert torch.equal(got != 0, sub != 0)
            cross = parts[n_id].unsqueeze(1) != parts[n_id].unsqueeze(0)
            between += int((sub.bool() & cross).sum())
            assert torch.equal(b.x, data.x[n_id]) and torch.equal(b.y, data.y[n_id])
            assert torch.equal(b.loss_index, data.train_mask[n_id].nonzero().view(-1))
            assert torch.equal(b.extra["val_mask"], data.val_mask[n_id])
            assert torch.equal(b.extra["test_mask"], data.test_mask[n_id])
    assert between > 0  # the between-cluster edges the paper adds back are there


@pytest.mark.parametrize("norm,lam", [("gcn", None), ("mean", None), ("diag", 0.5)])
def test_renormalization_inside_batch_matches_dense(tmp_path, norm, lam):
    data = two_community_graph(30)
    s = setup_sampler(data, tmp_path, num_parts=6, clusters_per_batch=2, diag_lambda=lam, adj_norm=norm)
    b = next(iter(s))
    sub = dense(data)[b.n_id][:, b.n_id]
    eye = torch.eye(sub.shape[0])
    if norm == "gcn":
        d = (sub + eye).sum(1).pow(-0.5)
        want = d.unsqueeze(1) * (sub + eye) * d.unsqueeze(0)
    elif norm == "mean":
        want = sub / sub.sum(1, keepdim=True).clamp(min=1)
    else:
        at = (sub + eye) / (sub.sum(1, keepdim=True) + 1)
        want = at + lam * torch.diag(torch.diag(at))
    torch.testing.assert_close(b.adj.to_dense(), want)


def test_train_scope_batches_hold_training_nodes_only(tmp_path):
    data = two_community_graph(30)
    s = setup_sampler(data, tmp_path, num_parts=4, clusters_per_batch=2, partition_scope="train")
    seen = torch.cat([b.n_id for b in s])
    assert sorted(seen.tolist()) == data.train_mask.nonzero().view(-1).tolist()
    b = next(iter(s))
    assert b.loss_index.tolist() == list(range(b.num_nodes)) and not b.extra["val_mask"].any()
    sub = dense(data)[b.n_id][:, b.n_id]
    got = b.adj.to_dense()
    got.fill_diagonal_(0.0)
    assert torch.equal(got != 0, sub != 0)


def test_epochs_reproducible_and_ranks_share_equally(tmp_path):
    data = two_community_graph(30)
    s = setup_sampler(data, tmp_path, num_parts=9, clusters_per_batch=2)
    s.set_epoch(3)
    first = [b.n_id for b in s]
    s.set_epoch(4)
    assert [b.n_id.tolist() for b in s] != [x.tolist() for x in first]
    s.set_epoch(3)
    assert all(torch.equal(x, b.n_id) for x, b in zip(first, s))
    r0 = setup_sampler(data, tmp_path, world_size=2, rank=0, num_parts=9, clusters_per_batch=2)
    r1 = setup_sampler(data, tmp_path, world_size=2, rank=1, num_parts=9, clusters_per_batch=2)
    # 5 groups dealt to 2 ranks: the list wraps around (the first group is dealt again), none dropped
    assert len(r0) == len(r1) == 3
    ids0, ids1 = [torch.cat([b.n_id for b in r]).tolist() for r in (r0, r1)]
    assert set(ids0) | set(ids1) == set(range(data.num_nodes))
    assert set(ids0) & set(ids1) == set(next(iter(r0)).n_id.tolist())  # the group dealt twice
    r4 = [setup_sampler(data, tmp_path, world_size=4, rank=r, num_parts=9, clusters_per_batch=9) for r in range(4)]
    assert all(len(r) == 1 and torch.equal(next(iter(r)).n_id, next(iter(r4[0])).n_id) for r in r4)  # 1 group, 4 ranks


def test_cache_hit_and_rejected_caches_recomputed(tmp_path):
    data = two_community_graph(30)
    first = partition_graph(data.edge_index, data.num_nodes, 5, cache_dir=str(tmp_path))
    hit = partition_graph(data.edge_index, data.num_nodes, 5, cache_dir=str(tmp_path))
    assert not first.cached and hit.cached and hit.path == first.path and torch.equal(hit.parts, first.parts)
    other = partition_graph(data.edge_index, data.num_nodes, 5, seed=7, cache_dir=str(tmp_path))
    assert not other.cached and other.path != first.path  # the options are part of the key

    def tamper(state):
        state["parts"][0] = (state["parts"][0] + 1) % 5

    def shrink(state):
        state["parts"] = state["parts"][:-1]

    with open(first.path, "wb") as f:
        f.write(b"not a partition")
    with pytest.warns(UserWarning, match="unreadable"):
        again = partition_graph(data.edge_index, data.num_nodes, 5, cache_dir=str(tmp_path))
    assert not again.cached and torch.equal(again.parts, first.parts)
    for edit, reason in ((tamper, "hash mismatch"), (shrink, "wrong length")):
        state = torch.load(first.path, weights_only=True)
        edit(state)
        torch.save(state, first.path)
        with pytest.warns(UserWarning, match=reason):
            again = partition_graph(data.edge_index, data.num_nodes, 5, cache_dir=str(tmp_path))
        assert not again.cached and torch.equal(again.parts, first.parts)
    torch.save(torch.load(other.path, weights_only=True), first.path)  # another graph's/options' file
    with pytest.warns(UserWarning, match="stale"):
        assert not partition_graph(data.edge_index, data.num_nodes, 5, cache_dir=str(tmp_path)).cached
    assert partition_graph(data.edge_index, data.num_nodes, 5, cache_dir=str(tmp_path)).cached


def test_bad_input_fails_before_metis(tmp_path, monkeypatch):
    import pymetis

    def boom(*a, **k):
        raise AssertionError("METIS must not be called")

    monkeypatch.setattr(pymetis, "part_graph", boom)
    data = ring_of_cliques()
    cases = [
        (dict(num_parts=17, clusters_per_batch=1), "cannot split 16 nodes into 17 parts"),
        (dict(num_parts=0), "at least 1"),
        (dict(num_parts=4, clusters_per_batch=5), r"clusters per batch \(5\) cannot exceed the number of parts \(4\)"),
        (dict(num_parts=4, clusters_per_batch=0), "clusters per batch must be a positive integer"),
        (dict(num_parts=4, partition_scope="test"), "partition scope must be one of"),
        (dict(num_parts=5, clusters_per_batch=1, partition_scope="train"), "cannot split 4 nodes into 5 parts"),
    ]
    for kw, msg in cases:
        with pytest.raises(GnnkitError, match=msg):
            setup_sampler(data, tmp_path, **kw)
    loops = Data(x=data.x, y=data.y, edge_index=torch.arange(16).repeat(2, 1), train_mask=data.train_mask,
                 val_mask=data.val_mask, test_mask=data.test_mask)
    for ei in (loops.edge_index, torch.zeros(2, 0, dtype=torch.long)):
        loops.edge_index = ei
        with pytest.raises(GnnkitError, match="no edges"):
            setup_sampler(loops, tmp_path, num_parts=2, clusters_per_batch=1)


def test_sampler_and_model_must_agree_on_the_operator(tmp_path):
    data = two_community_graph(30)
    with pytest.raises(GnnkitError, match="needs a model built with adj_norm='diag', diag_lambda=0.5"):
        setup_sampler(data, tmp_path, num_parts=4, clusters_per_batch=2, diag_lambda=0.5, adj_norm="gcn")
    with pytest.raises(GnnkitError, match="given no diag_lambda"):
        s = ClusterSampler(num_parts=4, clusters_per_batch=2, cache_dir=str(tmp_path))
        s.setup(make_ctx(data, adj_norm="diag", diag_lambda=0.5), None)
    torch.manual_seed(0)
    model = build_model("gcn", 8, 2, hidden=8, adj_norm="diag", diag_lambda=0.5)
    sampler = ClusterSampler(num_parts=4, clusters_per_batch=2, diag_lambda=0.5, cache_dir=str(tmp_path))
    Trainer(sampler=sampler, max_epochs=1, progress=False, device="cpu").fit(model, data)
    assert (model.adj_norm, model.diag_lambda) == ("diag", 0.5)  # the model was built with it, untouched


def test_partition_cache_default_is_outside_the_package(tmp_path, monkeypatch):
    import gnnkit

    monkeypatch.delenv("GNNKIT_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == str(tmp_path / "xdg" / "gnnkit" / "partitions")
    assert default_cache_dir(str(tmp_path / "root")) == str(tmp_path / "root" / "partitions")
    monkeypatch.delenv("XDG_CACHE_HOME")
    package = os.path.dirname(os.path.dirname(os.path.abspath(gnnkit.__file__)))
    assert not os.path.abspath(default_cache_dir()).startswith(package)


def test_fit_with_cluster_sampler_learns(tmp_path):
    data = two_community_graph(40)
    torch.manual_seed(0)  # the initial weights must not depend on the tests that ran before
    model = build_model("gcn", 8, 2, hidden=16, num_layers=2)
    trainer = Trainer(sampler=ClusterSampler(num_parts=8, clusters_per_batch=2, cache_dir=str(tmp_path)),
                      max_epochs=30, progress=False, device="cpu", seed=0)
    result = trainer.fit(model, data)
    assert result["metrics"]["train_accuracy"] > 0.8 and result["test"] > 0.7
    assert trainer.history[0]["epoch"] == 0 and len(trainer.sampler) == 4


def test_partition_command_json(tmp_path, capsys):
    args = ["partition", "csbm", "--num-nodes", "300", "--num-parts", "6", "--root", str(tmp_path), "--json"]
    assert main(args) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out) == {"num_parts", "edge_cut", "imbalance", "seconds", "cached", "path"}
    assert out["num_parts"] == 6 and out["edge_cut"] > 0 and not out["cached"]
    assert out["path"].startswith(str(tmp_path / "partitions"))
    assert main(args) == 0 and json.loads(capsys.readouterr().out)["cached"]
    assert main(["partition", "csbm", "--num-nodes", "300", "--num-parts", "301", "--root", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "301" in err and "300 nodes" in err
