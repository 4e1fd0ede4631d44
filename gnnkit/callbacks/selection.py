"""Model selection: keep the weights with the best validation figure.

An evaluation is better when its monitored figure (``trainer.monitor``, e.g. ``val_accuracy``)
is strictly better; on a tie the lower validation loss wins (accuracy on a few hundred nodes moves
in coarse steps, so ties are common). The direction is the one the task declares for the monitored
figure (``trainer.higher_is_better``: :meth:`gnnkit.tasks.base.Task.metric_direction`, which
refuses a figure without one). A NaN figure (undefined, e.g. a metric on an empty split) is never
better than a number, and any number is better than a NaN best. ``since_improve`` counts the validations since the last
selection; the loop's plateau and early stopping read it. At the end of ``fit`` the loop restores
the selected weights.
"""
from __future__ import annotations

import math
from typing import Any, Optional

from .base import Callback


class ModelSelection(Callback):
    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.best_value: Optional[float] = None
        self.best_epoch, self.best_state, self.best_metrics, self.since_improve = -1, None, {}, 0
        self.best_evaluated = False  # best_metrics are the loop's evaluation of exactly best_state

    def is_better(self, value: float, metrics: dict, higher_is_better: bool) -> bool:
        if self.best_value is None:
            return True
        if math.isnan(value) or math.isnan(self.best_value):
            return not math.isnan(value)
        if value != self.best_value:
            return value > self.best_value if higher_is_better else value < self.best_value
        loss, best_loss = metrics.get("val_loss"), self.best_metrics.get("val_loss")
        return loss is not None and best_loss is not None and loss < best_loss

    def observe(self, trainer, metrics: dict) -> bool:
        """Select the current weights when ``metrics`` beat the best so far; whether they did."""
        if self.is_better(float(metrics[trainer.monitor]), metrics, trainer.higher_is_better):
            self.select(trainer, metrics, evaluated=True)
            return True
        self.since_improve += 1
        return False

    def select(self, trainer, metrics: dict, evaluated: bool = False) -> None:
        """Make the current weights the selected model, with ``metrics`` as their figures
        (``evaluated``: the loop's own evaluation of these weights, so reusable as their final figures)."""
        self.best_evaluated = evaluated
        self.best_value, self.best_epoch = float(metrics[trainer.monitor]), trainer.epoch
        self.best_metrics = dict(metrics)
        self.best_state = {k: v.detach().cpu().clone() for k, v in trainer.raw_model.state_dict().items()}
        self.since_improve = 0

    def restart_patience(self) -> None:
        self.since_improve = 0

    def restore(self, model) -> None:
        if self.best_state is not None:
            model.load_state_dict(self.best_state)

    def state_dict(self) -> dict[str, Any]:
        return {"best_value": self.best_value, "best_epoch": self.best_epoch, "best_state": self.best_state,
                "best_metrics": self.best_metrics, "since_improve": self.since_improve,
                "best_evaluated": self.best_evaluated}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best_value, self.best_epoch, self.best_state = state["best_value"], state["best_epoch"], state["best_state"]
        self.best_metrics, self.since_improve = dict(state["best_metrics"]), state["since_improve"]
        self.best_evaluated = bool(state.get("best_evaluated", False))
