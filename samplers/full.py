"""Full batch: the whole graph is one batch, every epoch.

The batch is the graph itself: ``x`` all features, ``adj`` the whole graph's normalized adjacency in
the model's operator (``ctx.graph.adjacency``, built once), ``n_id = None`` and ``loss_index`` the
training nodes. A PyG-style model (``wants_edge_index``) gets the graph's own ``edge_index``,
``edge_weight`` and ``edge_attr`` instead (:class:`~samplers.batch.PygEdges`). Under several processes each rank takes a disjoint share of the training nodes with
weights ``w / n_train`` (the loss is a sum; DistributedDataParallel averages over the ``w`` ranks),
so the gradients averaged over ranks equal the single-process gradient.

On a partitioned graph (each rank holds one part: ``ctx.graph.part``, ``gnnkit train --dataset
PARTITION_DIR`` under torchrun) the batch is the part instead: its owned rows, the model's operator
as a :class:`~gnnkit.partitioned.halo.HaloAdjacency` (each layer's product fetches the boundary
rows from their owners) and the loss on every owned training node, weighted ``P / n_train``
(:mod:`gnnkit.partitioned.fullbatch`): the same updates as one process holding the whole graph.
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from gnnkit.errors import GnnkitError

from .base import Sampler, edge_attr_of, wants_edges
from .batch import Batch, PygEdges
from .loader import seed_nodes, shard


class FullBatchSampler(Sampler):
    name = "full"

    def setup(self, ctx, model) -> None:
        super().setup(ctx, model)
        part = getattr(ctx.graph, "part", None)
        if part is not None:  # partition-parallel: this rank's part, exchanging halo rows per layer
            from gnnkit.partitioned.fullbatch import part_batch

            self.batch = part_batch(ctx, model, part)
            return
        self.batch = self.sample_from_nodes(seed_nodes(self.ctx.features, who="full"), share=True)

    def _whole(self, loss_index: Tensor, weight: Optional[Tensor], y: Tensor, **kw) -> Batch:
        ctx = self.ctx
        if wants_edges(self.model):  # a PyG-style model: the graph's own edges, weights and edge features
            g = ctx.graph
            adj = PygEdges(g.edge_index(), g.edge_weight(), edge_attr_of(ctx, self.model))
        else:
            adj = ctx.graph.adjacency(ctx.adj_norm, ctx.diag_lambda)
        return Batch(x=ctx.features.get("x"), y=y, adj=adj,
                     n_id=None, loss_index=loss_index, loss_weight=weight, num_nodes=ctx.graph.num_nodes, **kw)

    def sample_from_nodes(self, seeds: Tensor, share: bool = False) -> Batch:
        """The whole graph with the loss on ``seeds`` (``share``: this rank's share, weighted)."""
        if getattr(self.ctx.graph, "part", None) is not None:
            raise GnnkitError("the full sampler on a partitioned graph trains on each part's own training "
                              "nodes; it builds no batch for given seeds")
        w = self.ctx.world_size
        if share and w > 1:
            mine = shard(self.ctx, seeds, equal=False)
            weight = torch.full((mine.numel(),), float(w) / seeds.numel(), device=seeds.device)
        else:
            mine, weight = seeds, None
        return self._whole(mine, weight, self.ctx.features.get("y"))

    def sample_from_edges(self, edge_label_index: Tensor, edge_label: Optional[Tensor] = None) -> Batch:
        """The whole graph scoring the ``E`` edges ``edge_label_index`` (global ids = rows, as
        ``n_id`` is ``None``); ``y = edge_label`` (all ones when ``None``), loss over every edge."""
        e = edge_label_index.shape[1]
        label = torch.ones(e, device=edge_label_index.device) if edge_label is None else edge_label
        return self._whole(torch.arange(e, device=edge_label_index.device), None, label,
                           edge_label_index=edge_label_index, edge_label=label)

    def __iter__(self):
        yield self.batch

    def __len__(self) -> int:
        return 1
