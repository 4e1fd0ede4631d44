"""An epoch resumed after ``skip`` of its steps: the batches a mid-epoch checkpoint left off at.

A sampler that may run in the sampling pipeline draws an epoch from its epoch's generator alone
(:mod:`samplers.base`), so drawing the first ``skip`` batches again and dropping them leaves the
generator exactly where the interrupted run had it after step ``skip``: the batches that follow
are the ones the uninterrupted run trains on. Dropped batches are drawn, not read: when the
features come through a :class:`~gnnkit.samplers.scan.ScanFeatures` (an on-disk store) their rows
are recorded and never fetched, so resuming costs the sampling of ``skip`` batches, not their I/O.
"""
from __future__ import annotations

import contextlib
from typing import Any, Iterator

from gnnkit.errors import GnnkitError

from .loader import close_iterator
from .scan import ScanFeatures


class Resumed:
    """``sampler``'s epoch from batch ``skip`` on (``skip`` batches are drawn and dropped first);
    everything else is the sampler's. ``features``: the sampler's feature store (its context's)."""

    def __init__(self, sampler, skip: int, features: Any = None):
        if not 0 <= int(skip) < len(sampler):
            raise GnnkitError(f"cannot resume at step {skip} of an epoch of {len(sampler)} steps: was the "
                              "checkpoint written with another batch size, sampler or number of ranks?")
        self.sampler, self.skip, self.features = sampler, int(skip), features

    def __getattr__(self, attr: str) -> Any:
        if attr == "sampler":
            raise AttributeError(attr)
        return getattr(self.sampler, attr)

    def __len__(self) -> int:
        return len(self.sampler) - self.skip

    def __iter__(self) -> Iterator:
        it = iter(self.sampler)
        try:
            deferred = isinstance(self.features, ScanFeatures)
            with self.features.recording() if deferred else contextlib.nullcontext() as pending:
                for _ in range(self.skip):
                    next(it)
                    if deferred:
                        pending.clear()  # the dropped batch's rows: never read
            yield from it
        finally:
            close_iterator(it)
