"""Functional time encoding of TGN / TGAT: ``φ(Δt) = cos(ω Δt + b)``.

``ω`` ``[d]`` and ``b`` ``[d]`` are learnable; ``ω`` starts at ``10^(-linspace(0, 9, d))`` (periods
from 1 to 10⁹ time units) and ``b`` at 0, as in the authors' code. Input ``Δt`` of any shape
(float64 or float32); output ``[*Δt.shape, d]`` float32.

The argument ``a = ω Δt + b`` is formed in float32 (as in both references; ``Δt`` is cast) and
reduced to ``[-π, π]`` (``a − 2π round(a / 2π)``) before the cosine: ``cos`` is 2π-periodic, so
the value is ``cos(a)`` up to the float32 rounding that ``a`` already carries (large for
``Δt ~ 10⁹`` in either form), and the cosine runs on small arguments (several times faster on
CPU than on arguments of 10⁶ and more). Gradients (:class:`_CosineEncoding`): with ``g = sin(a)
⊙ ∂L/∂φ`` ``[M, d]`` over the ``M`` inputs, ``[∂L/∂ω; ∂L/∂b] = −[Δt ‖ 1]ᵀ g`` ``[2, d]``: one
product, the sign applied to its ``2d`` results instead of the ``M·d`` of ``g``; ``Δt`` itself gets
no gradient (it is data).
"""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn

TWO_PI = 2.0 * math.pi


class _CosineEncoding(torch.autograd.Function):
    @staticmethod
    def forward(ctx, dt: Tensor, omega: Tensor, bias: Tensor) -> Tensor:
        t = dt.reshape(-1, 1).to(omega.dtype)
        a = torch.addcmul(bias, t, omega)
        a = torch.addcmul(a, torch.round(a * (1.0 / TWO_PI)), a.new_tensor(-TWO_PI))
        ctx.save_for_backward(a, t)
        return torch.cos(a).view(*dt.shape, omega.numel())

    @staticmethod
    def backward(ctx, grad: Tensor):
        a, t = ctx.saved_tensors
        g = torch.sin(a).mul_(grad.reshape(a.shape))  # −∂L/∂a  [M, d]
        t1 = torch.cat([t.view(1, -1), t.new_ones(1, t.size(0))])  # [Δt ‖ 1]ᵀ  [2, M]
        dw = t1.mm(g).neg_()  # [∂L/∂ω; ∂L/∂b]  [2, d]
        return None, dw[0], dw[1]


class TimeEncoding(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        if dim < 1:
            raise ValueError(f"time encoding dimension must be >= 1, got {dim}")
        self.dim = dim
        self.omega = nn.Parameter(torch.empty(dim))
        self.bias = nn.Parameter(torch.empty(dim))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        with torch.no_grad():
            self.omega.copy_(10.0 ** -torch.linspace(0, 9, self.dim))
            self.bias.zero_()

    def forward(self, dt: Tensor) -> Tensor:
        return _CosineEncoding.apply(dt, self.omega, self.bias)
