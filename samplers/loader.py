"""The one place for seed selection, per-epoch shuffling, sharding across ranks and epoch seeding.

Every sampler draws its epoch from :func:`epoch_generator` (a ``torch.Generator`` seeded from the
run's seed and the epoch, so a resumed run draws the same batches), takes its seeds from
:func:`seed_nodes` (the ids of a mask, by default the training nodes, read through the feature
store) and deals them to ranks with :func:`shard` (through the run context, so no sampler imports
``gnnkit.distributed``). :class:`SeedLoader` puts the three together for the samplers that walk
their seeds in batches.
"""
from __future__ import annotations

from typing import Iterator, Optional, Sequence

import torch
from torch import Tensor

from gnnkit.errors import GnnkitError

_MULT = 1_000_003


def derive_seed(seed: int, salt: int = 0) -> int:
    """``(seed · 1,000,003 + salt) mod 2^63``: the seed of stream ``salt`` (an epoch, or a fixed
    purpose) of the run seeded with ``seed``."""
    return (int(seed) * _MULT + int(salt)) % 2**63


def epoch_generator(seed: int, epoch: int, device="cpu") -> torch.Generator:
    """A ``torch.Generator`` on ``device`` seeded with :func:`derive_seed` ``(seed, epoch)``."""
    return torch.Generator(device=device).manual_seed(derive_seed(seed, epoch))


def seed_nodes(features, mask: str = "train_mask", who: str = "sampler") -> Tensor:
    """The ids ``[n]`` (ascending) of the nodes where the bool tensor ``mask`` is set; raises a
    :class:`GnnkitError` naming ``who`` when there are none."""
    ids = features.index(mask)
    if ids.numel() == 0:
        what = "training nodes (train_mask is all False)" if mask == "train_mask" else f"nodes in {mask}"
        raise GnnkitError(f"{who}: the graph has no {what}")
    return ids


def shuffled(ids: Tensor, gen: Optional[torch.Generator]) -> Tensor:
    """``ids`` in a random order drawn from ``gen`` (one ``randperm``)."""
    return ids[torch.randperm(ids.numel(), generator=gen, device=ids.device)]


def per_rank(ctx) -> bool:
    """Whether the seeds ``ctx.features`` gives are this rank's own already (a partitioned store,
    issue 22, sets ``seeds_per_rank``): then they are not sharded again."""
    return bool(getattr(ctx.features, "seeds_per_rank", False))


def shard(ctx, items: Sequence, equal: bool = True, wrap: bool = False) -> Sequence:
    """This rank's share of ``items`` (round-robin, see ``RunContext.shard``). ``equal``: every rank
    the same count, dropping the tail that does not divide evenly. ``wrap``: instead of dropping,
    repeat the first items until the count divides (no item left out; a few visited twice).
    ``items`` as they are when the store's seeds are per rank already (:func:`per_rank`)."""
    if per_rank(ctx):
        return items
    world = ctx.world_size
    if wrap and world > 1 and len(items) % world:
        items = [items[i % len(items)] for i in range(-(-len(items) // world) * world)]
    return ctx.shard(items, equal=equal)


class SeedLoader:
    """Seeds in batches of ``batch_size``: per epoch shuffled (when ``shuffle``) with the epoch's
    generator, then this rank's equal share, cut into consecutive batches (the last may be smaller)."""

    def __init__(self, seeds: Tensor, batch_size: int, shuffle: bool = True):
        if batch_size < 1:
            raise GnnkitError(f"batch_size must be at least 1, got {batch_size}")
        self.seeds, self.batch_size, self.shuffle = seeds, int(batch_size), shuffle

    def steps(self, world: int) -> int:
        """Batches per epoch on each of ``world`` ranks."""
        return -(-(self.seeds.numel() // max(world, 1)) // self.batch_size)

    def steps_for(self, ctx) -> int:
        """Batches per epoch on this rank under ``ctx`` (its own seeds when :func:`per_rank`)."""
        return self.steps(1 if per_rank(ctx) else ctx.world_size)

    def batches(self, ctx, gen: Optional[torch.Generator]) -> Iterator[Tensor]:
        order = shuffled(self.seeds, gen) if self.shuffle else self.seeds
        order = shard(ctx, order)
        for s in range(0, order.numel(), self.batch_size):
            yield order[s:s + self.batch_size]


def close_iterator(it) -> None:
    """Close ``it`` when it can be closed (a generator: its ``finally`` blocks run now, not when the
    garbage collector finds it), for the wrappers that pull a sampler's epoch and may stop early."""
    close = getattr(it, "close", None)
    if close is not None:
        close()
