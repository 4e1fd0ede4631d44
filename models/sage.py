"""GraphSAGE with the mean aggregator (Hamilton et al., NeurIPS 2017).

``h'_i = W_l · mean_{j ∈ N(i)} h_j + W_r · h_i + b`` over ``adj`` row-normalized (``"mean"``).
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor, nn

from .base import GNN
from .gcn import transform_first


class SAGEConv(nn.Module):
    """``h`` ``[n_in, d_in]``, ``adj`` ``[n_out, n_in]`` (row mean), ``root`` ``[n_out, d_in]``."""

    def __init__(self, in_dim: int, out_dim: int):
        super().__init__()
        self.lin_l = nn.Linear(in_dim, out_dim)
        self.lin_r = nn.Linear(in_dim, out_dim, bias=False)

    def forward(self, h: Tensor, adj, root: Optional[Tensor] = None) -> Tensor:
        root = h[: adj.num_rows] if root is None else root
        if transform_first(adj, self.lin_l.in_features, self.lin_l.out_features):
            agg = adj @ nn.functional.linear(h, self.lin_l.weight)
            agg = agg + self.lin_l.bias.to(agg.dtype)  # stays half under autocast
        else:
            agg = self.lin_l(adj @ h)
        return agg + self.lin_r(root)

    def aggregate(self, h: Tensor, adj) -> tuple:
        """The parameter-free part of the layer: ``(mean_j h_j, h_i)`` of the output rows."""
        return (adj @ h, h[: adj.num_rows])

    def transform(self, agg: tuple) -> Tensor:
        """The rest: ``W_l · agg[0] + b + W_r · agg[1]``, ``[n_out, d_out]``."""
        return self.lin_l(agg[0]) + self.lin_r(agg[1])


class GraphSAGE(GNN):
    """GraphSAGE (mean); the head maps ``[mean_j h_j ‖ h_i]`` to classes (the last SAGE layer)."""

    adj_norm = "mean"
    head_input_cacheable = True

    def make_layer(self, in_dim: int, out_dim: int) -> nn.Module:
        return SAGEConv(in_dim, out_dim)

    def head_in_dim(self, dim: int) -> int:
        return 2 * dim

    def head_input(self, h: Tensor, adj, root: Optional[Tensor] = None) -> Tensor:
        root = h[: adj.num_rows] if root is None else root
        return torch.cat([adj @ h, root], dim=1)
