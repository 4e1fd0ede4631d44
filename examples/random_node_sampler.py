"""A new sampler in one file: uniform random nodes and the subgraph they induce (GraphSAINT's node
sampler without its normalization). Use it as ``Trainer(sampler=RandomNodeSampler(num_nodes=256))``.

Each step draws ``num_nodes`` distinct nodes uniformly from the whole graph, keeps every edge among
them (``ctx.graph.induced_subgraph``), normalizes that subgraph with the model's operator and puts
the loss on the drawn training nodes. An epoch has ``ceil(N / num_nodes)`` steps.
"""
from __future__ import annotations

import torch

from gnnkit.samplers import Sampler
from gnnkit.samplers.batch import Batch
from gnnkit.samplers.loader import epoch_generator, seed_nodes, shard
from gnnkit.sparse import Adjacency


class RandomNodeSampler(Sampler):
    name = "random-node"

    def __init__(self, num_nodes: int = 256):
        self.num_nodes = int(num_nodes)

    def setup(self, ctx, model) -> None:
        super().setup(ctx, model)
        seed_nodes(ctx.features, who=self.name)  # fail early when nothing trains
        self.steps = -(-ctx.graph.num_nodes // self.num_nodes)

    def __len__(self) -> int:
        return self.steps // self.ctx.world_size

    def __iter__(self):
        gen = epoch_generator(self.ctx.seed, self.epoch)
        n = self.ctx.graph.num_nodes
        draws = [torch.randperm(n, generator=gen)[:self.num_nodes].sort().values for _ in range(self.steps)]
        for nodes in shard(self.ctx, draws):
            yield self.sample_from_nodes(nodes.to(self.ctx.graph.device))

    def sample_from_nodes(self, seeds: torch.Tensor) -> Batch:
        """The subgraph induced by ``seeds``; the loss on those of them that train."""
        ctx, get = self.ctx, self.ctx.features.get
        edges = ctx.graph.induced_subgraph(seeds)
        adj = Adjacency.from_edge_index(edges, seeds.numel(), norm=ctx.adj_norm, diag_lambda=ctx.diag_lambda,
                                        symmetric=ctx.graph.is_symmetric)
        train = get("train_mask", seeds)
        return Batch(x=get("x", seeds), y=get("y", seeds), adj=adj, n_id=seeds,
                     loss_index=train.nonzero().view(-1), num_nodes=seeds.numel())
