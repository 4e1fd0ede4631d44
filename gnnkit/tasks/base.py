"""Task: what is learned and how it is scored (loss and metrics only).

``prepare_data(data, seed)`` checks the graph and returns what the run trains on (before the
run context exists: the task's ``metric`` may depend on the data, e.g. an OGB evaluator).
``setup(ctx, model)`` once the context exists (model read-only). ``training_step(model, batch)``
turns a batch into ``(loss, outputs)``. ``score(ctx, predictions, splits)`` turns the strategy's
output for every node into figures ``{"<split>_<metric>": .., "<split>_loss": ..}``; the loop
evaluates through ``evaluate(ctx, model, predict, splits)``, which is ``score(ctx, predict(),
splits)`` (``predict``: the strategy's output) unless the task overrides :meth:`predict` (rows that
are not nodes) or :meth:`evaluate` (a stream scored in order: temporal link prediction). The task names its
``metric`` and whether higher is better; the loop selects the model on ``val_<metric>``.
"""
from __future__ import annotations

import abc
from typing import Any, Callable, ClassVar, Sequence

from ..plugins import Plugin

SPLITS = ("train", "val", "test")


class Task(Plugin):
    axis = "task"
    package = "gnnkit.tasks"
    _registry: ClassVar[dict[str, type]] = {}

    metric: str = "accuracy"
    higher_is_better: bool = True
    #: the sampler ``gnnkit train`` uses when none is named
    default_sampler: ClassVar[str] = "full"
    #: what the task trains on: ``"graph"`` (a PyG ``Data``) or ``"events"`` (an ``EventStream``)
    input: ClassVar[str] = "graph"

    def prepare_data(self, data: Any, seed: int) -> Any:
        """The validated data this task trains on (called by ``fit`` before anything else)."""
        return data

    def metric_direction(self, name: str) -> bool:
        """Whether higher is better for the validation figure ``name`` (without the split prefix):
        the task's ``metric`` -> ``higher_is_better``, ``"loss"`` -> lower; any other name has no
        declared direction and is refused, never guessed."""
        from ..errors import GnnkitError

        if name == self.metric:
            return self.higher_is_better
        if name == "loss":
            return False
        raise GnnkitError(f"metric {name!r} has no declared direction for the {self.name or type(self).__name__} "
                          f"task (it knows {self.metric!r} and 'loss')")

    def setup(self, ctx, model) -> None:
        """Called once by ``fit`` with the run context, before the strategy and the sampler."""

    def run_summary(self, result: dict) -> dict:
        """Extra per-run figures for ``results.json`` (beyond val/test/epochs/seconds)."""
        return {}

    @abc.abstractmethod
    def training_step(self, model, batch) -> tuple[Any, dict]:
        """The batch's loss (a scalar tensor) and outputs handed to the sampler and callbacks."""

    @abc.abstractmethod
    def score(self, ctx, predictions, splits: Sequence[str] = SPLITS) -> dict[str, float]:
        """Figures ``{"<split>_<metric>": value, "<split>_loss": value, ...}`` on ``splits``."""

    def predict(self, ctx, model, predict: Callable[[], Any]) -> Any:
        """The output scored by :meth:`score` (``Trainer.predict``'s answer): by default the strategy's
        output for every node, ``predict()``; a task whose rows are not nodes (graphs) computes its own."""
        return predict()

    def evaluate(self, ctx, model, predict: Callable[[], Any], splits: Sequence[str] = SPLITS) -> dict[str, float]:
        """The loop's evaluation (eval mode, no gradient): ``score(ctx, self.predict(ctx, model, predict), splits)``."""
        return self.score(ctx, self.predict(ctx, model, predict), splits)
