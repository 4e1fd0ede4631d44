"""Rows of a store array read in one sequential pass, for gathers too dense for random reads.

A neighbor-sampled batch of a graph bigger than memory needs rows spread over the whole feature
file (papers100M's size: about 860k rows of 256 bytes out of 111M per batch of 1024 seeds, one
every 33 KB on average). Read row by row, each row costs one random 4 KiB read; on a disk that
serves far fewer random reads per second than sequential bytes (this machine's: a few thousand
random 4 KiB reads/s, about 480 MB/s sequential) it is cheaper to read the file's chunks that
hold wanted rows, in order, in large blocks, and keep the wanted rows. :func:`scan_rows` does so
for the distinct ascending ids ``ids`` ``[n]`` of array ``name``: the file is cut into chunks of
about ``chunk_bytes`` (a multiple of both the row size and 4 KiB); every chunk holding a wanted
row is read by one ``preadv`` (``O_DIRECT`` where the file system allows it, so the pass neither
fills nor evicts the page cache), ``threads`` chunks at a time, and its wanted rows copied out.
The rows are the array's own bytes: ``scan_rows(files, name, ids)`` equals ``files.tensor(name)[ids]``.
"""
from __future__ import annotations

import math
import mmap
import os
import threading
from concurrent.futures import ThreadPoolExecutor

import torch
from torch import Tensor

from gnnkit.errors import GnnkitError

from .format import array_file

CHUNK_BYTES = 64 << 20  # bytes per sequential read (about)
SCAN_THREADS = 4  # chunks read at a time
ALIGN = 4096  # O_DIRECT's alignment of offsets, lengths and buffers


def _open(path: str) -> int:
    """``path`` opened for reading with ``O_DIRECT`` where possible, else buffered."""
    direct = getattr(os, "O_DIRECT", 0)
    if direct:
        try:
            return os.open(path, os.O_RDONLY | direct)
        except OSError:
            pass
    return os.open(path, os.O_RDONLY)


def scan_rows(files, name: str, ids: Tensor, chunk_bytes: int = CHUNK_BYTES, threads: int = SCAN_THREADS) -> Tensor:
    """Rows ``ids`` ``[n]`` (distinct, ascending) of array ``name`` of the store ``files``
    (:class:`~gnnkit.stores.ondisk.files.StoreFiles`): ``[n, *row_shape]`` in the stored dtype,
    read chunk by chunk in file order (module docstring)."""
    t = files.tensor(name)
    shape, dtype = tuple(t.shape), t.dtype
    row = math.prod(shape[1:]) * dtype.itemsize
    ids = ids.long()
    out = torch.empty((ids.numel(), *shape[1:]), dtype=dtype)
    if ids.numel() == 0 or row == 0:
        return out
    if (ids.numel() > 1 and not bool((ids[1:] > ids[:-1]).all())) or int(ids[0]) < 0 or int(ids[-1]) >= shape[0]:
        raise GnnkitError(f"scan_rows: the ids of {name!r} must be distinct, ascending and in [0, {shape[0]})")
    unit = row * ALIGN // math.gcd(row, ALIGN)
    step = max(unit, chunk_bytes // unit * unit)
    per_chunk = step // row
    chunks, counts = torch.unique_consecutive(torch.div(ids, per_chunk, rounding_mode="floor"), return_counts=True)
    ends = torch.cumsum(counts, 0).tolist()
    spans = list(zip(chunks.tolist(), [e - c for e, c in zip(ends, counts.tolist())], ends))
    flat = out.view(ids.numel(), -1).view(torch.uint8)  # [n, row] bytes
    local = threading.local()
    fd = _open(array_file(files.path, files.arrays[name]))

    def read(span) -> None:
        c, lo, hi = span
        if not hasattr(local, "buf"):
            local.buf = mmap.mmap(-1, step)  # page-aligned, as O_DIRECT needs
        got = os.preadv(fd, [local.buf], c * step)
        if got % row:
            raise GnnkitError(f"scan_rows: short read of {name!r} at chunk {c}")
        rows = torch.frombuffer(local.buf, dtype=torch.uint8, count=got).view(-1, row)
        torch.index_select(rows, 0, ids[lo:hi] - c * per_chunk, out=flat[lo:hi])

    try:
        with ThreadPoolExecutor(max(1, threads), thread_name_prefix="gnnkit-scan") as pool:
            list(pool.map(read, spans))
    finally:
        os.close(fd)
    return out
