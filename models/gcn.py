"""GCN (Kipf & Welling, ICLR 2017): ``H' = σ(Â H W)``, ``Â = D^-1/2 (A + I) D^-1/2``."""
from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor, nn

from .base import GNN


class GCNConv(nn.Module):
    """``Â (h W) + b``: ``h`` ``[n_in, d_in]``, ``adj`` ``[n_out, n_in]`` → ``[n_out, d_out]``.

    ``Â (h W)`` and ``(Â h) W`` are equal; :func:`transform_first` picks the cheaper order from
    the sizes (a row slice of ``Â`` in chunked inference aggregates first, so ``h W`` is not
    recomputed for all nodes per chunk).
    """

    def __init__(self, in_dim: int, out_dim: int, bias: bool = True):
        super().__init__()
        self.lin = nn.Linear(in_dim, out_dim, bias=False)
        self.bias = nn.Parameter(torch.zeros(out_dim)) if bias else None
        nn.init.xavier_uniform_(self.lin.weight)

    def forward(self, h: Tensor, adj, root: Optional[Tensor] = None) -> Tensor:
        if transform_first(adj, self.lin.in_features, self.lin.out_features):
            out = adj @ self.lin(h)
        else:
            out = self.lin(adj @ h)
        return out if self.bias is None else out + self.bias.to(out.dtype)  # stays half under autocast

    def aggregate(self, h: Tensor, adj) -> tuple:
        """The parameter-free part of the layer: ``(Â h,)`` (``[n_out, d_in]``)."""
        return (adj @ h,)

    def transform(self, agg: tuple) -> Tensor:
        """The rest: ``(Â h) W + b`` in one product, ``[n_out, d_out]``."""
        return nn.functional.linear(agg[0], self.lin.weight, self.bias)


def transform_first(adj, d_in: int, d_out: int) -> bool:
    """Whether ``Â (h W)`` costs fewer flops than ``(Â h) W`` for ``adj`` ``[n_out, n_in]``:
    ``n_in d_in d_out + nnz d_out`` against ``nnz d_in + n_out d_in d_out``."""
    first = adj.num_cols * d_in * d_out + adj.nnz * d_out
    after = adj.nnz * d_in + adj.num_rows * d_in * d_out
    return first <= after


class GCN(GNN):
    """Graph convolutional network; ``num_layers`` graph layers, the last folded into ``head``."""

    adj_norm = "gcn"
    head_input_cacheable = True

    def make_layer(self, in_dim: int, out_dim: int) -> nn.Module:
        return GCNConv(in_dim, out_dim)

    def head_input(self, h: Tensor, adj, root: Optional[Tensor] = None) -> Tensor:
        # Â h W = (Â h) W, but when the head narrows the width, (h W) first is cheaper; keep Â h
        # as the head's input so the head is an exact nn.Linear on ``embed``.
        return adj @ h
