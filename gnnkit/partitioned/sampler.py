"""Opening this rank's part for training (:func:`open_dataset`) and the seed walk over it.

:func:`open_dataset` is what ``gnnkit train --dataset DIR`` gives the Trainer for a partition
folder: rank ``r`` (torchrun's ``RANK``) opens part ``r`` only, memory-mapped and verified, and
wraps it in the :class:`~gnnkit.partitioned.stores.DistGraphStore` /
:class:`~gnnkit.partitioned.stores.DistFeatureStore` pair. The world size must equal the part count.

:class:`PartNeighborSampler` is the neighbor sampler with the seed walk that partition-parallel
training needs: each rank shuffles its own training nodes (``ctx.features.index("train_mask")``,
the same count on every rank) with the epoch's generator and walks them in batches, without
sharding them again. (Once the seed loader honours ``features.seeds_per_rank`` itself, the plain
``neighbor`` sampler does the same.)
"""
from __future__ import annotations

import os
from typing import Iterator, Optional, Tuple

import torch
from torch import Tensor

from gnnkit.errors import GnnkitError
from gnnkit.samplers.loader import shuffled
from gnnkit.samplers.neighbor import NeighborSampler

from .exchange import Exchange
from .layout import open_part, read_info
from .stores import DistFeatureStore, DistGraphStore


def open_dataset(path, rank: Optional[int] = None, world: Optional[int] = None,
                 verify: bool = True) -> Tuple[DistGraphStore, DistFeatureStore]:
    """This rank's part of the partition at ``path`` as a ``(GraphStore, FeatureStore)`` pair over
    global ids (``rank``/``world`` default to torchrun's ``RANK``/``WORLD_SIZE``)."""
    rank = int(os.environ.get("RANK", "0")) if rank is None else int(rank)
    world = int(os.environ.get("WORLD_SIZE", "1")) if world is None else int(world)
    p = int(read_info(path)["num_parts"])
    if world != p:
        raise GnnkitError(f"partition {path} has {p} parts; train it with {p} processes (gnnkit train --nproc {p} "
                          f"or torchrun --nproc-per-node {p}), not {world}")
    part = open_part(path, rank, verify=verify)
    exchange = Exchange(part.book, part.global_ids, rank, world)
    return DistGraphStore(part, exchange), DistFeatureStore(part, exchange)


class _OwnSeeds:
    """A seed loader over this rank's own seeds (already equal in count on every rank): shuffled
    per epoch, walked in batches, never sharded."""

    def __init__(self, seeds: Tensor, batch_size: int, shuffle: bool):
        self.seeds, self.batch_size, self.shuffle = seeds, batch_size, shuffle

    def steps(self, world: int) -> int:
        return -(-self.seeds.numel() // self.batch_size)

    def batches(self, ctx, gen: Optional[torch.Generator]) -> Iterator[Tensor]:
        order = shuffled(self.seeds, gen) if self.shuffle else self.seeds
        for s in range(0, order.numel(), self.batch_size):
            yield order[s:s + self.batch_size]


class PartNeighborSampler(NeighborSampler):
    """:class:`~samplers.neighbor.NeighborSampler` walking each rank's own seeds (module docstring)."""

    def setup(self, ctx, model) -> None:
        super().setup(ctx, model)
        if getattr(ctx.features, "seeds_per_rank", False):
            self.loader = _OwnSeeds(self.loader.seeds, self.batch_size, self.shuffle)
