"""Two gnnkit plug-ins shipped by an ordinary package (see ``pyproject.toml``'s entry points).

* ``random-edge`` (a :class:`~gnnkit.samplers.Sampler`): each step draws ``edges_per_batch`` edges
  uniformly, keeps the nodes they touch and every edge among those nodes (GraphSAINT's edge sampler
  without its loss normalization); the loss is on the drawn training nodes. An epoch has
  ``ceil(E / edges_per_batch)`` steps. ``--edges-per-batch`` is its own option (``add_args``).
* ``gat`` (a model factory): two ``GATConv`` layers as in Velickovic et al. (8 heads of 8 features,
  ELU, dropout on inputs and attention), a PyG-style ``forward(x, edge_index)`` that gnnkit wraps.
"""
from __future__ import annotations

import torch
from torch import nn

from gnnkit.plugins import add_option
from gnnkit.samplers import Sampler
from gnnkit.samplers.batch import Batch, PygEdges
from gnnkit.samplers.loader import epoch_generator, seed_nodes, shard
from gnnkit.sparse import Adjacency


class RandomEdgeSampler(Sampler):
    name = "random-edge"

    def __init__(self, edges_per_batch: int = 2000):
        self.edges_per_batch = int(edges_per_batch)

    @classmethod
    def add_args(cls, parser) -> None:
        add_option(parser, "--edges-per-batch", type=int, default=2000,
                   help="random-edge: edges drawn per step (default 2000)")

    @classmethod
    def from_args(cls, args) -> "RandomEdgeSampler":
        return cls(args.edges_per_batch)

    def setup(self, ctx, model) -> None:
        super().setup(ctx, model)
        seed_nodes(ctx.features, who=self.name)  # fail early when nothing trains
        self.pyg = getattr(model, "wants_edge_index", False)
        self.steps = -(-ctx.graph.num_edges // self.edges_per_batch)

    def __len__(self) -> int:
        return self.steps // self.ctx.world_size

    def __iter__(self):
        gen = epoch_generator(self.ctx.seed, self.epoch)
        src, dst = self.ctx.graph.edge_index()
        e = src.numel()
        draws = []
        for _ in range(self.steps):  # one draw per step, not per edge
            pick = torch.randint(e, (self.edges_per_batch,), generator=gen).to(src.device)
            draws.append(torch.cat([src[pick], dst[pick]]).unique())
        for nodes in shard(self.ctx, draws):
            yield self.sample_from_nodes(nodes)

    def sample_from_nodes(self, nodes: torch.Tensor) -> Batch:
        """The subgraph induced by ``nodes`` (ascending ids); the loss on those of them that train."""
        ctx, get = self.ctx, self.ctx.features.get
        edges = ctx.graph.induced_subgraph(nodes)
        adj = PygEdges(edges) if self.pyg else Adjacency.from_edge_index(
            edges, nodes.numel(), norm=ctx.adj_norm, diag_lambda=ctx.diag_lambda, symmetric=ctx.graph.is_symmetric)
        train = get("train_mask", nodes)
        return Batch(x=get("x", nodes), y=get("y", nodes), adj=adj, n_id=nodes,
                     loss_index=train.nonzero().view(-1), num_nodes=nodes.numel())


class GAT(nn.Module):
    """``[N, F] -> [N, C]``: ``h = ELU(GAT_1(dropout(x)))`` (``heads`` heads of ``hidden`` features,
    concatenated), ``out = GAT_2(dropout(h))`` (one head)."""

    def __init__(self, in_dim: int, out_dim: int, hidden: int = 8, heads: int = 8, dropout: float = 0.6):
        super().__init__()
        from torch_geometric.nn import GATConv

        self.dropout = dropout
        self.conv1 = GATConv(in_dim, hidden, heads=heads, dropout=dropout)
        self.conv2 = GATConv(hidden * heads, out_dim, heads=1, dropout=dropout)

    def forward(self, x: torch.Tensor, edge_index: torch.Tensor) -> torch.Tensor:
        x = nn.functional.dropout(x, self.dropout, self.training)
        x = nn.functional.elu(self.conv1(x, edge_index))
        x = nn.functional.dropout(x, self.dropout, self.training)
        return self.conv2(x, edge_index)


def make_gat(in_dim: int, out_dim: int, hidden: int = 8, dropout: float = 0.6) -> GAT:
    """The ``gat`` model of ``gnnkit train --model gat`` (``--hidden``: features per head)."""
    return GAT(in_dim, out_dim, hidden=hidden, dropout=dropout)
