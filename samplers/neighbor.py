"""Uniform neighbor sampling (GraphSAGE-style), vectorized over a CSR of in-neighbors.

A batch of ``B`` seed (training) nodes is expanded hop by hop: at hop ``h`` every node of the
current frontier keeps ``k_h = fanouts[h]`` of its in-neighbors, drawn uniformly *without
replacement* (all of them when its degree is at most ``k_h``; ``-1`` means all). ``fanouts[0]``
belongs to the seeds, as in PyG's ``num_neighbors``, so a model with ``L`` graph layers (head
included) takes ``L`` fanouts.

The batch (see :mod:`gnnkit.samplers.base`):

* ``n_id`` ``[n_L]``: global ids, the ``B`` seeds first, then each hop's new nodes;
* ``x = data.x[n_id]``, ``y = data.y[n_id[:B]]``, ``loss_index = arange(B)``, ``batch_size = B``;
* ``adj``: ``L`` bipartite :class:`~gnnkit.sparse.Adjacency` blocks in *layer* order: the block
  of model layer ``l`` is ``[n_{L-l-1}, n_{L-l}]`` (its rows are the first rows of its columns).

Block weights, by the model's ``adj_norm`` (``d_i`` the full-graph in-degree, ``s_i`` the number
of neighbors kept for row ``i``; every row is an unbiased estimate of the full-graph row):

* ``"mean"``: ``1 / s_i`` (the in-sample mean, GraphSAGE);
* ``"sum"``: ``d_i / s_i``;
* ``"gcn"``: the full-graph ``D^-1/2 (A + I) D^-1/2`` weights, neighbors scaled by ``d_i / s_i``:
  ``(d_i / s_i) / sqrt((d_i + 1)(d_j + 1))`` for a kept neighbor ``j`` and the exact self-loop
  ``1 / (d_i + 1)``. With all neighbors kept this is exactly ``Â`` restricted to the block.

Sampling without replacement: rows with ``d_i <= k`` take all; the others draw ``k`` distinct
offsets by Floyd's algorithm, vectorized over rows (a loop over the ``k`` positions, ``O(n k²)``
comparisons, independent of the degree, so hubs cost no more than other rows).

Seeds are the training nodes, shuffled per epoch with a generator seeded from ``(seed, epoch)``
and dealt to ranks with equal step counts under several processes; the neighbor draws use the
same generator, so a resumed run draws the same batches.
"""
from __future__ import annotations

import warnings
from typing import List, Optional, Sequence, Tuple

import torch
from torch import Tensor
from torch_geometric.data import Data

from gnnkit import distributed as dist
from gnnkit.errors import GnnkitError
from gnnkit.sparse import Adjacency
from gnnkit.sparse.segments import concat_ranges as segment_positions, floyd_offsets
from gnnkit.sparse.subgraph import relabel
from gnnkit.stores import in_neighbor_csr

from .base import Sampler

NORMS = ("gcn", "mean", "sum")


def make_adjacency(crow: Tensor, col: Tensor, val: Tensor, shape: Tuple[int, int]) -> Adjacency:
    """An :class:`Adjacency` from CSR arrays whose rows are already in order."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
        csr = torch.sparse_csr_tensor(crow, col, val, shape, check_invariants=False)
    return Adjacency(csr)


def sample_block(crow: Tensor, col: Tensor, deg: Tensor, targets: Tensor, k: int, norm: str,
                 gen: Optional[torch.Generator], lid: Tensor) -> Tuple[Adjacency, Tensor]:
    """One hop: the block ``[n_t, n_t + n_new]`` of ``targets`` and the ``new`` global ids."""
    d = deg[targets]
    keep = d if k < 0 else torch.clamp(d, max=k)
    big = (d > keep).nonzero().view(-1)
    self_loop = int(norm == "gcn")
    cnt = keep + self_loop
    crow_b = torch.zeros(targets.numel() + 1, dtype=torch.long, device=d.device)
    torch.cumsum(cnt, 0, out=crow_b[1:])
    src = torch.zeros(int(crow_b[-1]), dtype=torch.long, device=d.device)  # CSR position of each entry
    small = (d <= keep).nonzero().view(-1)
    src[segment_positions(crow_b[small] + self_loop, d[small])] = segment_positions(crow[targets[small]], d[small])
    if big.numel():
        off = floyd_offsets(d[big], k, gen)
        dest = crow_b[big, None] + self_loop + torch.arange(k, device=d.device)
        src[dest.view(-1)] = (crow[targets[big], None] + off).view(-1)
    rows = torch.repeat_interleave(torch.arange(targets.numel(), device=d.device), cnt)
    is_self = torch.zeros(src.numel(), dtype=torch.bool, device=d.device)
    if self_loop:
        is_self[crow_b[:-1]] = True
    glob = targets[rows]  # the self-loops' column; the kept neighbors' below
    glob[~is_self] = col[src[~is_self]]
    local, new = relabel(lid, targets, glob)
    di, si = d[rows].to(torch.float32), keep[rows].to(torch.float32)
    if norm == "mean":
        val = si.reciprocal()
    elif norm == "sum":
        val = di / si
    else:
        dj = deg[glob].to(torch.float32)
        val = torch.where(is_self, (di + 1).reciprocal(), (di / si.clamp(min=1)) * ((di + 1) * (dj + 1)).rsqrt())
    return make_adjacency(crow_b, local, val, (targets.numel(), targets.numel() + new.numel())), new


def sample_blocks(crow: Tensor, col: Tensor, deg: Tensor, seeds: Tensor, fanouts: Sequence[int], norm: str,
                  gen: Optional[torch.Generator], lid: Tensor) -> Tuple[Tensor, List[Adjacency]]:
    """``(n_id, blocks)`` for ``seeds``; ``blocks[l]`` is model layer ``l``'s adjacency."""
    n_id, blocks = seeds, []
    for k in fanouts:
        block, new = sample_block(crow, col, deg, n_id, k, norm, gen, lid)
        blocks.append(block)
        n_id = torch.cat([n_id, new])
    return n_id, blocks[::-1]


def parse_fanouts(spec) -> List[int]:
    try:
        out = [int(v) for v in (spec.split(",") if isinstance(spec, str) else spec)]
    except (TypeError, ValueError):
        raise GnnkitError(f"--fanouts must be comma-separated integers like 15,10, got {spec!r}") from None
    if not out or any(v == 0 or v < -1 for v in out):
        raise GnnkitError(f"fanouts must be positive integers or -1 (all), got {spec!r}")
    return out


def epoch_generator(seed: int, epoch: int, device) -> torch.Generator:
    gen = torch.Generator(device=device)
    gen.manual_seed((int(seed) * 1_000_003 + int(epoch) * 7919 + 12345) % (2**63 - 1))
    return gen


class GraphCSR:
    """The in-neighbor CSR, degrees and relabel buffer of one graph (shared by the samplers)."""

    def __init__(self, data):
        self.crow, self.col = in_neighbor_csr(data.edge_index, data.num_nodes, bool(getattr(data, "is_symmetric", False)))
        self.deg = self.crow[1:] - self.crow[:-1]
        self.lid = torch.full((data.num_nodes,), -1, dtype=torch.long, device=self.crow.device)


class NeighborSampler(Sampler):
    """Mini-batches of ``batch_size`` training nodes with ``fanouts`` neighbors per hop.

    Args:
        fanouts: neighbors kept per node at each hop, seeds' hop first (``-1``: all).
        batch_size: seed nodes per batch (the last batch of an epoch may be smaller).
        shuffle: shuffle the training nodes each epoch.
    """

    name = "neighbor"

    def __init__(self, fanouts: Sequence[int] = (15, 10), batch_size: int = 512, shuffle: bool = True):
        self.fanouts = parse_fanouts(fanouts)
        if batch_size < 1:
            raise GnnkitError(f"batch_size must be at least 1, got {batch_size}")
        self.batch_size, self.shuffle = int(batch_size), shuffle

    def setup(self, trainer, data) -> None:
        super().setup(trainer, data)
        self.norm = getattr(trainer.raw_model, "adj_norm", "gcn")
        if self.norm not in NORMS:
            raise GnnkitError(f"the neighbor sampler builds {', '.join(NORMS)} blocks; the model wants {self.norm!r}")
        layers = getattr(trainer.raw_model, "num_layers", len(self.fanouts))
        if layers != len(self.fanouts):
            raise GnnkitError(f"the model has {layers} graph layers but {len(self.fanouts)} fanouts were given "
                              f"({','.join(map(str, self.fanouts))}); give one fanout per layer")
        self.train = data.train_mask.nonzero().view(-1)
        if self.train.numel() == 0:
            raise GnnkitError("the graph has no training nodes (train_mask is all False)")
        self.graph = GraphCSR(data)
        self.seed = trainer.seed

    def _seed_order(self, gen: torch.Generator) -> Tensor:
        order = self.train
        if self.shuffle:
            order = order[torch.randperm(order.numel(), generator=gen, device=order.device)]
        return dist.shard(order, self.trainer.rank, self.trainer.world_size)

    def __len__(self) -> int:
        n = self.train.numel() // max(self.trainer.world_size, 1)
        return -(-n // self.batch_size)

    def make_batch(self, seeds: Tensor, gen: Optional[torch.Generator]) -> Data:
        g = self.graph
        n_id, blocks = sample_blocks(g.crow, g.col, g.deg, seeds, self.fanouts, self.norm, gen, g.lid)
        b = seeds.numel()
        return Data(x=self.data.x[n_id], y=self.data.y[seeds], adj=blocks, n_id=n_id, batch_size=b,
                    loss_index=torch.arange(b, device=seeds.device), num_nodes=n_id.numel())

    def __iter__(self):
        gen = epoch_generator(self.seed, self.epoch, self.train.device)
        order = self._seed_order(gen)
        for s in range(0, order.numel(), self.batch_size):
            yield self.make_batch(order[s:s + self.batch_size], gen)

    def sample(self, gen: torch.Generator) -> Data:
        """One batch of ``batch_size`` seeds drawn uniformly without replacement (diagnostics)."""
        seeds = self.train[torch.randperm(self.train.numel(), generator=gen, device=self.train.device)[:self.batch_size]]
        return self.make_batch(seeds, gen)

    @classmethod
    def add_args(cls, parser) -> None:
        from gnnkit.plugins import add_option

        add_option(parser, "--fanouts", default="15,10", help="neighbors per hop, seeds' hop first, -1 = all (default 15,10)")
        add_option(parser, "--batch-size", type=int, default=None,
                   help="batch size of the sampler (default: neighbor/mvs 512 nodes, temporal 200 events)")

    @classmethod
    def from_args(cls, args) -> "NeighborSampler":
        return cls(fanouts=args.fanouts, batch_size=512 if args.batch_size is None else args.batch_size)
