"""Strategy: turns a task's loss into parameter updates.

``configure(ctx, model)`` builds the optimizer(s) (``ctx.make_optimizer``); ``step(ctx, model,
batch, task)`` does one update and returns the step's outputs (``loss`` as a float plus whatever
the task produced); ``predict(ctx, model)`` gives the output ``[N, C]`` for every node, used by the
loop's evaluation (backprop: the model's layer-by-layer inference; ForwardGNN combines its layers).
``on_epoch_end(ctx, model, epoch, evaluate)`` may return a :class:`~gnnkit.context.Control`: a
strategy that schedules its own training (ForwardGNN) ends the run or chooses the final model
through it, never by touching the Trainer. ``reset_state(params)`` forgets the optimizer state of
``params`` (the loop calls it after an escape replaced them). ``state_dict`` holds the optimizers.

``manages_stopping = True``: the strategy decides itself when training ends, and the loop's early
stopping leaves it alone. ``find_unused_parameters``: handed to DistributedDataParallel.
"""
from __future__ import annotations

import abc
from typing import ClassVar, Iterable, Optional

import torch
from torch import Tensor

from ..context import Control, Evaluate
from ..errors import GnnkitError
from ..plugins import Plugin


class Strategy(Plugin):
    axis = "strategy"
    package = "gnnkit.strategies"
    _registry: ClassVar[dict[str, type]] = {}

    manages_stopping: ClassVar[bool] = False
    find_unused_parameters: ClassVar[bool] = False

    def model_out_dim(self, num_classes: int, hidden: int) -> int:
        """Width of the model's last layer that ``gnnkit train`` builds for this strategy."""
        return num_classes

    @abc.abstractmethod
    def configure(self, ctx, model) -> None:
        """Build the optimizer(s) for ``model`` (the raw module, read-only)."""

    @abc.abstractmethod
    def step(self, ctx, model, batch, task) -> dict:
        """One update on ``batch``; ``model`` is the training module (the raw one or its DDP wrapper)."""

    def predict(self, ctx, model) -> Tensor:
        """``[N, C]`` output of ``model`` for every node (called in eval mode, without gradient).

        The input is the graph's normalized adjacency in the model's operator, or what the model's
        ``whole_graph(ctx)`` returns when it reads the graph its own way (a PyG-style model: the
        edges). Each rank computes its block of rows of every layer (:meth:`RunContext.row_range`)
        and the blocks are gathered; with one process the block is all rows.
        """
        if not callable(getattr(model, "inference", None)):
            raise GnnkitError(f"{type(model).__name__} has no whole-graph output (inference); "
                              "score it with trainer.evaluate()")
        whole = getattr(model, "whole_graph", None)  # a model that reads the graph its own way (PyG edges)
        adj = whole(ctx) if callable(whole) else ctx.graph.adjacency(ctx.adj_norm, ctx.diag_lambda)
        n = ctx.graph.num_nodes
        return model.inference(ctx.features.get("x"), adj, batch_size=ctx.inference_batch_size,
                               rows=ctx.row_range(n), gather=lambda h: ctx.gather_rows(h, n))

    def on_epoch_end(self, ctx, model, epoch: int, evaluate: Evaluate) -> Optional[Control]:
        """After the epoch's batches, before the loop's validation. ``evaluate(splits)`` -> figures."""
        return None

    def optimizers(self) -> list[torch.optim.Optimizer]:
        """The optimizers this strategy steps (for :meth:`reset_state`)."""
        return []

    def reset_state(self, params: Iterable[Tensor]) -> None:
        """Drop the per-parameter state (moments, step counts) of ``params`` in every optimizer."""
        params = list(params)
        for opt in self.optimizers():
            for p in params:
                opt.state.pop(p, None)
