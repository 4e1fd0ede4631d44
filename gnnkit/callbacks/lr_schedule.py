"""A step learning-rate schedule: ``lr_k = lr_0 · γ^⌊k / step⌋`` for epoch ``k`` (0-based).

Xu et al.'s GIN protocol halves the learning rate every 50 epochs (``StepLR(50, 0.5)``), as PyTorch's
``torch.optim.lr_scheduler.StepLR`` stepped once per epoch. The schedule multiplies the rate of
every optimizer the strategy steps (``strategy.optimizers()``) after each ``step``-th epoch; the
rates are part of the optimizers' state, so a resumed run continues the schedule.
"""
from __future__ import annotations

from ..errors import GnnkitError
from .base import Callback


class StepLR(Callback):
    def __init__(self, step: int, gamma: float = 0.5):
        if step < 1:
            raise GnnkitError(f"the learning-rate step must be >= 1 epoch, got {step}")
        if not 0.0 < gamma <= 1.0:
            raise GnnkitError(f"the learning-rate factor must be in (0, 1], got {gamma}")
        self.step, self.gamma = int(step), float(gamma)

    def on_epoch_end(self, trainer, epoch: int, logs: dict) -> None:
        if (epoch + 1) % self.step == 0:
            for opt in trainer.strategy.optimizers():
                for group in opt.param_groups:
                    group["lr"] *= self.gamma
