"""Link-prediction metrics: AUC/AP for random splits, OGB's own metric for ``ogbl-*``.

* :func:`auc_ap`: ROC-AUC and average precision of the scores of positives (label 1) against
  negatives (label 0). The tensor implementations are :mod:`gnnkit.temporal.metrics` (one helper
  for the whole package): AUC = ``(Σ ranks of positives − P(P+1)/2) / (P Q)`` with average ranks for
  ties (the Mann–Whitney statistic), AP = ``Σ_n (R_n − R_{n−1}) P_n`` over the distinct thresholds,
  both equal to scikit-learn's ``roc_auc_score``/``average_precision_score``.
* :func:`ogbl_score`: ``ogb.linkproppred.Evaluator(name).eval``: Hits@K (collab K=50, ppa 100,
  ddi 20) counts a positive as a hit when its score is above the ``K``-th highest *negative* score;
  MRR (citation2) is ``mean_e 1 / rank_e`` of each positive among its own ``[E, K]`` negatives.
"""
from __future__ import annotations

from typing import Dict

import torch
from torch import Tensor

from gnnkit.errors import GnnkitError
from gnnkit.temporal.metrics import average_precision, roc_auc


def auc_ap(pos_scores: Tensor, neg_scores: Tensor) -> Dict[str, float]:
    """``{"auc": .., "ap": ..}`` for positives ``[P]`` against negatives ``[Q]`` (any monotone score:
    logits or probabilities)."""
    pos, neg = pos_scores.detach().reshape(-1), neg_scores.detach().reshape(-1)
    if pos.numel() == 0 or neg.numel() == 0:
        raise GnnkitError(f"AUC/AP need positives and negatives, got {pos.numel()} and {neg.numel()}")
    score = torch.cat([pos, neg]).double()
    label = torch.cat([torch.ones(pos.numel()), torch.zeros(neg.numel())]).double()
    return {"auc": roc_auc(score, label), "ap": average_precision(score, label)}


def ogbl_metric(name: str) -> str:
    """The dataset's metric as OGB names it: ``"hits@50"`` (collab), ``"mrr"`` (citation2), ..."""
    from ogb.linkproppred import Evaluator

    try:
        return Evaluator(name).eval_metric
    except ValueError:
        raise GnnkitError(f"unknown OGB link dataset {name!r}") from None


def ogbl_score(name: str, pos_scores: Tensor, neg_scores: Tensor) -> Dict[str, float]:
    """OGB's evaluator on one split: ``{"hits@50": ..}`` or ``{"mrr": ..}``.

    Hits datasets: ``pos_scores`` ``[P]``, ``neg_scores`` ``[Q]`` (all of the split's negatives);
    MRR datasets: ``pos_scores`` ``[P]``, ``neg_scores`` ``[P, K]`` (each positive's negatives).
    """
    from ogb.linkproppred import Evaluator

    metric = ogbl_metric(name)
    pos, neg = pos_scores.detach().float().cpu().reshape(-1), neg_scores.detach().float().cpu()
    if metric == "mrr":
        if neg.dim() != 2 or neg.shape[0] != pos.numel():
            raise GnnkitError(f"{name}: MRR needs [{pos.numel()}, K] negative scores, got {tuple(neg.shape)}")
        out = Evaluator(name).eval({"y_pred_pos": pos, "y_pred_neg": neg})
        return {"mrr": float(out["mrr_list"].mean())}
    out = Evaluator(name).eval({"y_pred_pos": pos, "y_pred_neg": neg.reshape(-1)})
    return {metric: float(out[metric])}
