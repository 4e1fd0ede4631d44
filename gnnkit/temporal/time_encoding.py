"""Functional time encoding of TGN / TGAT: ``φ(Δt) = cos(ω Δt + b)``.

``ω`` ``[d]`` and ``b`` ``[d]`` are learnable; ``ω`` starts at ``10^(-linspace(0, 9, d))`` (periods
from 1 to 10⁹ time units) and ``b`` at 0, as in the authors' code. Input ``Δt`` of any shape
(float64 is accepted and cast, so large absolute times are subtracted before the cast); output
``[*Δt.shape, d]`` float32.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn


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
        return torch.cos(dt.to(self.omega.dtype).unsqueeze(-1) * self.omega + self.bias)
