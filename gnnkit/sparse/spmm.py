"""CSR sparse-dense product with a backward through the cached transposed CSR.

``Y = A X`` with ``A`` ``[n, m]`` sparse (fixed, no gradient) and ``X`` ``[m, F]`` dense;
the gradient is ``dL/dX = A^T dL/dY`` ``[m, F]``, another CSR product (by ``adj.csr_t``, built
once and cached) of the same cost as the forward. Transposed products through MKL's own
``op(A) = A^T`` path (or a CSC view) are several times slower on CPU, hence the explicit transpose.

Mixed precision (:mod:`gnnkit.precision`): the product switches autocast off (it would cast the
sparse operand to a type the backend may lack) and takes a half ``X`` through
:func:`compute_dtype` (float32 on CPU, where MKL has no half kernel: widen, multiply, cast back),
so activations and their gradients stay in ``X``'s type.
"""
from __future__ import annotations

import threading

import torch
from torch import Tensor

from ..errors import GnnkitError
from ..precision import no_autocast


class SparseInputError(GnnkitError, ValueError):
    """An ``edge_index``, weight or dense operand of the wrong shape, dtype, range or device."""


HALF_TYPES = (torch.bfloat16, torch.float16)
MIXABLE = (torch.float32, torch.bfloat16, torch.float16)


def compute_dtype(adj_dtype: torch.dtype, x_dtype: torch.dtype, device: torch.device) -> torch.dtype:
    """The type the product runs in: the common type when the two agree (and the backend has the
    kernel); for a half ``x``: float16 on CUDA (cuSPARSE's SpMM, float32 accumulation), float32 for
    bfloat16 on CUDA (its CSR kernels have had wrong results, pytorch#97668: not yet checked here)
    and for both on CPU (MKL has no half kernel)."""
    if adj_dtype == x_dtype and x_dtype not in HALF_TYPES:
        return x_dtype
    if device.type == "cuda" and x_dtype == torch.float16:
        return torch.float16
    return torch.float32


#: most bytes of ``x`` widened at once on the half path (see :func:`_product`)
WIDEN_BYTES = 64 << 20
_WORK = threading.local()  # per thread: {dtype: reusable 1-d buffer of the widened columns (CPU)}


def _widen(x: Tensor, dtype: torch.dtype) -> Tensor:
    """``x`` in ``dtype``, contiguous. On the CPU it is copied into this thread's reusable buffer
    (grown when too small, at most :data:`WIDEN_BYTES` plus one row block): a fresh multi-megabyte
    tensor per step pays its page faults every time (a [161549, 100] widening: 98 ms fresh, 12 ms
    into the reused buffer on the 2-core benchmark machine). The view is only read by the product
    that follows, before the next widening in the same thread."""
    if x.device.type != "cpu":
        return x.to(dtype, memory_format=torch.contiguous_format)
    bufs = _WORK.__dict__.setdefault("bufs", {})
    buf = bufs.get(dtype)
    if buf is None or buf.numel() < x.numel():
        buf = bufs[dtype] = torch.empty(x.numel(), dtype=dtype)
    return buf[:x.numel()].view(x.shape).copy_(x)


def _product(csr: Tensor, x: Tensor, dtype: torch.dtype) -> Tensor:
    """``csr @ x`` computed in ``dtype`` with autocast off (it would cast the sparse operand to a type
    the backend may lack), returned in ``x``'s type.

    A half ``x`` ``[m, F]`` widened to ``dtype`` at once would put an ``[m, F]`` float32 copy (and the
    float32 result ``[n, F]``) beside it: twice its own size and more, for every row chunk of a
    whole-graph inference. So the widening goes by blocks of ``k`` columns, ``k`` the most whose
    float32 copy ``[m, k]`` fits :data:`WIDEN_BYTES` (at least 8), each into a reused buffer
    (:func:`_widen`): each block ``csr @ x[:, j:j+k]`` is computed in ``dtype`` and written into the
    half result, column ``j`` of which depends on column ``j`` of ``x`` alone, so the values are those
    of the one-block product."""
    with no_autocast(x.device.type):
        if x.dtype == dtype:
            return torch.sparse.mm(csr, x)
        cols = x.shape[1]
        k = max(8, WIDEN_BYTES // max(1, x.shape[0] * dtype.itemsize))
        if k >= cols:
            return torch.sparse.mm(csr, _widen(x, dtype)).to(x.dtype)
        out = torch.empty(csr.shape[0], cols, dtype=x.dtype, device=x.device)
        for j in range(0, cols, k):  # a few column blocks, not a loop over rows
            out[:, j:j + k] = torch.sparse.mm(csr, _widen(x[:, j:j + k], dtype))
        return out


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

    Same types: one CSR product. A half ``x`` (bfloat16/float16, against a float32 or half
    adjacency) runs in :func:`compute_dtype`: float32 (``x`` widened, multiplied by the float32
    values, the result cast back) except float16 on CUDA, where the adjacency's values are cast to
    float16 once (cached) for cuSPARSE. The result has ``x``'s type, and so has the gradient
    ``A^T dL/dY``, computed the same way. Autocast is off inside. Other mixes are refused.
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
