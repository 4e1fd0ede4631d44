"""Chronological event batches for temporal link prediction (TGN).

Each batch is an :class:`~gnnkit.temporal.events.EventBatch` of ``batch_size`` consecutive
training events (``e_id``, ``src``, ``dst``, ``t``, ``msg`` ``[B, ...]``) in time order, with one
negative destination per positive (``neg_dst`` ``[B]``) drawn uniformly from the destinations of
the training events. Negatives are drawn from the epoch's generator (:mod:`samplers.loader`), so a
run and its resumption draw the same ones. The stream is the context's ``data`` (event streams have
no graph or feature store). The stream must carry a split (the ``temporal-link`` task
makes one in its ``setup``); order matters, so the sampler runs in one process.
"""
from __future__ import annotations

import torch

from gnnkit.errors import GnnkitError
from gnnkit.temporal.events import EventBatch, EventStream

from .base import Sampler
from .loader import epoch_generator

DEFAULT_BATCH = 200


class TemporalSampler(Sampler):
    name = "temporal"
    #: what it samples: the temporal-link task accepts only such a sampler (``Task.check_sampler``)
    input = "events"

    def __init__(self, batch_size: int = DEFAULT_BATCH):
        if batch_size < 1:
            raise GnnkitError(f"batch size must be >= 1, got {batch_size}")
        self.batch_size = int(batch_size)

    @classmethod
    def from_args(cls, args) -> "TemporalSampler":
        size = getattr(args, "batch_size", None)
        return cls(batch_size=DEFAULT_BATCH if size is None else size)

    def setup(self, ctx, model) -> None:
        super().setup(ctx, model)
        data = self.ctx.data
        if not isinstance(data, EventStream) or data.train_mask is None:
            raise GnnkitError("the temporal sampler needs an event stream with a split "
                              "(use --task temporal-link)")
        if self.ctx.world_size > 1:
            raise GnnkitError("the temporal sampler processes events in order and runs in one process")
        self.e_id = data.train_mask.nonzero().view(-1)
        if self.e_id.numel() == 0:
            raise GnnkitError(f"{data.name}: no training events")
        self.candidates = torch.unique(data.dst[self.e_id])

    def __len__(self) -> int:
        return (self.e_id.numel() + self.batch_size - 1) // self.batch_size

    def __iter__(self):
        d = self.ctx.data
        gen = epoch_generator(self.ctx.seed, self.epoch)
        pick = torch.randint(self.candidates.numel(), (self.e_id.numel(),), generator=gen)
        neg = self.candidates[pick.to(self.candidates.device)]
        for lo in range(0, self.e_id.numel(), self.batch_size):
            e = self.e_id[lo: lo + self.batch_size]
            yield EventBatch(e_id=e, src=d.src.index_select(0, e), dst=d.dst.index_select(0, e),
                             t=d.t.index_select(0, e), msg=d.msg.index_select(0, e), neg_dst=neg[lo: lo + self.batch_size])
