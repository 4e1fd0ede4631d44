"""AUC/AP, one-vs-many ranking (MRR, Hits@K), decoders and the BCE link loss."""
from __future__ import annotations

import itertools

import pytest
import torch

from gnnkit.errors import GnnkitError
from gnnkit.link import DotDecoder, HadamardMLPDecoder, auc_ap, link_loss, make_decoder, rank_metrics, ranks


def _scores(seed: int, ties: bool):
    gen = torch.Generator().manual_seed(seed)
    pos = torch.randn(40, generator=gen) + 0.7
    neg = torch.randn(60, generator=gen)
    if ties:  # coarse scores: many ties within and across the classes
        pos, neg = pos.mul(2).round(), neg.mul(2).round()
    return pos, neg


def _brute_auc(pos, neg):
    """P(pos > neg) + P(pos == neg) / 2 over all pairs (the Mann–Whitney definition)."""
    total = sum(1.0 if p > q else 0.5 if p == q else 0.0 for p, q in itertools.product(pos.tolist(), neg.tolist()))
    return total / (pos.numel() * neg.numel())


def _brute_ap(pos, neg):
    """Σ over distinct thresholds τ (high to low) of (recall(τ) − recall(prev)) · precision(τ)."""
    scores = torch.cat([pos, neg]).tolist()
    ap, prev_recall = 0.0, 0.0
    for tau in sorted(set(scores), reverse=True):
        tp = sum(p >= tau for p in pos.tolist())
        k = sum(s >= tau for s in scores)
        recall = tp / pos.numel()
        ap += (recall - prev_recall) * tp / k
        prev_recall = recall
    return ap


@pytest.mark.parametrize("seed,ties", [(0, False), (1, True), (2, True)])
def test_auc_ap_match_definitions_and_sklearn(seed, ties):
    pos, neg = _scores(seed, ties)
    got = auc_ap(pos, neg)
    assert got["auc"] == pytest.approx(_brute_auc(pos, neg), abs=1e-12)
    assert got["ap"] == pytest.approx(_brute_ap(pos, neg), abs=1e-12)
    sk = pytest.importorskip("sklearn.metrics")
    y = [1] * pos.numel() + [0] * neg.numel()
    s = torch.cat([pos, neg]).tolist()
    assert got["auc"] == pytest.approx(sk.roc_auc_score(y, s), abs=1e-12)
    assert got["ap"] == pytest.approx(sk.average_precision_score(y, s), abs=1e-12)


def test_auc_ap_perfect_and_errors():
    assert auc_ap(torch.tensor([2.0, 3.0]), torch.tensor([0.0, 1.0])) == {"auc": 1.0, "ap": 1.0}
    with pytest.raises(GnnkitError, match="need positives and negatives"):
        auc_ap(torch.tensor([1.0]), torch.tensor([]))


def _brute_rank(p, row):
    """1 + #(negatives above) + #(ties)/2: the positive in the middle of its tie group."""
    return 1 + sum(q > p for q in row) + 0.5 * sum(q == p for q in row)


def test_ranks_match_definition_with_ties_and_padding():
    gen = torch.Generator().manual_seed(0)
    pos = torch.randint(0, 4, (30,), generator=gen).double()
    neg = torch.randint(0, 4, (30, 9), generator=gen).double()
    valid = torch.rand(30, 9, generator=gen) > 0.3
    want = [_brute_rank(p, [q for q, ok in zip(row, m) if ok])
            for p, row, m in zip(pos.tolist(), neg.tolist(), valid.tolist())]
    assert ranks(pos, neg, valid).tolist() == pytest.approx(want)
    figs = rank_metrics(pos, neg, valid, k=3)
    assert figs["mrr"] == pytest.approx(sum(1 / r for r in want) / 30)
    assert figs["hits@3"] == pytest.approx(sum(r <= 3 for r in want) / 30)


def test_mrr_equals_py_tgb_evaluator():
    evaluate = pytest.importorskip("tgb.linkproppred.evaluate", reason="py-tgb not installed")
    gen = torch.Generator().manual_seed(1)
    pos = torch.randint(0, 5, (50,), generator=gen).float()
    neg = torch.randint(0, 5, (50, 20), generator=gen).float()
    ours = rank_metrics(pos, neg, k=10)
    theirs = evaluate.Evaluator(name="tgbl-wiki", k_value=10).eval(
        {"y_pred_pos": pos.numpy(), "y_pred_neg": neg.numpy(), "eval_metric": ["mrr"]})
    assert ours["mrr"] == pytest.approx(float(theirs["mrr"]), rel=1e-6)
    assert ours["hits@10"] == pytest.approx(float(theirs["hits@10"]), rel=1e-6)


def test_ranking_shape_error():
    with pytest.raises(GnnkitError, match=r"\[E, K\] negative scores"):
        ranks(torch.zeros(3), torch.zeros(4, 2))


def test_decoders_shapes_symmetry_and_loss():
    gen = torch.Generator().manual_seed(0)
    z = torch.randn(10, 6, generator=gen)
    e = torch.tensor([[0, 1, 2], [3, 4, 5]])
    dot = DotDecoder()(z, e)
    assert dot.shape == (3,) and torch.allclose(dot, (z[[0, 1, 2]] * z[[3, 4, 5]]).sum(1))
    torch.manual_seed(0)
    mlp = make_decoder("mlp", 6, hidden=8, num_layers=3)
    assert isinstance(mlp, HadamardMLPDecoder) and len(mlp.lins) == 3
    assert torch.allclose(mlp(z, e), mlp(z, e.flip(0)))  # z_u ⊙ z_v is symmetric
    pos, neg = torch.tensor([2.0, -1.0]), torch.tensor([0.5])
    want = -(torch.log(torch.sigmoid(pos)).sum() + torch.log(1 - torch.sigmoid(neg)).sum()) / 3
    assert link_loss(pos, neg).item() == pytest.approx(want.item(), rel=1e-6)
    with pytest.raises(GnnkitError, match="unknown decoder"):
        make_decoder("bilinear", 6)
    with pytest.raises(GnnkitError, match=r"\[N, d\]"):
        DotDecoder()(z[0], e)
