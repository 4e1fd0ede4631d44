"""Loss and metrics of graph-level prediction, as plain functions.

``logits`` ``[B, C]`` for ``task="multiclass"`` (``y`` ``[B]`` class ids), ``[B, T]`` for
``"binary"`` (``y`` ``[B, T]`` in {0, 1}, NaN = missing label) and ``"regression"``.

* loss, multiclass: ``-(1/B) Σ_b log softmax(logits_b)[y_b]`` (cross-entropy);
* loss, binary: ``(1/|K|) Σ_{(b,t) ∈ K} BCE(σ(logits_bt), y_bt)`` over the known entries
  ``K = {(b, t): y_bt not NaN}`` (OGB's convention): a missing label carries no loss and no
  gradient; regression: the mean squared error over ``K``;
* accuracy: ``argmax`` (multiclass) or ``logit > 0`` (binary, over ``K``) equal to the label;
* ROC-AUC and AP: per target over its known entries, averaged over the targets that have both a
  positive and a negative label (as ``ogb.graphproppred.Evaluator`` does);
* :func:`ogb_score`: ``ogb.graphproppred.Evaluator(name).eval`` on the same predictions.
"""
from __future__ import annotations

from typing import Dict, Optional

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from gnnkit.errors import GnnkitError


def graph_loss(logits: Tensor, y: Tensor, task: str = "multiclass") -> Tensor:
    """The training loss (see the module docstring); a scalar with a gradient."""
    if task == "multiclass":
        return F.cross_entropy(logits, y.view(-1).long())
    y = y.view(logits.shape).to(logits.dtype)
    known = ~torch.isnan(y)
    if not bool(known.any()):
        return logits.sum() * 0.0  # nothing labeled: zero loss, zero gradient
    if task == "binary":
        return F.binary_cross_entropy_with_logits(logits[known], y[known])
    if task == "regression":
        return F.mse_loss(logits[known], y[known])
    raise GnnkitError(f"unknown graph task {task!r}; known: multiclass, binary, regression")


def accuracy(logits: Tensor, y: Tensor, task: str = "multiclass") -> float:
    if task == "multiclass":
        return float((logits.argmax(1) == y.view(-1)).float().mean()) if y.numel() else float("nan")
    y = y.view(logits.shape)
    known = ~torch.isnan(y)
    return float(((logits[known] > 0).float() == y[known]).float().mean()) if bool(known.any()) else float("nan")


def _per_target(scores: Tensor, y: Tensor, fn) -> float:
    """The mean over targets with both labels of ``fn(y_true, y_score)`` on the known entries."""
    y = y.view(scores.shape[0], -1).double().cpu().numpy()
    s = scores.view(y.shape[0], -1).double().cpu().numpy()
    vals = []
    for t in range(y.shape[1]):  # a loop over targets (T <= 128), not over graphs
        known = ~np.isnan(y[:, t])
        if (y[known, t] == 1).any() and (y[known, t] == 0).any():
            vals.append(fn(y[known, t], s[known, t]))
    if not vals:
        raise GnnkitError("ROC-AUC/AP undefined: no target has both a positive and a negative label")
    return float(np.mean(vals))


def roc_auc(scores: Tensor, y: Tensor) -> float:
    """Mean ROC-AUC over targets, ``scores`` ``[B, T]`` (logits or probabilities), ``y`` ``[B, T]``."""
    from sklearn.metrics import roc_auc_score

    return _per_target(scores, y, roc_auc_score)


def average_precision(scores: Tensor, y: Tensor) -> float:
    """Mean average precision over targets (same arguments as :func:`roc_auc`)."""
    from sklearn.metrics import average_precision_score

    return _per_target(scores, y, average_precision_score)


def ogb_score(name: str, logits: Tensor, y: Tensor) -> Dict[str, float]:
    """``Evaluator(name).eval`` on ``logits``: ``{"rocauc": ..}``, ``{"ap": ..}``, ``{"acc": ..}``."""
    from ogb.graphproppred import Evaluator

    ev = Evaluator(name)
    width = 1 if ev.eval_metric == "acc" else logits.shape[1]
    if width != ev.num_tasks:
        raise GnnkitError(f"{name} has {ev.num_tasks} targets, the predictions {width}")
    if ev.eval_metric == "acc":  # multi-class: predicted class ids [B, 1]
        y_pred = logits.argmax(1, keepdim=True)
        y_true = y.view(-1, 1)
    else:
        y_pred, y_true = logits.detach(), y.view(logits.shape)
    out = ev.eval({"y_true": y_true.cpu(), "y_pred": y_pred.detach().cpu()})
    return {k: float(v) for k, v in out.items()}


def score(logits: Tensor, y: Tensor, task: str = "multiclass", evaluator_name: Optional[str] = None,
          prefix: str = "") -> Dict[str, float]:
    """Loss and metrics of one split: ``{prefix + "loss", prefix + "accuracy", ...}``; binary tasks
    add ``roc_auc`` and ``ap``; an ``evaluator_name`` adds OGB's own metric (``rocauc``/``ap``/``acc``)."""
    logits = logits.detach()
    out = {"loss": float(graph_loss(logits, y, task))}
    if task != "regression":
        out["accuracy"] = accuracy(logits, y, task)
    if task == "binary":
        for key, fn in (("roc_auc", roc_auc), ("ap", average_precision)):
            try:
                out[key] = fn(logits, y)
            except GnnkitError:
                out[key] = float("nan")
    if evaluator_name:
        out.update(ogb_score(evaluator_name, logits, y))
    return {prefix + k: v for k, v in out.items()}
