"""An opened store folder: its checked metadata and its arrays, memory-mapped on first use.

``StoreFiles(path, verify=False)`` checks the metadata and every array's size on open (and the
checksums too with ``verify=True``); :meth:`StoreFiles.tensor` maps an array with
``torch.from_file(shared=False)``: a private, read-only-in-effect mapping whose pages are the
page cache's (counted as file-backed memory, ``RssFile``, not ``RssAnon``), read from disk only
when touched.

:meth:`StoreFiles.take` gathers rows ``t[ids]`` of a mapped array in ascending id order; for a
store bigger than the page cache can hold (more than half of
:func:`~gnnkit.data.limits.memory_limit`, or ``read_threads`` given) it splits a gather of
``n`` ids into ``min(read_threads, n // PARALLEL_MIN)`` contiguous slices of the sorted ids read
concurrently: each page fault of a cold page waits for the disk, and concurrent faults keep
several reads in flight instead of one (the values are the same whatever the thread count).
Small gathers too: a neighbor-sampled batch of 1024 seeds makes a few thousand cold faults per step
in gathers of 1k-16k ids (the seeds' labels, the first hops' CSR reads), each waiting alone for
the disk (about 9 ms at the papers-sized run's queue depth) when read by one thread.
Such a store's mappings are also advised ``MADV_RANDOM`` (Linux): a fault then reads its own page
only, not the 128 KiB around it, which for rows scattered over a file larger than the page cache
would read most of the file at every batch.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import math
import os
import sys
import warnings
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Dict, List, Optional

import numpy as np
import torch
from torch import Tensor

from gnnkit.data.limits import memory_limit
from gnnkit.errors import GnnkitError

from .format import DTYPES, array_file, read_metadata, verify_checksums


READ_THREADS = 32  # concurrent readers of a store bigger than memory (disk queue depth)
MADV_RANDOM = 1  # Linux's madvise advice: no read-around on faults
PARALLEL_MIN = 64  # the fewest ids per concurrent reader: n ids take min(threads, n // 64) readers
_POOL: Dict[int, ThreadPoolExecutor] = {}


def sorted_take(t: Tensor, ids: Tensor, threads: int = 1) -> Tensor:
    """``t[ids]`` ``[n, ...]`` read in ascending id order (returned in the order of ``ids``); with
    ``threads > 1``, ``min(threads, n // PARALLEL_MIN)`` slices of the sorted ids (when at least two)
    are gathered concurrently (``index_select`` releases the interpreter lock)."""
    ascending = ids.numel() < 2 or bool((ids[1:] >= ids[:-1]).all())
    sorted_ids, order = (ids, None) if ascending else torch.sort(ids)
    slices = min(threads, ids.numel() // PARALLEL_MIN)
    if slices < 2:
        rows = t[sorted_ids]
    else:
        pool = _POOL.setdefault(threads, ThreadPoolExecutor(threads, thread_name_prefix="gnnkit-read"))
        rows = torch.empty((ids.numel(), *t.shape[1:]), dtype=t.dtype)
        bounds = torch.linspace(0, ids.numel(), slices + 1).long().tolist()
        parts = [(a, b) for a, b in zip(bounds[:-1], bounds[1:]) if b > a]
        list(pool.map(lambda ab: torch.index_select(t, 0, sorted_ids[ab[0]:ab[1]], out=rows[ab[0]:ab[1]]), parts))
    if order is None:
        return rows
    out = torch.empty_like(rows)
    out[order] = rows
    return out


def advise_random(t: Tensor) -> bool:
    """``madvise(MADV_RANDOM)`` over the pages of the mapped tensor ``t`` (Linux only; returns
    whether the kernel took the advice). Only the page-fault read-ahead changes, never the values."""
    if not sys.platform.startswith("linux") or t.numel() == 0:
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    except OSError:
        return False
    page = os.sysconf("SC_PAGE_SIZE")
    addr = t.data_ptr()
    start = addr - addr % page
    size = addr + t.numel() * t.element_size() - start
    return libc.madvise(ctypes.c_void_p(start), ctypes.c_size_t(size), MADV_RANDOM) == 0


def map_array(path: str, dtype: torch.dtype, numel: int) -> Tensor:
    """The file ``path`` as a 1-D ``[numel]`` tensor, memory-mapped. Up to half the memory limit:
    ``torch.from_file(shared=False)``, a private mapping. Beyond: a read-only shared mapping
    (``numpy.memmap`` mode ``"r"``, viewed as ``dtype``), because the kernel refuses a private
    writable mapping larger than memory (its pages could all become private copies) while a
    read-only one costs nothing until read; writing into it would fault, so read it only."""
    nbytes = numel * dtype.itemsize
    if nbytes <= memory_limit() // 2:
        return torch.from_file(path, shared=False, size=numel, dtype=dtype)
    raw = np.memmap(path, dtype=np.uint8, mode="r", shape=(nbytes,))
    with warnings.catch_warnings():  # torch warns that the array is not writable: it is read-only by design
        warnings.simplefilter("ignore", UserWarning)
        return torch.from_numpy(raw).view(dtype)


class StoreFiles:
    """The arrays of the store at ``path`` (see :mod:`gnnkit.stores.ondisk.format`); ``read_threads``
    the concurrent readers of a large gather (``None``: ``READ_THREADS`` for a store bigger than
    half the memory limit, else 1)."""

    def __init__(self, path, verify: bool = False, read_threads: Optional[int] = None):
        self.path = os.path.abspath(os.fspath(path))
        self.meta: Dict[str, Any] = read_metadata(self.path)
        if verify:
            verify_checksums(self.path, self.meta)
        self._mapped: Dict[str, Tensor] = {}
        if read_threads is not None and read_threads < 1:
            raise GnnkitError(f"read_threads must be at least 1, got {read_threads}")
        big = self.nbytes() > memory_limit() // 2
        self.read_threads = int(read_threads) if read_threads is not None else (READ_THREADS if big else 1)
        self._check_indptr()

    def nbytes(self) -> int:
        """The bytes of all arrays."""
        return sum(math.prod(self.shape(k)) * self.dtype(k).itemsize for k in self.arrays)

    def take(self, name: str, ids: Tensor) -> Tensor:
        """Rows ``ids`` of array ``name`` (:func:`sorted_take` with this store's ``read_threads``)."""
        return sorted_take(self.tensor(name), ids, self.read_threads)

    @property
    def arrays(self) -> Dict[str, Dict[str, Any]]:
        return self.meta["arrays"]

    def names(self, role: str) -> List[str]:
        return sorted(k for k, spec in self.arrays.items() if spec.get("role", "node") == role)

    def has(self, name: str) -> bool:
        return name in self.arrays

    def dtype(self, name: str) -> torch.dtype:
        return DTYPES[self.arrays[name]["dtype"]]

    def shape(self, name: str):
        return tuple(self.arrays[name]["shape"])

    def tensor(self, name: str) -> Tensor:
        """Array ``name`` memory-mapped, in its stored dtype and shape (read it, never write it)."""
        if name not in self._mapped:
            if name not in self.arrays:
                raise GnnkitError(f"store {self.path} has no array {name!r}")
            shape, dtype = self.shape(name), self.dtype(name)
            numel = math.prod(shape)
            if numel == 0:
                t = torch.empty(shape, dtype=dtype)
            else:
                t = map_array(array_file(self.path, self.arrays[name]), dtype, numel).view(shape)
                if self.read_threads > 1:
                    advise_random(t)
            self._mapped[name] = t
        return self._mapped[name]

    def _check_indptr(self) -> None:
        """``indptr[0] = 0`` and ``indptr[N] = E`` (two reads): a cheap guard against a wrong file."""
        indptr = self.tensor("indptr")
        if int(indptr[0]) != 0 or int(indptr[-1]) != int(self.meta["num_edges"]):
            raise GnnkitError(f"store {self.path}: array 'indptr' is corrupted: it spans "
                              f"[{int(indptr[0])}, {int(indptr[-1])}], expected [0, {self.meta['num_edges']}]")
