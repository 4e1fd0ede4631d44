"""Mixed precision inside TGN: the dense products in the autocast type, everything else float32.

Under ``--precision bf16-mixed`` (or ``16-mixed``) the Trainer runs the training step under
``torch.autocast``. TGN does not leave the choice of types to autocast:

* an element-wise operation between a half and a float32 tensor falls to PyTorch's slow mixed-type
  loop on CPU (several times slower than either type alone), and half logits would tie in the
  ranking AP scores: so only the products are half, and their results come back as float32;
* on CPU the half products run in oneDNN, which compiles a kernel for every new matrix shape
  (about as long as the product itself at these sizes), and TGN's row counts change with every
  batch (≈300-600 memory updates, ≈1300-2400 links): so the rows of every half operand are padded
  with zeros to a multiple of :data:`ROWS`, and the shapes repeat.

:func:`linear` ``x Wᵀ + b`` ``[n, o]``: float32 without ``half``; with it, ``x`` cast to ``half``
into a zero-padded ``[⌈n⌉, i]`` buffer (:func:`padded`), ``W`` cast, the product in ``half``, the
first ``n`` rows cast back to float32 and the bias added in float32. Backward (:class:`_HalfLinear`):
``∂L/∂x = G W`` and ``∂L/∂W = Gᵀ x`` with ``G`` the padded half copy of ``∂L/∂y`` (padded rows are
zero, so they add nothing), both returned float32; ``∂L/∂b = Σ_rows G``. The memory, the time
encoding ``φ``, gates, softmax and sums stay float32.
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor

ROWS = 64  # half operands' rows are padded to a multiple of this (oneDNN kernels are per shape)


def autocast_dtype(device_type: str) -> Optional[torch.dtype]:
    """The half type of the autocast region on ``device_type``, or ``None`` outside one."""
    return torch.get_autocast_dtype(device_type) if torch.is_autocast_enabled(device_type) else None


def padded(x: Tensor, dtype: torch.dtype) -> Tensor:
    """``x`` ``[n, ...]`` cast to ``dtype`` in a ``[⌈n / ROWS⌉ · ROWS, ...]`` buffer, the extra rows zero."""
    n = x.size(0)
    out = x.new_empty((-(-n // ROWS) * ROWS,) + tuple(x.shape[1:]), dtype=dtype)
    out[:n].copy_(x)
    out[n:].zero_()
    return out


class _HalfLinear(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor, bias: Optional[Tensor], half: torch.dtype) -> Tensor:
        xh, wh = padded(x, half), weight.to(half)
        y = torch.mm(xh, wh.t())[: x.size(0)].float()
        if bias is not None:
            y.add_(bias)
        ctx.save_for_backward(xh, wh)
        ctx.n, ctx.has_bias = x.size(0), bias is not None
        return y

    @staticmethod
    def backward(ctx, g: Tensor):
        xh, wh = ctx.saved_tensors
        gh = padded(g, xh.dtype)
        need = ctx.needs_input_grad
        dx = torch.mm(gh, wh)[: ctx.n].float() if need[0] else None
        dw = torch.mm(gh.t(), xh).float() if need[1] else None
        db = g.sum(0) if ctx.has_bias and need[2] else None
        return dx, dw, db, None


def linear(x: Tensor, weight: Tensor, bias: Optional[Tensor] = None, half: Optional[torch.dtype] = None) -> Tensor:
    """``x Wᵀ + b`` ``[n, o]`` for ``x`` ``[n, i]``, ``W`` ``[o, i]``: float32 (or ``x``'s type) without
    ``half``; with it, computed in ``half`` (module docstring) and returned as float32."""
    if half is None:
        return F.linear(x, weight, bias)
    with torch.autocast(x.device.type, enabled=False):
        return _HalfLinear.apply(x, weight, bias, half)
