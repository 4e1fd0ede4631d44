"""Task: what is learned and how it is scored.

A task turns a model and a batch into a loss (``training_step``) and a model and a split into
figures (``evaluate``). It names its metric and whether higher is better; the Trainer selects the
model and stops early on ``val_<metric>``.
"""
from __future__ import annotations

from typing import Any, ClassVar

from ..plugins import Plugin


class Task(Plugin):
    axis = "task"
    package = "gnnkit.tasks"
    _registry: ClassVar[dict[str, type]] = {}

    metric: str = "accuracy"
    higher_is_better: bool = True

    def setup(self, trainer, data) -> Any:
        """Called once by ``fit`` before the sampler's setup; may return the data to train on."""
        return data

    def training_step(self, model, batch) -> tuple[Any, dict]:
        """The batch's loss (a scalar tensor) and outputs handed to callbacks and the sampler."""
        raise NotImplementedError  # abstract: every task defines it

    def evaluate(self, trainer, splits=("train", "val", "test")) -> dict[str, float]:
        """Figures ``{"<split>_<metric>": value, ...}`` on the given splits."""
        raise NotImplementedError  # abstract: every task defines it
