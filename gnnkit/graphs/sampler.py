"""The ``graph`` sampler: batches of whole graphs for the Trainer (the sampler protocol).

``setup(ctx, model)``: a :class:`~gnnkit.graphs.GraphBatcher` over ``ctx.data`` (a
:class:`~gnnkit.graphs.GraphCollection`) on the run's device, in the model's operator
(``model.adj_norm``; ``model.needs_edges`` adds the batch's edges and edge features), and a
:class:`~gnnkit.graphs.GraphLoader` over the training graphs: shuffled per epoch from
``(ctx.seed, epoch)``, this rank's share through ``ctx.shard``, ``batch_size`` graphs per batch.
Batches are :class:`~gnnkit.graphs.GraphBatch` (block-diagonal ``adj``, ``ptr``, ``y`` per graph).
"""
from __future__ import annotations

from gnnkit.errors import GnnkitError
from gnnkit.samplers.base import Sampler
from gnnkit.precision import half_dtype

from .batching import GraphBatcher, GraphLoader
from .collection import GraphCollection


class GraphSampler(Sampler):
    """Mini-batches of ``batch_size`` graphs (default 128); ``drop_last`` drops a short last batch."""

    name = "graph"

    def __init__(self, batch_size: int = 128, drop_last: bool = False):
        if batch_size < 1:
            raise GnnkitError(f"batch_size must be at least 1, got {batch_size}")
        self.batch_size, self.drop_last, self.loader = int(batch_size), drop_last, None

    @classmethod
    def from_args(cls, args) -> "GraphSampler":
        return cls(batch_size=getattr(args, "batch_size", None) or 128)

    def setup(self, ctx, model) -> None:
        super().setup(ctx, model)
        if not isinstance(ctx.data, GraphCollection):
            raise GnnkitError(f"the graph sampler needs a GraphCollection, got {type(ctx.data).__name__}")
        batcher = GraphBatcher(ctx.data, getattr(model, "adj_norm", "sum"), edges=getattr(model, "needs_edges", False),
                               device=ctx.device, dtype=half_dtype(ctx.precision))
        self.loader = GraphLoader(batcher, ctx.data.split_ids("train").cpu(), self.batch_size, seed=ctx.seed,
                                  drop_last=self.drop_last, shard=ctx.shard, world_size=ctx.world_size)

    def __iter__(self):
        self.loader.set_epoch(self.epoch)
        return iter(self.loader)

    def __len__(self) -> int:
        return len(self.loader)
