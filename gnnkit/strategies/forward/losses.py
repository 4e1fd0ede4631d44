"""ForwardGNN's local losses, one per layer (no gradient crosses layers).

``rows`` ``[m]``: the rows that carry the loss; ``weight`` ``[m]`` optional, the loss is then
``Σ w_i ℓ_i`` instead of the mean.

* SF: logits ``[m, C] = h[rows] · h[n:n+C]ᵀ`` (the ``C`` virtual class nodes are the last rows of
  ``h``, temperature 1), cross-entropy with the rows' labels. Under mixed precision the product runs
  in float32 with autocast off (:func:`dots`): the rows are L2-normalized, so the logits lie in
  ``[-1, 1]`` and differ between classes by hundredths, below bfloat16's resolution near 1
  (``2^-8``); a half product tied the classes (Cora, SF on Cluster-GCN batches, seed 1: layer 1's
  first validation 0.116 in bfloat16 against 0.500 in float32, final test 63.5 against 75.2).
* FF: goodness ``g_i = Σ_j h_ij² − θ``; ``BCE(g_pos, 1) + mean_k BCE(g_neg_k, 0)`` with ``g_pos``
  from the true-label stream and ``g_neg_k`` from the ``k``-th wrong-label stream.
"""
from __future__ import annotations

from typing import List, Optional

import torch
import torch.nn.functional as F
from torch import Tensor

from ...precision import as_float, no_autocast


def reduce_loss(losses: Tensor, weight: Optional[Tensor]) -> Tensor:
    """``mean(losses)``, or ``Σ w_i losses_i`` with ``weight`` ``[m]``."""
    return losses.mean() if weight is None else (losses * weight).sum()


def dots(a: Tensor, b: Tensor) -> Tensor:
    """``a · bᵀ`` ``[m, C]`` of ``a`` ``[m, d]`` and ``b`` ``[C, d]`` in float32, autocast off (half
    inputs widened first; the module docstring says why)."""
    with no_autocast(a.device.type):
        return a.float() @ b.float().t()


def sf_logits(h: Tensor, n: int, rows: Optional[Tensor] = None) -> Tensor:
    """``[m, C]`` dot products of the real rows ``h[rows]`` (default ``h[:n]``) with the virtual rows
    ``h[n:]``, in float32 (:func:`dots`)."""
    real = h[:n] if rows is None else h[rows]
    return dots(real, h[n:])


def sf_loss(h: Tensor, n: int, rows: Optional[Tensor], y: Tensor, weight: Optional[Tensor] = None) -> Tensor:
    """Cross-entropy of :func:`sf_logits` ``[m, C]`` against ``y`` ``[m]``."""
    return reduce_loss(F.cross_entropy(sf_logits(h, n, rows), y, reduction="none"), weight)


def sf_loss_parts(h_rows: Tensor, h_vn: Tensor, y: Tensor, weight: Optional[Tensor] = None) -> Tensor:
    """:func:`sf_loss` from the loss rows' outputs ``[m, d]`` and the virtual rows' ``[C, d]``."""
    return reduce_loss(F.cross_entropy(dots(h_rows, h_vn), y, reduction="none"), weight)


def goodness(h: Tensor, theta: float) -> Tensor:
    """``[n]``: ``Σ_j h_ij² − θ``."""
    return as_float(h).pow(2).sum(dim=1) - theta


def ff_loss(outputs: List[Tensor], rows: Optional[Tensor], theta: float, weight: Optional[Tensor] = None) -> Tensor:
    """``outputs[0]`` ``[n, d]`` the true-label stream, ``outputs[1:]`` one per wrong label
    (``rows=None``: all rows)."""
    outputs = outputs if rows is None else [h[rows] for h in outputs]
    pos = goodness(outputs[0], theta)
    loss = reduce_loss(F.binary_cross_entropy_with_logits(pos, torch.ones_like(pos), reduction="none"), weight)
    negs = [reduce_loss(F.binary_cross_entropy_with_logits(g, torch.zeros_like(g), reduction="none"), weight)
            for g in (goodness(h, theta) for h in outputs[1:])]
    return loss + torch.stack(negs).mean()
