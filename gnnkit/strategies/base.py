"""Strategy: turns a task's loss into parameter updates.

``configure(trainer, model)`` builds the optimizer(s); ``step(trainer, batch)`` does one update and
returns the step's outputs (``loss`` as a float plus whatever the task produced); ``predict(trainer,
data)`` gives the output for every node used by evaluation (backprop: the model's layer-by-layer
inference; ForwardGNN combines its layers). ``state_dict`` holds the optimizers for checkpoints.
A strategy that sets ``manages_stopping = True`` decides itself when training ends (through
``trainer.should_stop``) and the Trainer's early stopping leaves it alone.
"""
from __future__ import annotations

from typing import ClassVar

from .. import distributed as dist
from ..plugins import Plugin


class Strategy(Plugin):
    axis = "strategy"
    package = "gnnkit.strategies"
    _registry: ClassVar[dict[str, type]] = {}

    manages_stopping: bool = False

    def model_out_dim(self, num_classes: int, hidden: int) -> int:
        """Width of the model's last layer that ``gnnkit train`` builds for this strategy."""
        return num_classes

    def configure(self, trainer, model) -> None:
        raise NotImplementedError  # abstract: every strategy defines it

    def step(self, trainer, batch) -> dict:
        raise NotImplementedError  # abstract: every strategy defines it

    def predict(self, trainer, data):
        """Output of the model for every node of ``data`` (eval mode, no gradient)."""
        model, adj = trainer.raw_model, trainer.full_adjacency(data)
        if trainer.world_size == 1:
            return model.inference(data.x, adj, batch_size=trainer.inference_batch_size)
        # several processes: each computes its block of rows per layer, then all-gathers the layer
        n = adj.num_rows
        return model.inference(data.x, adj, batch_size=trainer.inference_batch_size, rows=dist.row_range(n),
                               gather=lambda h: dist.all_gather_rows(h, n))
