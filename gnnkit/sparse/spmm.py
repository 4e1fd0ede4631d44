"""CSR sparse-dense product with a backward through the cached transposed CSR.

``Y = A X`` with ``A`` ``[n, m]`` sparse (fixed, no gradient) and ``X`` ``[m, F]`` dense;
the gradient is ``dL/dX = A^T dL/dY``, another CSR product of the same cost as the forward.
"""
from __future__ import annotations

import torch
from torch import Tensor


class _SpMM(torch.autograd.Function):
    @staticmethod
    def forward(ctx, adj, x: Tensor) -> Tensor:  # type: ignore[override]
        ctx.adj = adj
        return torch.sparse.mm(adj.csr, x)

    @staticmethod
    def backward(ctx, grad: Tensor):  # type: ignore[override]
        if not ctx.needs_input_grad[1]:
            return None, None
        return None, torch.sparse.mm(ctx.adj.csr_t, grad.contiguous())


def spmm(adj, x: Tensor) -> Tensor:
    """``adj @ x`` for an :class:`~gnnkit.sparse.Adjacency` ``[n, m]`` and ``x`` ``[m, F]``."""
    if x.dim() != 2 or x.shape[0] != adj.num_cols:
        raise ValueError(f"spmm: adjacency is {adj.num_rows}x{adj.num_cols} but x has shape {tuple(x.shape)}")
    if x.dtype != adj.csr.dtype:
        raise ValueError(f"spmm: adjacency dtype {adj.csr.dtype} differs from x dtype {x.dtype}")
    if not x.requires_grad:
        return torch.sparse.mm(adj.csr, x)
    return _SpMM.apply(adj, x)
