"""Average precision and ROC AUC of scores against binary labels, in torch.

Both match scikit-learn's ``average_precision_score`` and ``roc_auc_score`` (ties handled as
there: one step per distinct score).

* AP = Σ_n (R_n − R_{n−1}) P_n over the distinct score thresholds, taken from high to low.
* AUC = (Σ ranks of positives − n_pos (n_pos + 1) / 2) / (n_pos n_neg), with average ranks for ties.
"""
from __future__ import annotations

import torch
from torch import Tensor


def average_precision(score: Tensor, label: Tensor) -> float:
    score, label = score.detach().double().view(-1), label.detach().double().view(-1)
    n_pos = float(label.sum())
    if n_pos == 0:
        return float("nan")
    order = torch.argsort(score, descending=True)
    s, y = score[order], label[order]
    tp = torch.cumsum(y, 0)
    last = torch.ones_like(s, dtype=torch.bool)  # last row of each group of equal scores
    last[:-1] = s[1:] != s[:-1]
    tp = tp[last]
    seen = torch.arange(1, s.numel() + 1, dtype=torch.float64, device=s.device)[last]
    precision, recall = tp / seen, tp / n_pos
    d_recall = torch.diff(recall, prepend=recall.new_zeros(1))
    return float((d_recall * precision).sum())


def roc_auc(score: Tensor, label: Tensor) -> float:
    score, label = score.detach().double().view(-1), label.detach().double().view(-1)
    n_pos = float(label.sum())
    n_neg = label.numel() - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    s, order = torch.sort(score)
    uniq, inv, counts = torch.unique_consecutive(s, return_inverse=True, return_counts=True)
    end = torch.cumsum(counts, 0).double()
    avg_rank = end - (counts.double() - 1) / 2  # 1-based average rank of each tie group
    ranks = avg_rank[inv]
    return float(((ranks * label[order]).sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))
