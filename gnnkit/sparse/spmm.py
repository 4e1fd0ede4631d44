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
from ..precision import no_autocast


class SparseInputError(GnnkitError, ValueError):
    """An ``edge_index``, weight or dense operand of the wrong shape, dtype, range or device."""


HALF_TYPES = (torch.bfloat16, torch.float16)
MIXABLE = (torch.float32, torch.bfloat16, torch.float16)


def compute_dtype(adj_dtype: torch.dtype, x_dtype: torch.dtype, device: torch.device) -> torch.dtype:
    """The type the product runs in: the common type when the two agree; for a half ``x``: ``x``'s
    type on CUDA (cuSPARSE has half kernels), float32 on CPU (MKL has none)."""
    if adj_dtype == x_dtype and (device.type != "cpu" or x_dtype not in HALF_TYPES):
        return x_dtype
    if device.type == "cpu" or x_dtype not in HALF_TYPES:
        return torch.float32
    return x_dtype


def _product(csr: Tensor, x: Tensor, dtype: torch.dtype) -> Tensor:
    """``csr @ x`` computed in ``dtype`` with autocast off (it would cast the sparse operand to a type
    the backend may lack), returned in ``x``'s type."""
    with no_autocast(x.device.type):
        if x.dtype == dtype:
            return torch.sparse.mm(csr, x)
        return torch.sparse.mm(csr, x.to(dtype)).to(x.dtype)


class _SpMM(torch.autograd.Function):
    @staticmethod
    def forward(ctx, adj, x: Tensor, dtype) -> Tensor:  # type: ignore[override]
        ctx.adj, ctx.dtype = adj, dtype
        return _product(adj.csr_as(dtype), x, dtype)

    @staticmethod
    def backward(ctx, grad: Tensor):  # type: ignore[override]
        if not ctx.needs_input_grad[1]:
            return None, None, None
        return None, _product(ctx.adj.csr_t_as(ctx.dtype), grad.contiguous(), ctx.dtype), None


def spmm(adj, x: Tensor) -> Tensor:
    """``adj @ x`` for an :class:`~gnnkit.sparse.Adjacency` ``[n, m]`` and ``x`` ``[m, F]`` → ``[n, F]``.

    Same types: one CSR product (a half type on CPU runs in float32). Mixed precision (``x``
    bfloat16/float16 against a float32 adjacency, or the reverse): on CPU ``x`` is widened to
    float32, multiplied and the result cast back to ``x``'s type; on CUDA the adjacency's values are
    cast to ``x``'s half type once (cached). The result has ``x``'s type, and so has the gradient,
    ``A^T dL/dY`` computed the same way. Autocast is off inside. Other mixes are refused.
    """
    if not isinstance(x, Tensor) or x.dim() != 2 or x.shape[0] != adj.num_cols:
        shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
        raise SparseInputError(f"spmm: adjacency is {adj.num_rows}x{adj.num_cols}, so x must be "
                               f"[{adj.num_cols}, F], got {shape}")
    a_dtype = adj.csr.dtype
    if x.dtype != a_dtype and not (x.dtype in MIXABLE and a_dtype in MIXABLE):
        raise SparseInputError(f"spmm: adjacency dtype {a_dtype} differs from x dtype {x.dtype} "
                               "(only float32 with bfloat16/float16 mix)")
    if x.device != adj.device:
        raise SparseInputError(f"spmm: adjacency is on {adj.device} but x on {x.device}; use adj.to(x.device)")
    dtype = compute_dtype(a_dtype, x.dtype, x.device)
    if not (torch.is_grad_enabled() and x.requires_grad):
        return _product(adj.csr_as(dtype), x, dtype)
    return _SpMM.apply(adj, x, dtype)
