"""TEMPORARY: drives the new-protocol ForwardLearning from the pre-redesign Trainer (removed when
the new loop lands)."""
from __future__ import annotations

from types import SimpleNamespace


def is_trainer(obj) -> bool:
    return hasattr(obj, "raw_model") and hasattr(obj, "mark_best")


class LegacyContext:
    def __init__(self, trainer):
        from ...stores import from_data

        self.t = trainer
        self.graph, self.features = from_data(trainer.data)
        self.device, self.seed, self.max_epochs = trainer.device, trainer.seed, trainer.max_epochs
        self.world_size = trainer.world_size

    @property
    def adj_norm(self):
        return getattr(self.t.raw_model, "adj_norm", "gcn")

    @property
    def diag_lambda(self):
        return float(getattr(self.t.raw_model, "diag_lambda", 0.0) or 0.0)

    @property
    def monitor(self):
        return self.t.monitor

    @property
    def higher_is_better(self):
        return self.t.higher_is_better

    def make_optimizer(self, params):
        return self.t.make_optimizer(params)


def evaluate_of(trainer):
    return lambda splits: trainer.task.evaluate(trainer, splits=tuple(splits))


def apply(trainer, control) -> None:
    if control is None:
        return
    if control.stop:
        trainer.should_stop = True
    if control.select is not None:
        trainer.mark_best(control.select)


__all__ = ["is_trainer", "LegacyContext", "evaluate_of", "apply", "SimpleNamespace"]
