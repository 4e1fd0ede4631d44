"""MLP baseline: ignores the graph; same contract as the GNNs (``adj`` may be anything)."""
from __future__ import annotations

from typing import Optional

from torch import Tensor, nn

from .base import GNN


class _Linear(nn.Linear):
    def forward(self, h: Tensor, adj=None, root: Optional[Tensor] = None) -> Tensor:  # type: ignore[override]
        n = h.shape[0] if adj is None else adj.num_rows
        return super().forward(h[:n] if root is None else root)

    def aggregate(self, h: Tensor, adj) -> tuple:
        """No aggregation: the output rows themselves, ``(h[:n_out],)``."""
        n = h.shape[0] if adj is None else adj.num_rows
        return (h[:n],)

    def transform(self, agg: tuple) -> Tensor:
        return nn.Linear.forward(self, agg[0])


class MLP(GNN):
    """``num_layers`` linear layers (the last is ``head``) with ReLU, dropout and norms between."""

    adj_norm = "sum"
    head_input_cacheable = True

    def make_layer(self, in_dim: int, out_dim: int) -> nn.Module:
        return _Linear(in_dim, out_dim)

    def head_input(self, h: Tensor, adj, root: Optional[Tensor] = None) -> Tensor:
        n = h.shape[0] if adj is None else adj.num_rows
        return h[:n] if root is None else root
