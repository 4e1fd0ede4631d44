"""Backpropagation: one optimizer over all parameters, one update per batch.

Mixed precision (``ctx.precision``, :mod:`gnnkit.precision`): the task's forward and loss run under
autocast, the backward outside it; ``"16-mixed"`` scales the loss with a gradient scaler (its state
is part of :meth:`Backprop.state_dict`). Prediction runs under the same autocast and returns float32.
"""
from __future__ import annotations

import torch

from .. import precision as prec
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
        self.scaler = None

    def configure(self, ctx, model) -> None:
        self.optimizer = ctx.make_optimizer(model.parameters())
        self.scaler = prec.make_scaler(ctx.precision, ctx.device)
        prec.note_cpu_half(ctx.precision, ctx.device)  # float16 products slow on this CPU: said once

    def step(self, ctx, model, batch, task) -> dict:
        self.optimizer.zero_grad(set_to_none=True)
        with prec.autocast(ctx.precision, ctx.device):
            loss, outputs = task.training_step(model, batch)
        loss = prec.as_float(loss)
        if not torch.isfinite(loss):
            raise GnnkitError(f"loss became {float(loss)} at epoch {ctx.epoch}; lower the learning rate")
        params = model.parameters() if self.grad_clip else None
        prec.backward_step(loss, self.optimizer, self.scaler, params, self.grad_clip)
        outputs["loss"] = float(loss.detach())
        return outputs

    def predict(self, ctx, model):
        """The base prediction under the run's autocast, as float32 ``[N, C]``."""
        with prec.autocast(ctx.precision, ctx.device):
            out = super().predict(ctx, model)
        return prec.as_float(out)

    def optimizers(self) -> list[torch.optim.Optimizer]:
        return [self.optimizer] if self.optimizer is not None else []

    def state_dict(self) -> dict:
        state = {"optimizer": self.optimizer.state_dict() if self.optimizer else None}
        if self.scaler is not None:
            state["scaler"] = self.scaler.state_dict()
        return state

    def load_state_dict(self, state: dict) -> None:
        if state.get("optimizer") is not None:
            self.optimizer.load_state_dict(state["optimizer"])
        if self.scaler is not None and state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
