"""OnDiskFeatureStore: node features, labels and masks of a store, memory-mapped.

``get(name, ids)`` reads the rows in ascending id order (one sort of ``ids``), so consecutive
reads walk the file forward and the page cache's read-ahead serves them, then returns them in the
caller's order. Floating arrays stored in half precision (``float16``/``bfloat16``) come back in
``compute_dtype`` (float32 by default; exact: every half value is a float32 value), so models see
the same dtype from every backend; ``stored_dtype(name)`` tells what the file holds.

An optional in-memory cache keeps the rows of chosen ("hot") nodes of one array, within a byte
budget (:meth:`OnDiskFeatureStore.cache_rows`, e.g. the nodes of highest in-degree, which neighbor
sampling visits most): a read takes the cached rows from memory and only the others from disk.
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple

import torch
from torch import Tensor

from gnnkit.data.limits import check_allocation
from gnnkit.stores.features import FeatureStore

from .files import StoreFiles, sorted_take


def read_rows(t: Tensor, ids: Tensor, threads: int = 1) -> Tensor:
    """``t[ids]`` ``[n, ...]`` read in ascending id order, returned in the order of ``ids``
    (:func:`~gnnkit.stores.ondisk.files.sorted_take`)."""
    return sorted_take(t, ids, threads)


class _Cache:
    """Rows ``rows [k, ...]`` of the nodes ``ids [k]`` (ascending) of one array."""

    def __init__(self, ids: Tensor, rows: Tensor):
        self.ids, self.rows = ids, rows

    def lookup(self, ids: Tensor) -> Tuple[Tensor, Tensor]:
        """``(hit [n] bool, slot [n])``: whether each id is cached, and where."""
        slot = torch.searchsorted(self.ids, ids).clamp_(max=max(self.ids.numel() - 1, 0))
        hit = self.ids[slot] == ids if self.ids.numel() else torch.zeros_like(ids, dtype=torch.bool)
        return hit, slot


class OnDiskFeatureStore(FeatureStore):
    """The node arrays of the store ``files``; floating ones returned as ``compute_dtype``."""

    def __init__(self, files: StoreFiles, compute_dtype: torch.dtype = torch.float32):
        self.files, self.compute_dtype = files, compute_dtype
        self._caches: Dict[str, _Cache] = {}

    def names(self) -> List[str]:
        return self.files.names("node")

    def shape(self, name: str) -> Tuple[int, ...]:
        self.check(name)
        return self.files.shape(name)

    def stored_dtype(self, name: str) -> torch.dtype:
        self.check(name)
        return self.files.dtype(name)

    def dtype(self, name: str) -> torch.dtype:
        stored = self.stored_dtype(name)
        return self.compute_dtype if stored.is_floating_point else stored

    @property
    def meta(self) -> Dict[str, Any]:
        return self.files.meta.get("meta", {})

    def get(self, name: str, ids: Optional[Tensor] = None) -> Tensor:
        """Rows ``ids`` of ``name`` in the order of ``ids`` (``None``: all rows; the mapped array itself
        when no cast is needed: read it, never write it)."""
        out_dtype = self.dtype(name)
        t = self.files.tensor(name)
        if ids is None:
            if t.dtype == out_dtype:
                return t
            check_allocation(t.numel() * out_dtype.itemsize, f"all rows of {name!r} as {out_dtype}")
            return t.to(out_dtype)
        ids = ids.long()
        cache = self._caches.get(name)
        threads = self.files.read_threads
        if cache is None:
            return read_rows(t, ids, threads).to(out_dtype)
        hit, slot = cache.lookup(ids)
        out = torch.empty((ids.numel(), *t.shape[1:]), dtype=t.dtype)
        out[hit] = cache.rows[slot[hit]]
        miss = (~hit).nonzero().view(-1)
        out[miss] = read_rows(t, ids[miss], threads)
        return out.to(out_dtype)

    def cache_rows(self, name: str, budget_bytes: int, priority: Tensor) -> int:
        """Keep in memory the rows of ``name`` of the nodes with the highest ``priority`` ``[N]``
        (ties: lower id first) that fit in ``budget_bytes``; returns how many. ``budget_bytes=0``
        drops the cache."""
        t = self.files.tensor(name)
        row_bytes = max(t[:1].numel() * t.element_size(), 1) + 8  # + the id
        k = min(int(budget_bytes) // row_bytes, t.shape[0])
        if k <= 0:
            self._caches.pop(name, None)
            return 0
        top = torch.sort(torch.sort(priority, descending=True, stable=True).indices[:k]).values
        self._caches[name] = _Cache(top, read_rows(t, top))
        return k
