"""CSR sparse-dense product with a backward through the cached transposed CSR.

``Y = A X`` with ``A`` ``[n, m]`` sparse (fixed, no gradient) and ``X`` ``[m, F]`` dense;
the gradient is ``dL/dX = A^T dL/dY`` ``[m, F]``, another CSR product (by ``adj.csr_t``, built
once and cached) of the same cost as the forward. Transposed products through MKL's own
``op(A) = A^T`` path (or a CSC view) are several times slower on CPU, hence the explicit transpose.
"""
from __future__ import annotations

import torch
from torch import Tensor

from ..errors import GnnkitError


class SparseInputError(GnnkitError, ValueError):
    """An ``edge_index``, weight or dense operand of the wrong shape, dtype, range or device."""


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
    """``adj @ x`` for an :class:`~gnnkit.sparse.Adjacency` ``[n, m]`` and ``x`` ``[m, F]`` → ``[n, F]``."""
    if not isinstance(x, Tensor) or x.dim() != 2 or x.shape[0] != adj.num_cols:
        shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
        raise SparseInputError(f"spmm: adjacency is {adj.num_rows}x{adj.num_cols}, so x must be "
                               f"[{adj.num_cols}, F], got {shape}")
    if x.dtype != adj.csr.dtype:
        raise SparseInputError(f"spmm: adjacency dtype {adj.csr.dtype} differs from x dtype {x.dtype}")
    if x.device != adj.device:
        raise SparseInputError(f"spmm: adjacency is on {adj.device} but x on {x.device}; use adj.to(x.device)")
    if not (torch.is_grad_enabled() and x.requires_grad):
        return torch.sparse.mm(adj.csr, x)
    return _SpMM.apply(adj, x)
