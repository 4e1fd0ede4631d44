"""Leak-free link splits (GAE protocol) and training negatives."""
from __future__ import annotations

import os

import pytest
import torch

from gnnkit.data.csbm import csbm
from gnnkit.errors import GnnkitError
from gnnkit.link import EdgeSet, NegativeSampler, fixed_negatives, random_link_split, undirected_edges

CORA = "/work/shared/data/npz/cora.npz"


def _graph(seed: int = 0):
    data = csbm(num_nodes=300, num_classes=3, avg_degree=8, num_features=8, seed=seed)
    return data.edge_index, data.num_nodes


def _keys(pairs, n):
    u, v = torch.minimum(pairs[0], pairs[1]), torch.maximum(pairs[0], pairs[1])
    return set((u * n + v).tolist())


def test_gae_sizes_and_partition():
    ei, n = _graph()
    pairs = undirected_edges(ei, n)
    m = pairs.shape[1]
    s = random_link_split(ei, n, seed=3)
    assert s.test_pos.shape[1] == m // 10 and s.val_pos.shape[1] == m // 20
    assert s.train_pos.shape[1] == m - m // 10 - m // 20
    parts = [_keys(p, n) for p in (s.train_pos, s.val_pos, s.test_pos)]
    assert sum(len(p) for p in parts) == m and set().union(*parts) == _keys(pairs, n)
    assert s.val_neg.shape == s.val_pos.shape and s.test_neg.shape == s.test_pos.shape


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_no_val_or_test_edge_in_message_passing_graph(seed):
    ei, n = _graph(seed)
    s = random_link_split(ei, n, seed=seed)
    mp = s.message_edges("train")
    assert mp.shape[1] == 2 * s.train_pos.shape[1]
    directed = EdgeSet(mp, n, undirected=False)
    for held in (s.val_pos, s.test_pos):  # neither direction of a held-out edge
        assert not directed.contains(held[0], held[1]).any()
        assert not directed.contains(held[1], held[0]).any()
    assert torch.equal(s.message_edges("test"), mp)  # no collab rule on a random split
    assert _keys(mp, n) == _keys(s.train_pos, n)


@pytest.mark.parametrize("seed", [0, 5])
def test_negatives_never_hit_a_positive_of_any_split(seed):
    ei, n = _graph(seed)
    s = random_link_split(ei, n, seed=seed)
    positives = _keys(ei, n)
    for neg in (s.val_neg, s.test_neg):
        assert (neg[0] != neg[1]).all()
        assert not (_keys(neg, n) & positives)
        assert len(_keys(neg, n)) == neg.shape[1]  # distinct pairs
    assert not (_keys(s.val_neg, n) & _keys(s.test_neg, n))
    assert not s.all_positives().contains(s.test_neg[0], s.test_neg[1]).any()


def test_seeded_and_seed_dependent():
    ei, n = _graph()
    a, b, c = (random_link_split(ei, n, seed=k) for k in (7, 7, 8))
    assert torch.equal(a.test_pos, b.test_pos) and torch.equal(a.val_neg, b.val_neg)
    assert not torch.equal(a.test_pos, c.test_pos)


def test_labeled_form_for_sample_from_edges():
    ei, n = _graph()
    s = random_link_split(ei, n, seed=0)
    idx, label = s.labeled("val")
    p = s.val_pos.shape[1]
    assert idx.shape == (2, 2 * p) and label[:p].eq(1).all() and label[p:].eq(0).all()
    with pytest.raises(GnnkitError, match="no fixed negatives"):
        s.labeled("train")


@pytest.mark.skipif(not os.path.exists(CORA), reason="shared Cora npz absent (../shared/data)")
def test_cora_gae_split():
    from gnnkit.data import load

    d = load(CORA)
    s = random_link_split(d.edge_index, d.num_nodes, seed=0)
    assert (s.train_pos.shape[1], s.val_pos.shape[1], s.test_pos.shape[1]) == (4488, 263, 527)


def test_bad_input_one_line_errors():
    ei, n = _graph()
    with pytest.raises(GnnkitError, match="val_frac"):
        random_link_split(ei, n, val_frac=0.6, test_frac=0.5)
    with pytest.raises(GnnkitError, match=r"\[2, E\]"):
        random_link_split(ei.t(), n)
    with pytest.raises(GnnkitError, match="node ids must be in"):
        random_link_split(ei, 10)
    full = torch.combinations(torch.arange(6)).t()  # complete graph: no non-edge left
    with pytest.raises(GnnkitError, match="only 0 node pairs"):
        fixed_negatives(EdgeSet(full, 6), 1, torch.Generator().manual_seed(0))


@pytest.mark.parametrize("method", ["uniform", "degree"])
def test_training_negatives_seeded_and_valid(method):
    ei, n = _graph()
    s = random_link_split(ei, n, seed=0)
    mp = s.message_edges()
    sampler = NegativeSampler(n, mp, method=method)
    a = sampler.sample(s.train_pos, 3, torch.Generator().manual_seed(1))
    b = sampler.sample(s.train_pos, 3, torch.Generator().manual_seed(1))
    c = sampler.sample(s.train_pos, 3, torch.Generator().manual_seed(2))
    e = s.train_pos.shape[1]
    assert a.shape == (2, 3 * e) and torch.equal(a, b) and not torch.equal(a, c)
    assert torch.equal(a[0], s.train_pos[0].repeat(3))  # the source kept
    assert (a[0] != a[1]).all()
    assert not EdgeSet(mp, n, undirected=False).contains(a[0], a[1]).any()


def test_degree_biased_negatives_favour_high_degree():
    ei, n = _graph()
    deg = torch.bincount(ei[1], minlength=n).double()
    pos = ei[:, :2000]
    gen = torch.Generator().manual_seed(0)
    uni = NegativeSampler(n, ei).sample(pos, 5, gen)
    biased = NegativeSampler(n, ei, method="degree", power=1.0).sample(pos, 5, gen)
    # E[deg(w)] under P ∝ deg+1 is E[deg (deg+1)] / E[deg+1], well above the uniform mean E[deg]
    expect = float((deg * (deg + 1)).sum() / (deg + 1).sum())
    assert deg[uni[1]].mean() == pytest.approx(float(deg.mean()), rel=0.05)
    assert deg[biased[1]].mean() == pytest.approx(expect, rel=0.05)
    assert expect > 1.1 * float(deg.mean())
    with pytest.raises(GnnkitError, match="unknown negative sampling method"):
        NegativeSampler(n, ei, method="hard")


def test_undirected_edges_dedup_and_self_loops():
    ei = torch.tensor([[0, 1, 1, 2, 2, 3], [1, 0, 1, 3, 3, 2]])  # (0,1) both ways, a loop, (2,3) thrice
    assert undirected_edges(ei, 4).tolist() == [[0, 2], [1, 3]]
    s = EdgeSet(ei, 4)
    assert s.contains(torch.tensor([1, 3, 0]), torch.tensor([0, 2, 2])).tolist() == [True, True, False]
    assert not EdgeSet(torch.zeros(2, 0, dtype=torch.long), 4).contains(torch.tensor([0]), torch.tensor([1])).any()
    with pytest.raises(GnnkitError, match="integer node ids"):
        undirected_edges(ei.float(), 4)


def test_no_exclusion_keeps_raw_draws():
    ei, n = _graph()
    a = NegativeSampler(n, ei, exclude=False).sample(ei[:, :50], 2, torch.Generator().manual_seed(0))
    gen = torch.Generator().manual_seed(0)
    assert (a[0] != a[1]).all()  # no self-loop among these draws, so nothing was redrawn:
    assert torch.equal(a[1], torch.randint(0, n, (100,), generator=gen))  # the plain uniform draws
