"""Scan-ahead: the feature rows of several batches read in one sequential pass over an on-disk store.

Why. A neighbor-sampled batch of a graph bigger than memory needs feature rows spread over the
whole file: papers100M's size, 3 layers with fanouts 15,10,5 and 1024 seeds, gathers about
``r = 860k`` rows of ``b = 256`` bytes out of ``N = 111M`` (one every ~33 KB of a ~28 GB file).
Row by row each costs a random 4 KiB read: ``r / R`` seconds at ``R`` random reads per second
(this machine's disk: ``R`` about 4k/s, i.e. minutes per batch). One sequential pass over the
file costs about ``N b / S`` seconds at ``S`` sequential bytes per second (0.5-1 GB/s here: ~30-60 s)
whatever the number of rows it serves, so reading the rows of ``g`` batches in one pass
(:func:`~gnnkit.stores.ondisk.scan.scan_rows`) costs ``N b / (S g)`` per batch. It pays when
``r / R > N b / (S g)``, i.e. when the wanted rows are too many and too spread for random reads and
the file is not in the page cache. A store whose features sit in the page cache loses: the pass
reads the file from disk (``O_DIRECT``) while the plain gathers are served from memory.

Memory. The union of the group's rows ``[u, F]`` (``u <= g r``, in the stored dtype: ``u b``
bytes) and the ``g`` batches' own ``x`` ``[r_i, F]`` (the run's dtype: ``g r F × 4`` bytes for
float32) are alive at once, with the sampled blocks of the ``g`` batches, on top of the ``prefetch``
batches the sampling pipeline keeps ready. Papers100M's size, float16 features, float32 ``x``,
``g = 8``: about 1.8 GB of rows and 3.5 GB of ``x``.

How. The sampler is given a context whose ``features`` is a :class:`ScanFeatures` around the run's
store. While :func:`scan_ahead` pulls a batch from the sampler, ``get("x", ids)`` returns a fresh
uninitialized tensor ``[n, F]`` of the store's dtype and records ``(tensor, ids)``; every other
name, and every call outside that pull (evaluation, another thread), reads the store as usual.
After ``g`` batches, ``u = unique(cat(ids_1..ids_g))`` (ascending) is read by one ``scan_rows``,
converted as the store converts (stored -> compute dtype -> the run's precision) and each recorded
tensor is filled in place with ``rows[searchsorted(u, ids_i)]``; then the ``g`` batches are yielded
in order. The sampler's random draws are untouched, so the batches equal the plain sampler's bit
for bit. A sampler whose next batch depends on the step (``wants_feedback``: MVS) cannot be read
ahead and is refused. Sampled evaluation (:class:`~gnnkit.samplers.neighbor.SampledPredictions`)
reads its batches the same way when the run's features are a :class:`ScanFeatures` with a ``group``.
"""
from __future__ import annotations

import collections
import contextlib
import itertools
import threading
from typing import Any, Dict, Iterable, Iterator, List, Optional, Tuple

import torch
from torch import Tensor

from gnnkit.errors import GnnkitError
from gnnkit.stores.features import FeatureStore

from .loader import close_iterator


FILL_ROWS = 1 << 16  # rows per chunk when recorded tensors are filled from a scan


def on_disk_store(features) -> Optional[Any]:
    """The :class:`~gnnkit.stores.ondisk.OnDiskFeatureStore` under ``features`` (through cast
    wrappers' ``base``), or ``None`` when the features are not read from an on-disk store."""
    from gnnkit.stores.ondisk import OnDiskFeatureStore

    while features is not None and not isinstance(features, OnDiskFeatureStore):
        features = getattr(features, "base", None)
    return features


class ScanFeatures(FeatureStore):
    """``store`` with the rows of ``name`` deferred while recording (module docstring); ``group``:
    the batches whose rows one pass reads (also in sampled evaluation; 0: recording only)."""

    def __init__(self, store: FeatureStore, name: str = "x", group: int = 0):
        self.disk = on_disk_store(store)
        if self.disk is None:
            raise GnnkitError(f"scan-ahead reads features from an on-disk store; got {type(store).__name__}")
        self.store, self.name, self.group, self._local = store, name, int(group), threading.local()

    def __getattr__(self, attr: str) -> Any:  # files, background, seeds_per_rank, ...: the store's
        if attr in ("store", "_local", "group"):
            raise AttributeError(attr)
        return getattr(self.store, attr)

    def names(self) -> List[str]:
        return self.store.names()

    def shape(self, name: str) -> Tuple[int, ...]:
        return self.store.shape(name)

    def dtype(self, name: str) -> torch.dtype:
        return self.store.dtype(name)

    @property
    def meta(self) -> Dict[str, Any]:
        return self.store.meta

    def get(self, name: str, ids: Optional[Tensor] = None) -> Tensor:
        pending = getattr(self._local, "pending", None)
        if pending is None or name != self.name or ids is None:
            return self.store.get(name, ids)
        ids = ids.long()
        out = torch.empty((ids.numel(), *self.store.shape(name)[1:]), dtype=self.store.dtype(name))
        pending.append((out, ids))
        return out

    @contextlib.contextmanager
    def recording(self) -> Iterator[List[Tuple[Tensor, Tensor]]]:
        """Within the block (in this thread), ``get(name, ids)`` is recorded into the yielded list
        (a block inside another records into its own list; the outer one's resumes after it)."""
        outer = getattr(self._local, "pending", None)
        self._local.pending = pending = []
        try:
            yield pending
        finally:
            self._local.pending = outer

    def fill(self, pending: List[Tuple[Tensor, Tensor]]) -> int:
        """Fill every recorded ``(out [n, F], ids [n])`` from one ``scan_rows`` pass over the union
        of the ids; returns the number of distinct rows read."""
        from gnnkit.stores.ondisk.scan import scan_rows

        if not pending:
            return 0
        union = torch.unique(torch.cat([ids for _, ids in pending]))  # sorted ascending
        rows, compute = scan_rows(self.disk.files, self.name, union), self.disk.dtype(self.name)
        for out, ids in pending:  # stored -> compute dtype -> the run's dtype, as the store's get casts
            at = torch.searchsorted(union, ids)
            for a in range(0, at.numel(), FILL_ROWS):  # chunks: no batch-sized temporaries beside `out`
                picked = rows.index_select(0, at[a:a + FILL_ROWS])
                out[a:a + FILL_ROWS].copy_(picked if out.dtype == compute else picked.to(compute))
        return union.numel()


def scan_ahead(batches: Iterable, features: ScanFeatures, group: int) -> Iterator:
    """The batches of ``batches`` (a sampler's epoch, gathering through ``features``), in order,
    ``group`` at a time with their ``x`` rows read in one pass (module docstring)."""
    if group < 1:
        raise GnnkitError(f"scan_group must be >= 1, got {group}")
    it = iter(batches)
    try:
        while True:
            with features.recording() as pending:
                chunk = collections.deque(itertools.islice(it, group))
            if not chunk:
                return
            features.fill(pending)
            pending.clear()  # from here each batch is the consumer's alone: freed once it has trained
            while chunk:
                yield chunk.popleft()
    finally:
        close_iterator(it)


class ScanAhead:
    """``sampler`` as :func:`~samplers.pipeline.epoch_batches` sees it, its epoch read through
    :func:`scan_ahead` (so the pipeline's thread runs the scans too); everything else is the sampler's."""

    def __init__(self, sampler, features: ScanFeatures, group: int):
        self.sampler, self.features, self.group = sampler, features, int(group)

    def __getattr__(self, attr: str) -> Any:
        if attr == "sampler":
            raise AttributeError(attr)
        return getattr(self.sampler, attr)

    def __iter__(self) -> Iterator:
        return scan_ahead(self.sampler, self.features, self.group)

    def __len__(self) -> int:
        return len(self.sampler)


def scan_context(ctx, sampler, group: int, deferrable: bool = False):
    """The context ``sampler`` is set up with: ``ctx`` when ``group`` is 0, else ``ctx`` with its
    features wrapped in a :class:`ScanFeatures`; refused (one line) for features not on disk and for
    a sampler that needs the step's feedback. ``deferrable`` (checkpoints inside epochs): wrap an
    on-disk store even when ``group`` is 0, so that the batches a resumed epoch draws again are
    not read (:mod:`samplers.resume`); outside a recording the wrapper reads as the store does."""
    if not group:
        disk = deferrable and on_disk_store(ctx.features) is not None and not getattr(sampler, "wants_feedback", False)
        return ctx.replace(features=ScanFeatures(ctx.features, group=group)) if disk else ctx
    if on_disk_store(ctx.features) is None:
        raise GnnkitError(f"scan_group {group} reads features from an on-disk store in one pass; this run's "
                          f"features are {type(ctx.features).__name__}: drop scan_group (--scan-group) or train "
                          "from a store (gnnkit convert)")
    if getattr(sampler, "wants_feedback", False):
        raise GnnkitError(f"scan_group reads batches ahead; the {getattr(sampler, 'name', type(sampler).__name__)} "
                          "sampler's next batch depends on the step: drop scan_group or use the neighbor sampler")
    return ctx.replace(features=ScanFeatures(ctx.features, group=group))
