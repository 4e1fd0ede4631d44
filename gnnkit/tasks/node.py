"""Node classification: cross-entropy on the batch's loss rows, accuracy (or OGB's metric) per split.

Labels ``y`` ``[N]`` int64 (``-1`` for unlabeled nodes, as :func:`gnnkit.data.validate` leaves
them); the loss is softmax cross-entropy, the metric accuracy, or the metric of ``ogb``'s
``Evaluator`` for OGB datasets (``data.evaluator_name``). Labels and masks are read through the
run's feature store. User metrics (``NodeClassification(metrics=[...])``, :mod:`gnnkit.metrics`)
receive each split's logits ``[m, C]`` and labels ``[m]``.
"""
from __future__ import annotations

from typing import Optional, Sequence

import torch.nn.functional as F
from torch import Tensor

from ..errors import GnnkitError
from .base import SPLITS, Task

MASKS = tuple(f"{s}_mask" for s in SPLITS)


def weighted_loss(logits: Tensor, y: Tensor, weight: Optional[Tensor]) -> Tensor:
    """Mean of the per-node cross-entropies ``ℓ_i`` of ``logits`` ``[m, C]`` against ``y`` ``[m]``,
    or ``Σ w_i ℓ_i`` when weights ``[m]`` (already normalized) are given."""
    losses = F.cross_entropy(logits, y, reduction="none")
    return losses.mean() if weight is None else (losses * weight).sum()


class NodeClassification(Task):
    name = "node"

    def __init__(self, metrics=()) -> None:
        """``metrics``: user metrics beside accuracy and loss (:mod:`gnnkit.metrics`)."""
        self.evaluator = None
        self.add_metrics(metrics)

    def prepare_data(self, data, seed: int):
        """Checks that ``data`` (a PyG ``Data`` or a ``(graph, features)`` store pair) has features,
        one class per node and the three masks; picks the metric (OGB's evaluator when named)."""
        features = data[1] if isinstance(data, tuple) else None
        if features is None:
            missing = [k for k in ("x", "y", "edge_index", *MASKS) if getattr(data, k, None) is None]
        else:
            missing = [k for k in ("x", "y", *MASKS) if k not in features.names()]
        if missing:
            raise GnnkitError(f"node classification needs data.{missing[0]}")
        y_shape = tuple(features.shape("y")) if features is not None else tuple(data.y.shape)
        if len(y_shape) != 1:
            raise GnnkitError(f"node classification needs one class per node (data.y of shape [N]), got {y_shape}")
        self.evaluator, self.metric = None, "accuracy"
        name = features.meta.get("evaluator_name") if features is not None else getattr(data, "evaluator_name", None)
        if name:
            from ogb.nodeproppred import Evaluator

            self.evaluator = Evaluator(name)
            self.metric = "accuracy" if self.evaluator.eval_metric == "acc" else self.evaluator.eval_metric
        return data

    def training_step(self, model, batch):
        logits, h = model(batch.x, batch.adj, return_embedding=True)
        idx = batch.loss_index
        loss = weighted_loss(logits[idx], batch.y[idx], getattr(batch, "loss_weight", None))
        return loss, {"logits": logits, "embedding": h}

    def figure(self, logits: Tensor, y: Tensor) -> float:
        """The metric of ``logits`` ``[m, C]`` against ``y`` ``[m]`` (NaN for no rows)."""
        if y.numel() == 0:
            return float("nan")
        if self.evaluator is not None:
            y_pred = logits.argmax(-1, keepdim=True)
            return float(self.evaluator.eval({"y_true": y.view(-1, 1).cpu(), "y_pred": y_pred.cpu()})[
                self.evaluator.eval_metric])
        return float((logits.argmax(-1) == y).float().mean())

    def score(self, ctx, predictions: Tensor, splits: Sequence[str] = SPLITS) -> dict:
        """``{split}_{metric}`` and ``{split}_loss`` (mean cross-entropy) of ``predictions`` ``[N, C]``."""
        for s in splits:
            if s not in SPLITS:
                raise GnnkitError(f"unknown split {s!r}; known: {', '.join(SPLITS)}")
        y = ctx.features.get("y")
        out = {}
        for s in splits:
            mask = ctx.features.get(f"{s}_mask")
            logits, labels = predictions[mask], y[mask]
            out[f"{s}_{self.metric}"] = self.figure(logits, labels)
            out[f"{s}_loss"] = float(F.cross_entropy(logits, labels, reduction="none").mean()) if mask.any() else float("nan")
            self.user_figures(s, logits, labels, out)
        return out
