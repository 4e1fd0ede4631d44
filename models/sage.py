"""GraphSAGE with the mean aggregator (Hamilton et al., NeurIPS 2017).

``h'_i = W_l · mean_{j ∈ N(i)} h_j + W_r · h_i + b`` over ``adj`` row-normalized (``"mean"``).

Computed as one product ``[mean_j h_j ‖ h_i] · [W_l ‖ W_r]^T + b`` (one GEMM of inner size
``2·d_in`` instead of two of ``d_in`` and their sum; the parameters stay ``lin_l``/``lin_r``), or,
when it costs fewer FLOPs (:func:`~gnnkit.models.gcn.transform_first`), ``mean_j (W_l h_j) + ...``.
The head's input ``[mean_j h_j ‖ h_i]`` of a sampled block has a backward that adds the root rows'
gradient into ``A^T g`` in place (:class:`_MeanAndRoot`) instead of autograd's zero-filled
``[n_in, d]`` slice gradient and a sum of the two.
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor, nn

from gnnkit.sparse import Adjacency

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
            return agg + self.lin_r(root)
        both = torch.cat([adj @ h, root.to(h.dtype)], dim=1)
        return nn.functional.linear(both, torch.cat([self.lin_l.weight, self.lin_r.weight], dim=1), self.lin_l.bias)

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
        if root is None and isinstance(adj, Adjacency) and h.requires_grad and torch.is_grad_enabled():
            return _MeanAndRoot.apply(h, adj)
        root = h[: adj.num_rows] if root is None else root
        return torch.cat([adj @ h, root], dim=1)


class _MeanAndRoot(torch.autograd.Function):
    """``[A h ‖ h[:n]]`` ``[n, 2d]`` for ``A`` ``[n, n_in]``, ``h`` ``[n_in, d]``; backward
    ``dh = A^T g_1`` with ``g_2`` added into its first ``n`` rows in place (``g = [g_1 ‖ g_2]``)."""

    @staticmethod
    def forward(ctx, h: Tensor, adj) -> Tensor:
        ctx.adj = adj
        return torch.cat([adj @ h, h[: adj.num_rows]], dim=1)

    @staticmethod
    def backward(ctx, g: Tensor):
        adj, d = ctx.adj, g.shape[1] // 2
        dh = adj.t() @ g[:, :d].contiguous()
        dh[: adj.num_rows] += g[:, d:]
        return dh, None
