"""GCN (Kipf & Welling, ICLR 2017): ``H' = σ(Â H W)``, ``Â = D^-1/2 (A + I) D^-1/2``."""
from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor, nn

from .base import GNN


class GCNConv(nn.Module):
    """``Â (h W) + b``: ``h`` ``[n_in, d_in]``, ``adj`` ``[n_out, n_in]`` → ``[n_out, d_out]``.

    The product ``h W`` runs first when it shrinks the width (fewer floats through the sparse
    product), after the aggregation otherwise; both give the same result.
    """

    def __init__(self, in_dim: int, out_dim: int, bias: bool = True):
        super().__init__()
        self.lin = nn.Linear(in_dim, out_dim, bias=False)
        self.bias = nn.Parameter(torch.zeros(out_dim)) if bias else None
        nn.init.xavier_uniform_(self.lin.weight)

    def forward(self, h: Tensor, adj, root: Optional[Tensor] = None) -> Tensor:
        if self.lin.out_features <= self.lin.in_features:
            out = adj @ self.lin(h)
        else:
            out = self.lin(adj @ h)
        return out if self.bias is None else out + self.bias


class GCN(GNN):
    """Graph convolutional network; ``num_layers`` graph layers, the last folded into ``head``."""

    adj_norm = "gcn"

    def make_layer(self, in_dim: int, out_dim: int) -> nn.Module:
        return GCNConv(in_dim, out_dim)

    def head_input(self, h: Tensor, adj, root: Optional[Tensor] = None) -> Tensor:
        # Â h W = (Â h) W, but when the head narrows the width, (h W) first is cheaper; keep Â h
        # as the head's input so the head is an exact nn.Linear on ``embed``.
        return adj @ h
