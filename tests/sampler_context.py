"""A run context for testing samplers without a Trainer (optionally pretending to be one of several ranks)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import torch

from gnnkit import distributed as dist
from gnnkit.context import RunContext
from gnnkit.stores import from_data


@dataclass(frozen=True)
class RankedContext(RunContext):
    """A :class:`RunContext` whose rank and world size are given (no process group needed)."""

    fake_rank: int = 0
    fake_world: int = 1

    @property
    def rank(self) -> int:
        return self.fake_rank

    @property
    def world_size(self) -> int:
        return self.fake_world

    @property
    def is_main(self) -> bool:
        return self.fake_rank == 0

    def shard(self, items: Sequence, equal: bool = True) -> Sequence:
        return dist.shard(items, self.fake_rank, self.fake_world, equal)


def make_ctx(data, *, seed: int = 0, adj_norm: str = "gcn", diag_lambda: float = 0.0, features=None,
             rank: int = 0, world_size: int = 1, data_visible: bool = True, **kw) -> RankedContext:
    """The context of ``data`` (in-memory stores; ``features`` replaces the feature store).
    ``data_visible=False`` leaves ``ctx.data`` empty, so a sampler can only read through the stores."""
    graph, feats = from_data(data)
    return RankedContext(device=torch.device("cpu"), seed=seed, graph=graph, features=features or feats,
                         data=data if data_visible else None, adj_norm=adj_norm, diag_lambda=diag_lambda,
                         fake_rank=rank, fake_world=world_size, **kw)
