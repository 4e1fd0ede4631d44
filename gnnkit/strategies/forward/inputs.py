"""Inputs of ForwardGNN's layers: normalizations, virtual class nodes, label blocks, negatives.

All functions are tensor operations over whole node sets (no Python loops over nodes).

* :func:`row_normalize`: the reference's feature preprocessing (PyG ``NormalizeFeatures``):
  ``x ← x − min(x)`` (one global shift, passed in so that a batch gets the whole graph's), then
  each row divided by ``max(1, Σ_j x_ij)``; signed features are divided by ``max(1, Σ_j |x_ij|)``.
* :func:`l2_normalize`: ``h_i / (‖h_i‖₂ + 1e-8)``, applied to every layer's input.
* :func:`label_rows`: the appended label block ``[n, C]``: one-hot rows for the known nodes,
  ``1/C`` everywhere else.
* :func:`wrong_labels`: ``k`` distinct wrong classes per node, drawn once with a seeded generator.
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from ...errors import GnnkitError


def feature_shift(x: Tensor) -> Optional[float]:
    """The global minimum that :func:`row_normalize` subtracts (the whole graph's, fixed once),
    or ``None`` for features that take negative values (see :func:`row_normalize`)."""
    lo = float(x.min()) if x.numel() else 0.0
    return None if lo < 0 else lo


def row_normalize(x: Tensor, shift: Optional[float]) -> Tensor:
    """``(x − shift)`` with every row divided by ``max(1, row sum)``: ``[n, F] → [n, F]``.

    For signed features (``shift is None``, e.g. Gaussian features) the reference's global shift
    would add a constant far larger than the signal to every entry and wash it out; there each row
    is divided by ``max(1, Σ_j |x_ij|)`` instead, which equals the reference on non-negative rows.
    """
    x = x.float()
    if shift is None:
        return x / x.abs().sum(dim=1, keepdim=True).clamp(min=1.0)
    x = x - shift
    return x / x.sum(dim=1, keepdim=True).clamp(min=1.0)


def l2_normalize(h: Tensor) -> Tensor:
    """Rows scaled to unit length: ``h_i / (‖h_i‖₂ + 1e-8)``, ``[n, d] → [n, d]``."""
    return h / (h.norm(dim=1, keepdim=True) + 1e-8)


def l2_normalize_(h: Tensor) -> Tensor:
    """:func:`l2_normalize` in place (no autograd; for a fresh tensor nobody else reads)."""
    return h.div_(h.norm(dim=1, keepdim=True).add_(1e-8))


def virtual_node_features(num_classes: int, dim: int, seed: int) -> Tensor:
    """``[C, dim]`` fixed features of the virtual class nodes, ``N(0, 1)`` from ``seed`` (CPU)."""
    gen = torch.Generator().manual_seed(int(seed))
    return torch.randn(num_classes, dim, generator=gen)


def label_rows(labels: Tensor, known: Tensor, num_classes: int) -> Tensor:
    """``[n, C]``: ``onehot(labels[i])`` where ``known[i]``, ``1/C`` in every other row."""
    out = torch.full((labels.numel(), num_classes), 1.0 / num_classes, device=labels.device)
    idx = known.nonzero().view(-1)
    out[idx] = torch.nn.functional.one_hot(labels[idx].clamp(min=0), num_classes).float()
    return out


def wrong_labels(y: Tensor, num_classes: int, k: int, seed: int) -> Tensor:
    """``[n, k]`` int64: for every node ``k`` distinct classes other than ``y[i]``, random order.

    Nodes without a label (``y = −1``) get any ``k`` distinct classes (they are never trained on).
    """
    if not 1 <= k <= num_classes - 1:
        raise GnnkitError(f"the number of negative labels must lie in [1, {num_classes - 1}], got {k}")
    gen = torch.Generator().manual_seed(int(seed))
    r = torch.rand(y.numel(), num_classes, generator=gen)
    lab = y.cpu()
    has = lab >= 0
    r[has.nonzero().view(-1), lab[has]] = 2.0  # the true class sorts last
    return r.argsort(dim=1)[:, :k].to(y.device)


def check_labels(y: Tensor, num_classes: Optional[int]) -> int:
    """The number of classes of a single-label graph; raises on multi-label targets."""
    if y.dim() != 1:
        raise GnnkitError("the forward strategy handles single-label node classification only (y must be [N])")
    c = int(num_classes) if num_classes is not None else int(y.max()) + 1
    if c < 2:
        raise GnnkitError(f"the forward strategy needs at least 2 classes, got {c}")
    return c
