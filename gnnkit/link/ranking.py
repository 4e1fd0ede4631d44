"""One-vs-many ranking metrics (TGB's and OGB's MRR and Hits@K), in torch, vectorized.

Each positive ``e`` with score ``p_e`` is ranked against its own negatives ``n_e1..n_eK``
(``[E, K]``; ``valid`` ``[E, K]`` masks padding, e.g. the ``-1`` entries of
:func:`gnnkit.link.tgb_negatives.tgb_negatives`). With ties split evenly (TGB's and OGB's rule):

``rank_e = 1 + (|{k : n_ek > p_e}| + |{k : n_ek >= p_e}|) / 2``

``MRR = mean_e 1 / rank_e``, ``Hits@K = mean_e [rank_e <= K]``. "Filtered" MRR means the negatives
exclude the other true destinations of the same source at the same time, which the TGB negatives
already do when they are drawn.
"""
from __future__ import annotations

from typing import Dict, Optional

import torch
from torch import Tensor

from gnnkit.errors import GnnkitError


def ranks(pos: Tensor, neg: Tensor, valid: Optional[Tensor] = None) -> Tensor:
    """``[E]`` float64 ranks of ``pos`` ``[E]`` among ``neg`` ``[E, K]`` (module docstring)."""
    pos = pos.detach().reshape(-1, 1).double()
    neg = neg.detach().double()
    if neg.dim() != 2 or neg.shape[0] != pos.shape[0]:
        raise GnnkitError(f"ranking needs [E, K] negative scores for E={pos.shape[0]} positives, "
                          f"got {tuple(neg.shape)}")
    if valid is None:
        valid = torch.ones_like(neg, dtype=torch.bool)
    if valid.shape != neg.shape:
        raise GnnkitError(f"valid mask {tuple(valid.shape)} does not match the negatives {tuple(neg.shape)}")
    above = ((neg > pos) & valid).sum(1).double()
    at_least = ((neg >= pos) & valid).sum(1).double()
    return 1.0 + 0.5 * (above + at_least)


def rank_metrics(pos: Tensor, neg: Tensor, valid: Optional[Tensor] = None, k: int = 10) -> Dict[str, float]:
    """``{"mrr": .., f"hits@{k}": ..}`` averaged over the positives."""
    r = ranks(pos, neg, valid)
    if r.numel() == 0:
        raise GnnkitError("no positive events to rank")
    return {"mrr": float((1.0 / r).mean()), f"hits@{k}": float((r <= k).double().mean())}
