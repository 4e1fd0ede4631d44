"""Strategy: turns a task's loss into parameter updates.

``configure(ctx, model)`` builds the optimizer(s) (``ctx.make_optimizer``); ``step(ctx, model,
batch, task)`` does one update and returns the step's outputs (``loss`` as a float plus whatever
the task produced); ``predict(ctx, model)`` gives the output ``[N, C]`` for every node, used by the
loop's evaluation (backprop: the model's layer-by-layer inference; ForwardGNN combines its layers).
Where that whole-graph inference would not fit in memory (:func:`whole_graph_bytes` above half of
:func:`~gnnkit.data.limits.memory_limit`), or with ``inference="sampled"``, the base ``predict``
returns :class:`~gnnkit.samplers.neighbor.SampledPredictions` instead: the rows the task reads
(its split masks), each computed on its node's sampled neighborhood (``inference_fanouts``,
default 15,10,5); ``inference="full"`` always runs the whole-graph pass.
``on_epoch_end(ctx, model, epoch, evaluate)`` may return a :class:`~gnnkit.context.Control`: a
strategy that schedules its own training (ForwardGNN) ends the run or chooses the final model
through it, never by touching the Trainer. ``reset_state(params)`` forgets the optimizer state of
``params`` (the loop calls it after an escape replaced them). ``state_dict`` holds the optimizers.

``manages_stopping = True``: the strategy decides itself when training ends, and the loop's early
stopping leaves it alone. ``find_unused_parameters``: handed to DistributedDataParallel.
``supports_escape = False``: the strategy trains no classifier head that an escape could search
(ForwardGNN's last layer is scored by goodness, not as logits); the loop refuses an escape with it.
"""
from __future__ import annotations

import abc
from typing import ClassVar, Iterable, Optional

import torch
from torch import Tensor

from ..context import Control, Evaluate
from ..data.limits import memory_limit
from ..errors import GnnkitError
from ..plugins import Plugin

INFERENCE_MODES = ("auto", "full", "sampled")


def whole_graph_bytes(ctx, model) -> int:
    """Bytes of a whole-graph layer-by-layer pass (float32): the input ``x`` ``[N, F]``, one layer's
    input and output ``[N, d]`` (``d`` the widest of hidden and output widths), the output ``[N, C]``
    and the adjacency (``12 E + 8 N``: int32 columns, float32 values, int64 row pointers)."""
    n, e = ctx.graph.num_nodes, ctx.graph.num_edges
    f = ctx.features.shape("x")[1] if len(ctx.features.shape("x")) > 1 else 1
    d = max(int(getattr(model, "hidden", 0) or 0), int(getattr(model, "out_dim", 0) or 0), 1)
    c = int(getattr(model, "out_dim", d) or d)
    return 4 * n * (f + 2 * d + c) + 12 * e + 8 * n


def use_sampled_inference(ctx, model, mode: str) -> bool:
    """``mode`` ``"sampled"``; or ``"auto"`` and :func:`whole_graph_bytes` above half the memory
    limit for a model with per-layer blocks (``num_layers``)."""
    if mode not in INFERENCE_MODES:
        raise GnnkitError(f"inference must be one of {', '.join(INFERENCE_MODES)}, got {mode!r}")
    if mode != "auto":
        return mode == "sampled"
    return hasattr(model, "num_layers") and whole_graph_bytes(ctx, model) > memory_limit() // 2


class Strategy(Plugin):
    axis = "strategy"
    package = "gnnkit.strategies"
    _registry: ClassVar[dict[str, type]] = {}

    manages_stopping: ClassVar[bool] = False
    find_unused_parameters: ClassVar[bool] = False
    supports_escape: ClassVar[bool] = True
    inference: str = "auto"  # "auto" | "full" | "sampled": how the base predict evaluates (module docstring)
    inference_fanouts = None  # sampled inference's fanouts (None: 15,10,5)

    def set_inference(self, mode: str = "auto", fanouts=None) -> "Strategy":
        """Choose the evaluation's inference (``"auto"``, ``"full"``, ``"sampled"``) and the sampled
        one's fanouts (seeds' hop first); returns the strategy."""
        if mode not in INFERENCE_MODES:
            raise GnnkitError(f"inference must be one of {', '.join(INFERENCE_MODES)}, got {mode!r}")
        self.inference, self.inference_fanouts = mode, fanouts
        return self

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
        and the blocks are gathered; with one process the block is all rows. Sampled inference
        (module docstring) returns the lazily computed rows instead.
        """
        if use_sampled_inference(ctx, model, self.inference):
            from gnnkit.samplers.neighbor import SampledPredictions

            return SampledPredictions(ctx, model, self.inference_fanouts)
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
