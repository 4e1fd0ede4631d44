"""Backpropagation: one optimizer over all parameters, one update per batch."""
from __future__ import annotations

import torch

from ..errors import GnnkitError
from .base import Strategy


class Backprop(Strategy):
    """``loss.backward()`` through the whole model, then an optimizer step.

    Args:
        grad_clip: clip the gradient's total norm to this value (``None``: no clipping).
    """

    name = "backprop"

    def __init__(self, grad_clip: float | None = None):
        self.grad_clip = grad_clip
        self.optimizer = None

    def configure(self, ctx, model) -> None:
        self.optimizer = ctx.make_optimizer(model.parameters())

    def step(self, ctx, model, batch, task) -> dict:
        self.optimizer.zero_grad(set_to_none=True)
        loss, outputs = task.training_step(model, batch)
        if not torch.isfinite(loss):
            raise GnnkitError(f"loss became {float(loss)} at epoch {ctx.epoch}; lower the learning rate")
        loss.backward()
        if self.grad_clip:
            torch.nn.utils.clip_grad_norm_(model.parameters(), self.grad_clip)
        self.optimizer.step()
        outputs["loss"] = float(loss.detach())
        return outputs

    def optimizers(self) -> list[torch.optim.Optimizer]:
        return [self.optimizer] if self.optimizer is not None else []

    def state_dict(self) -> dict:
        return {"optimizer": self.optimizer.state_dict() if self.optimizer else None}

    def load_state_dict(self, state: dict) -> None:
        if state.get("optimizer") is not None:
            self.optimizer.load_state_dict(state["optimizer"])
