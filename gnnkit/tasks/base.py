"""Task: what is learned and how it is scored.

A task turns a model and a batch into a loss (``training_step``) and a model and a split into
figures (``evaluate``). It names its metric and whether higher is better; the Trainer selects the
model and stops early on ``val_<metric>``.
"""
from __future__ import annotations

from typing import Any, ClassVar, Optional

from ..plugins import Plugin


class Task(Plugin):
    axis = "task"
    package = "gnnkit.tasks"
    _registry: ClassVar[dict[str, type]] = {}

    metric: str = "accuracy"
    higher_is_better: bool = True
    #: ``None`` when the task runs on several processes, else the reason it cannot.
    distributed_unsupported: Optional[str] = None

    # -- used by ``gnnkit train`` -----------------------------------------------------------------
    def load_data(self, args) -> Any:
        """The dataset named on the command line (``--dataset``, ``--root``, ...)."""
        raise NotImplementedError  # abstract: every task defines it

    def build_model(self, args, data):
        """The model named on the command line, sized for ``data``."""
        raise NotImplementedError  # abstract: every task defines it

    def run_summary(self, result: dict) -> dict:
        """Extra per-run figures for ``results.json`` (beyond val/test/epochs/seconds)."""
        return {}

    # -- used by the Trainer ----------------------------------------------------------------------
    def setup(self, trainer, data) -> Any:
        """Called once by ``fit`` before the sampler's setup; may return the data to train on."""
        return data

    def training_step(self, model, batch) -> tuple[Any, dict]:
        """The batch's loss (a scalar tensor) and outputs handed to callbacks and the sampler."""
        raise NotImplementedError  # abstract: every task defines it

    def predict(self, trainer):
        """The model's output for every node (what ``Trainer.predict`` returns)."""
        return trainer.strategy.predict(trainer, trainer.data)

    def evaluate(self, trainer, splits=("train", "val", "test")) -> dict[str, float]:
        """Figures ``{"<split>_<metric>": value, ...}`` on the given splits."""
        raise NotImplementedError  # abstract: every task defines it
