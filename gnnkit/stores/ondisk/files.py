"""An opened store folder: its checked metadata and its arrays, memory-mapped on first use.

``StoreFiles(path, verify=False)`` checks the metadata and every array's size on open (and the
checksums too with ``verify=True``); :meth:`StoreFiles.tensor` maps an array with
``torch.from_file(shared=False)``: a private, read-only-in-effect mapping whose pages are the
page cache's (counted as file-backed memory, ``RssFile``, not ``RssAnon``), read from disk only
when touched.
"""
from __future__ import annotations

import math
import os
from typing import Any, Dict, List

import torch
from torch import Tensor

from gnnkit.errors import GnnkitError

from .format import DTYPES, array_file, read_metadata, verify_checksums


class StoreFiles:
    """The arrays of the store at ``path`` (see :mod:`gnnkit.stores.ondisk.format`)."""

    def __init__(self, path, verify: bool = False):
        self.path = os.path.abspath(os.fspath(path))
        self.meta: Dict[str, Any] = read_metadata(self.path)
        if verify:
            verify_checksums(self.path, self.meta)
        self._mapped: Dict[str, Tensor] = {}
        self._check_indptr()

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
                t = torch.from_file(array_file(self.path, self.arrays[name]), shared=False, size=numel,
                                    dtype=dtype).view(shape)
            self._mapped[name] = t
        return self._mapped[name]

    def _check_indptr(self) -> None:
        """``indptr[0] = 0`` and ``indptr[N] = E`` (two reads): a cheap guard against a wrong file."""
        indptr = self.tensor("indptr")
        if int(indptr[0]) != 0 or int(indptr[-1]) != int(self.meta["num_edges"]):
            raise GnnkitError(f"store {self.path}: array 'indptr' is corrupted: it spans "
                              f"[{int(indptr[0])}, {int(indptr[-1])}], expected [0, {self.meta['num_edges']}]")
