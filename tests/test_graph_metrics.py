"""Graph-task loss and metrics (issue 24): NaN targets carry no loss and no gradient; ROC-AUC/AP
per target as OGB's Evaluator computes them."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from gnnkit.errors import GnnkitError
from gnnkit.graphs import accuracy, average_precision, graph_loss, ogb_score, roc_auc, score


def _binary(seed: int = 0, b: int = 40, t: int = 3):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(b, t, generator=g)
    y = (torch.rand(b, t, generator=g) < 0.4).float()
    y[torch.rand(b, t, generator=g) < 0.3] = float("nan")
    return logits, y


def test_nan_targets_carry_no_loss_or_gradient():
    logits, y = _binary()
    logits.requires_grad_(True)
    loss = graph_loss(logits, y, "binary")
    known = ~torch.isnan(y)
    want = F.binary_cross_entropy_with_logits(logits[known], y[known])
    torch.testing.assert_close(loss, want)
    loss.backward()
    assert bool((logits.grad[~known] == 0).all()) and bool((logits.grad[known] != 0).all())
    # changing the logits of missing entries does not change the loss
    moved = logits.detach().clone()
    moved[~known] += 100.0
    torch.testing.assert_close(graph_loss(moved, y, "binary"), want.detach())


def test_all_missing_gives_zero_loss_with_a_graph():
    logits = torch.randn(4, 2, requires_grad=True)
    loss = graph_loss(logits, torch.full((4, 2), float("nan")), "binary")
    loss.backward()
    assert loss.item() == 0.0 and bool((logits.grad == 0).all())


def test_multiclass_loss_and_accuracy():
    logits = torch.tensor([[2.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    y = torch.tensor([0, 2, 2])
    torch.testing.assert_close(graph_loss(logits, y), F.cross_entropy(logits, y))
    assert accuracy(logits, y) == pytest.approx(2 / 3)


def test_roc_auc_and_ap_match_sklearn_per_target():
    from sklearn.metrics import average_precision_score, roc_auc_score

    logits, y = _binary(1)
    aucs, aps = [], []
    for t in range(3):
        k = ~torch.isnan(y[:, t])
        aucs.append(roc_auc_score(y[k, t].numpy(), logits[k, t].numpy()))
        aps.append(average_precision_score(y[k, t].numpy(), logits[k, t].numpy()))
    assert roc_auc(logits, y) == pytest.approx(sum(aucs) / 3)
    assert average_precision(logits, y) == pytest.approx(sum(aps) / 3)
    wide_logits, wide_y = _binary(4, b=60, t=128)
    assert ogb_score("ogbg-molpcba", wide_logits, wide_y)["ap"] == pytest.approx(average_precision(wide_logits, wide_y))
    with pytest.raises(GnnkitError, match="128 targets"):
        ogb_score("ogbg-molpcba", logits, y)


def test_score_with_evaluator():
    logits, y = _binary(2, t=1)
    out = score(logits, y, "binary", evaluator_name="ogbg-molhiv", prefix="val_")
    assert out["val_rocauc"] == pytest.approx(out["val_roc_auc"])
    assert math.isfinite(out["val_loss"]) and 0.0 <= out["val_accuracy"] <= 1.0
