"""Inverted dropout with a cheap CPU mask (installed as ``gnnkit.models.dropout``).

``dropout(x, p, training) = x · m / (1 - p)`` with ``m_i`` independent Bernoulli(``1 - p``) keep
bits, as :func:`torch.nn.functional.dropout`; same shape and dtype as ``x``; the identity when not
training or ``p == 0``; ``x · 0`` when ``p == 1``. The gradient is ``grad · m / (1 - p)``.

Why not ``F.dropout`` on CPU: it draws one ``bernoulli_`` number per element (a Mersenne-twister
draw and a float compare each, ~15-30 ns), 80% of a neighbor-sampled GraphSAGE step in
``benchmarks/step_floor.py``. Here the keep bits come from full-range 64-bit draws of torch's CPU
generator (``random_``; so ``torch.manual_seed`` fixes them and the same seed gives the same mask),
``b`` bits per element:

* ``p = k / 2^b`` for ``b ∈ {1, 2, 4, 8}`` (``0.5``, ``0.25``, ``0.75``, ``0.125``, ... any multiple of
  ``1/256``): each element's ``b``-bit field ``u`` (uniform on ``0 .. 2^b - 1``) keeps it when
  ``u >= k``, so ``P(keep) = 1 - p`` exactly. A byte holds ``8 / b`` fields; a ``[256, 8 / b]``
  table maps each random byte to its elements' factors (``1/(1-p)`` or ``0``), one ``index_select``
  pass, then one multiply. ``p = 0.5`` costs one 64-bit draw per 64 elements.
* any other ``p`` (``0.1``, ``0.3``, ...): each element gets a uniform 32-bit integer ``u`` and is
  kept when ``u >= k = round(p · 2^32)``, i.e. ``p`` is rounded to the nearest multiple of ``2^-32``
  (error at most ``2^-33 ≈ 1.2e-10``, below float32's resolution of ``p`` itself).

Backward saves only the random bytes (``b/8`` bytes per element; a bool per element for the 32-bit
path) and rebuilds the factors. Half types (bf16/fp16) keep their dtype: the factor is folded into
the table when ``1/(1-p)`` is exact in that type (``p = 0.5``: 2), else applied as a scalar
multiply computed in float32 (as torch does). On other devices (CUDA: a fast counter-based
``bernoulli_``), for non-float ``x`` and inside ``torch.compile`` (where inductor generates the
mask in the fused kernel itself) this is :func:`torch.nn.functional.dropout`.
"""
from __future__ import annotations

import math
from typing import Optional

import torch
from torch import Tensor, nn

_TABLE_BITS = (1, 2, 4, 8)


def bits_for(p: float) -> int:
    """Bits of randomness per element for ``p``: the smallest ``b`` of ``1, 2, 4, 8`` with
    ``p · 2^b`` an integer, else 32 (``p`` rounded to a multiple of ``2^-32``)."""
    for b in _TABLE_BITS:
        if float(p * (1 << b)).is_integer():
            return b
    return 32


def keep_probability(p: float) -> float:
    """The exact keep probability :func:`dropout` uses for ``p`` (``1 - p`` after the rounding)."""
    b = bits_for(p)
    return 1.0 - min(round(p * 2.0 ** b), 2 ** b - 1) / 2.0 ** b


def _random_bytes(nbytes: int, device, generator: Optional[torch.Generator] = None) -> Tensor:
    """``nbytes`` uniform random bytes from full-range int64 draws of ``generator`` (default: torch's)."""
    words = torch.empty((nbytes + 7) // 8, dtype=torch.int64, device=device)
    words.random_(-2 ** 63, None, generator=generator)
    return words.view(torch.uint8)[:nbytes]


_MANTISSA = {torch.float64: 53, torch.float32: 24, torch.float16: 11, torch.bfloat16: 8}


def _scale_in(dtype: torch.dtype, scale: float) -> bool:
    """Whether ``scale`` (``>= 1``, well inside every type's exponent range) is exact in ``dtype``."""
    m, _ = math.frexp(scale)
    return float(m * 2.0 ** _MANTISSA.get(dtype, 0)).is_integer()


def _table(b: int, k: int, value: float, dtype: torch.dtype, device) -> Tensor:
    """``[256, 8 / b]``: entry ``(v, j)`` is ``value`` when field ``j`` of byte ``v`` is ``>= k``."""
    v = torch.arange(256, device=device).unsqueeze(1)
    shifts = torch.arange(0, 8, b, device=device)
    fields = (v >> shifts) & ((1 << b) - 1)
    return (fields >= k).to(dtype) * torch.tensor(value, dtype=dtype, device=device)


class _TableDropout(torch.autograd.Function):
    """``x · T[r]`` for ``b <= 8``: ``r`` the random bytes, ``T`` :func:`_table`."""

    @staticmethod
    def forward(ctx, x: Tensor, p: float, b: int, generator: Optional[torch.Generator]) -> Tensor:
        n = x.numel()
        k = round(p * (1 << b))
        scale = 1.0 / (1.0 - k / (1 << b))
        folded = _scale_in(x.dtype, scale)
        table = _table(b, k, scale if folded else 1.0, x.dtype, x.device)
        r = _random_bytes((n * b + 7) // 8, x.device, generator)
        out = _expand(table, r, n, x.shape).mul_(x)
        if not folded:
            out.mul_(scale)
        ctx.save_for_backward(table, r)
        ctx.scale = None if folded else scale
        return out

    @staticmethod
    def backward(ctx, grad: Tensor):
        table, r = ctx.saved_tensors
        g = _expand(table, r, grad.numel(), grad.shape).mul_(grad)
        if ctx.scale is not None:
            g.mul_(ctx.scale)
        return g, None, None, None


def _expand(table: Tensor, r: Tensor, n: int, shape) -> Tensor:
    """The per-element factors ``T[r]`` flattened to ``n`` and shaped ``shape`` (a fresh tensor)."""
    return table.index_select(0, r.int()).view(-1)[:n].view(shape)


class _ThresholdDropout(torch.autograd.Function):
    """``x · [u >= k] / (1 - k/2^32)`` with ``u`` uniform 32-bit integers (signed compare)."""

    @staticmethod
    def forward(ctx, x: Tensor, p: float, generator: Optional[torch.Generator]) -> Tensor:
        n = x.numel()
        k = min(round(p * 2.0 ** 32), (1 << 32) - 1)
        u = _random_bytes(4 * n, x.device, generator).view(torch.int32).view(x.shape)
        keep = u >= k - (1 << 31)
        scale = 1.0 / (1.0 - k / 2.0 ** 32)
        ctx.save_for_backward(keep)
        ctx.scale = scale
        return (x * keep).mul_(scale)

    @staticmethod
    def backward(ctx, grad: Tensor):
        (keep,) = ctx.saved_tensors
        return (grad * keep).mul_(ctx.scale), None, None


class _ReluTableDropout(torch.autograd.Function):
    """``dropout(relu(z))`` in one expansion: ``out = max(T[r] · z, 0)`` (``T[r] >= 0``), and, since
    ``out > 0`` exactly where ``z > 0`` and the element is kept, ``dz = g · [out > 0] / (1 - p)``
    from ``out`` alone (the next layer keeps ``out`` anyway)."""

    @staticmethod
    def forward(ctx, z: Tensor, p: float, b: int, generator: Optional[torch.Generator]) -> Tensor:
        k = round(p * (1 << b))
        scale = 1.0 / (1.0 - k / (1 << b))
        folded = _scale_in(z.dtype, scale)
        table = _table(b, k, scale if folded else 1.0, z.dtype, z.device)
        r = _random_bytes((z.numel() * b + 7) // 8, z.device, generator)
        out = _expand(table, r, z.numel(), z.shape).mul_(z).clamp_min_(0)
        if not folded:
            out.mul_(scale)
        ctx.save_for_backward(out)
        ctx.scale = scale
        return out

    @staticmethod
    def backward(ctx, grad: Tensor):
        (out,) = ctx.saved_tensors
        return torch.ops.aten.threshold_backward(grad, out, 0).mul_(ctx.scale), None, None, None


def relu_dropout(z: Tensor, p: float = 0.5, training: bool = True) -> Tensor:
    """``dropout(relu(z), p, training)`` (same values, mask and random stream as the two calls),
    fused on CPU for ``p`` of the table path: one fresh tensor and three passes forward, two backward
    (the two calls: two tensors and four passes each way)."""
    if (training and 0.0 < p < 1.0 and z.device.type == "cpu" and z.is_floating_point() and z.numel()
            and not torch.compiler.is_compiling() and bits_for(p) <= 8):
        return _ReluTableDropout.apply(z, p, bits_for(p), None)
    return dropout(torch.relu(z), p, training)


def dropout(x: Tensor, p: float = 0.5, training: bool = True, generator: Optional[torch.Generator] = None) -> Tensor:
    """Inverted dropout of ``x`` (any shape) with drop probability ``p`` (module docstring); the
    random bits come from ``generator`` (a CPU ``torch.Generator``) or torch's default one."""
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout probability must be in [0, 1], got {p}")
    if not training or p == 0.0:
        return x
    if p == 1.0:
        return x * 0.0
    if x.device.type != "cpu" or not x.is_floating_point() or torch.compiler.is_compiling():
        if generator is None:
            return nn.functional.dropout(x, p, training)
        return x * torch.empty_like(x).bernoulli_(1.0 - p, generator=generator) / (1.0 - p)
    if x.numel() == 0:
        return x * 1.0
    b = bits_for(p)
    return _TableDropout.apply(x, p, b, generator) if b <= 8 else _ThresholdDropout.apply(x, p, generator)
