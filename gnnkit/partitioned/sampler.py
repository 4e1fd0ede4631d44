"""Opening this rank's part for training: :func:`open_dataset`.

:func:`open_dataset` is what ``gnnkit train --dataset DIR`` gives the Trainer for a partition
folder: rank ``r`` (torchrun's ``RANK``) opens part ``r`` only, memory-mapped and verified, and
wraps it in the :class:`~gnnkit.partitioned.stores.DistGraphStore` /
:class:`~gnnkit.partitioned.stores.DistFeatureStore` pair. The world size must equal the part count.

The samplers walk its seeds unchanged: the feature store's ``index("train_mask")`` gives this
rank's own training nodes (the same count on every rank) and sets ``seeds_per_rank``, so the seed
loader (:func:`gnnkit.samplers.loader.per_rank`) does not shard them again.
"""
from __future__ import annotations

import os
from typing import Optional, Tuple

from gnnkit.errors import GnnkitError

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
