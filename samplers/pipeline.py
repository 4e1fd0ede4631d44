"""The sampling pipeline: an epoch's batches produced ahead of the step, in a background thread.

``with epoch_batches(sampler, ctx) as batches: for batch in batches: ...`` yields exactly the
batches ``iter(sampler)`` yields, in the same order. With ``ctx.num_workers >= 1`` (and a sampler
that allows it, below) a daemon thread named ``gnnkit-sampler`` runs the sampler's iterator: it
samples batch ``k + 1`` (blocks and feature gather) while the loop's thread trains on batch ``k``.
Torch releases the GIL inside its kernels, so the two threads run on two cores; Python code between
kernels is serialized by the GIL.

Same batches, same order. The thread is the only one that advances the sampler's iterator, so
every draw from the epoch's generator (:func:`~samplers.loader.epoch_generator`) happens in the
same order as without the pipeline, and the batches are bitwise identical; the step in the loop's
thread draws dropout from torch's global generator, which the samplers never use. A sampler that
drew from the global generator would interleave with the step: it must set ``background = False``.

Bounded. The queue holds ``ctx.prefetch`` batches; the thread holds at most one more while it
waits, so at most ``prefetch + 1`` batches beyond the one in training are alive.

Clean shutdown. An exception in the sampler is re-raised in the loop's thread with its own
traceback, at the position of the batch that failed. When the loop leaves the ``with`` block (end of
the epoch, an error or ``KeyboardInterrupt`` in the step, or an early ``break``), the thread is told
to stop, the queue is drained and the thread is joined (it finishes the batch in hand, at most one
batch's time), and the sampler's generator is closed in that thread.

Inline instead (the batches are produced in the loop, as without the pipeline) when
``num_workers == 0``; when the sampler sets ``wants_feedback`` (MVS: its next batch depends on the
step's gradient norms, which arrive through ``feedback`` after the step); when it sets
``background = False`` (e.g. it makes collective calls, which may not run beside the step's
all-reduce, or keeps state the step changes), and likewise when the context's graph or feature
store sets ``background = False`` (a partitioned store that fetches rows from other ranks); and
when the epoch has one batch (full batch: nothing to overlap). :func:`plan` says which, and why.

Threads. Every built-in sampler draws an epoch from one sequential random stream (batch ``k``'s
neighbor draws start where batch ``k - 1``'s ended), so one thread produces the batches; a
``num_workers`` above 1 runs that one thread (it is logged once). The thread's torch kernels use
the process's intra-op thread count (``torch.set_num_threads``) like the loop's.

CUDA. When the run's device is CUDA and a batch comes out on the CPU (an on-disk store), the thread
pins its tensors (page-locked memory), copies them with ``non_blocking=True`` on a side stream and
records an event; the loop's stream waits on that event before the step, and each moved tensor is
marked as used by the loop's stream (``record_stream``) so the allocator does not hand its memory
back to the side stream early. The copy of batch ``k + 1`` thus overlaps the kernels of batch ``k``.
"""
from __future__ import annotations

import contextlib
import logging
import queue
import threading
from typing import Any, Iterator, Optional, Tuple

import torch
from torch import Tensor

from .batch import Batch, device_tensors
from .loader import close_iterator

log = logging.getLogger("gnnkit")
THREAD_NAME = "gnnkit-sampler"
_POLL = 0.05  # seconds between checks of the stop flag / the thread's liveness
_END, _ITEM, _ERROR = range(3)
_warned = set()


def plan(sampler, ctx) -> Tuple[int, str]:
    """``(threads, why)``: how many background threads produce ``sampler``'s epoch (0: inline)
    and the reason, from ``ctx.num_workers`` and what the sampler declares (module docstring)."""
    workers = int(getattr(ctx, "num_workers", 0) or 0)
    if workers <= 0:
        return 0, "num_workers is 0"
    name = getattr(sampler, "name", type(sampler).__name__)
    if getattr(sampler, "wants_feedback", False):
        return 0, f"the {name} sampler's next batch depends on the step's feedback"
    if not getattr(sampler, "background", True):
        return 0, f"the {name} sampler runs in the loop's thread (background = False)"
    for what in ("graph", "features"):
        store = getattr(ctx, what, None)
        if not getattr(store, "background", True):
            return 0, f"the {what} store {type(store).__name__} is read in the loop's thread (background = False)"
    if len(sampler) <= 1:
        return 0, "the epoch has one batch"
    return 1, "one sequential random stream per epoch" if workers > 1 else "background sampling"


def _note(sampler, ctx, threads: int, why: str) -> None:
    workers = int(getattr(ctx, "num_workers", 0) or 0)
    key = (type(sampler).__name__, threads, why)
    if workers > 0 and key not in _warned and (threads == 0 or workers > threads):
        _warned.add(key)
        log.info("sampling pipeline: %d thread(s) for %d worker(s) asked: %s", threads, workers, why)


@contextlib.contextmanager
def epoch_batches(sampler, ctx) -> Iterator[Iterator[Any]]:
    """A context manager over one epoch of ``sampler`` (call ``sampler.set_epoch`` first): yields an
    iterator of its batches, produced ahead in a background thread when :func:`plan` allows."""
    threads, why = plan(sampler, ctx)
    _note(sampler, ctx, threads, why)
    if threads == 0:
        yield iter(sampler)
        return
    ahead = Prefetcher(sampler, getattr(ctx, "prefetch", 2), getattr(ctx, "device", None))
    try:
        yield iter(ahead)
    finally:
        ahead.close()


class Prefetcher:
    """Runs ``iter(sampler)`` in one daemon thread, ``prefetch`` batches ahead (module docstring).

    Iterate it once; :meth:`close` (idempotent) stops and joins the thread."""

    def __init__(self, sampler, prefetch: int = 2, device: Optional[torch.device] = None):
        if int(prefetch) < 1:
            raise ValueError(f"prefetch must be >= 1, got {prefetch}")
        self.queue: queue.Queue = queue.Queue(maxsize=int(prefetch))
        self.stop = threading.Event()
        self.device = torch.device(device) if device is not None else None
        self.cuda = self.device is not None and self.device.type == "cuda" and torch.cuda.is_available()
        self._source = iter(sampler)
        self.thread = threading.Thread(target=self._produce, name=THREAD_NAME, daemon=True)
        self.thread.start()

    # -- the background thread ----------------------------------------------------------------------
    def _put(self, kind: int, item: Any) -> bool:
        """Put ``(kind, item)``, waiting for room unless asked to stop; ``False`` when stopped."""
        while not self.stop.is_set():
            try:
                self.queue.put((kind, item), timeout=_POLL)
                return True
            except queue.Full:
                continue
        return False

    def _produce(self) -> None:
        side = torch.cuda.Stream(self.device) if self.cuda else None
        try:
            for batch in self._source:
                if self.stop.is_set():
                    return
                item = self._to_device(batch, side) if side is not None else (batch, None)
                if not self._put(_ITEM, item):
                    return
            self._put(_END, None)
        except BaseException as err:  # noqa: BLE001 - handed to the loop's thread, which re-raises it
            self._put(_ERROR, err)
        finally:
            close_iterator(self._source)

    def _to_device(self, batch: Any, side) -> Tuple[Any, Any]:
        """``(batch on the device, event)``: pinned, non-blocking copies on the side stream."""
        with torch.cuda.stream(side):
            if isinstance(batch, Batch):
                moved = batch.pin_memory().to(self.device, non_blocking=True)
            elif hasattr(batch, "to"):
                moved = batch.to(self.device)
            else:
                return batch, None
            event = torch.cuda.Event()
            event.record(side)
        return moved, event

    # -- the loop's thread ----------------------------------------------------------------------------
    def __iter__(self) -> Iterator[Any]:
        while True:
            try:
                kind, item = self.queue.get(timeout=_POLL)
            except queue.Empty:
                if not self.thread.is_alive() and self.queue.empty():
                    raise RuntimeError("the sampling thread ended without finishing the epoch") from None
                continue
            if kind == _END:
                return
            if kind == _ERROR:
                raise item
            batch, event = item
            if event is not None:
                self._wait(batch, event)
            yield batch

    @staticmethod
    def _wait(batch: Any, event) -> None:
        stream = torch.cuda.current_stream()
        stream.wait_event(event)
        for t in device_tensors(batch):
            if t.is_cuda:
                t.record_stream(stream)

    def close(self) -> None:
        """Stop the thread (it finishes the batch in hand), drain the queue and join the thread."""
        self.stop.set()
        while self.thread.is_alive():
            self._drain()
            self.thread.join(timeout=_POLL)
        self._drain()

    def _drain(self) -> None:
        while True:
            try:
                self.queue.get_nowait()
            except queue.Empty:
                return

