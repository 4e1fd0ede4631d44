"""Writing a store chunk by chunk, atomically: :class:`StoreWriter`.

A store is written into a temporary folder ``.<name>.partial-XXXX`` beside its destination; each
array is appended to in chunks (:meth:`StoreWriter.array` -> :class:`ArrayWriter`), its checksum
computed on the way; :meth:`StoreWriter.commit` writes the metadata file last (atomically, with
:func:`gnnkit.fileio.atomic_write_json`) and renames the folder to its destination. Leaving the
``with`` block by an exception removes the temporary folder; a process killed midway leaves only a
``.partial`` folder without metadata, which :func:`~gnnkit.stores.ondisk.open_store` refuses.
So no conversion, however interrupted, leaves a folder that opens as a complete store.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from typing import Any, Dict, Optional, Sequence

import torch
from torch import Tensor

from gnnkit.errors import GnnkitError
from gnnkit.fileio import atomic_write_json

from .format import FORMAT, META_FILE, VERSION, checksum_text, dtype_name, new_hasher


def _raw_bytes(chunk: Tensor) -> memoryview:
    """The bytes of ``chunk`` (contiguous, on the CPU) as the file holds them."""
    chunk = chunk.detach().cpu().contiguous()
    if chunk.dtype in (torch.bfloat16, torch.float16):
        chunk = chunk.view(torch.int16)  # numpy has no bfloat16: write the same bytes as int16
    return memoryview(chunk.numpy()).cast("B")


class ArrayWriter:
    """One array of the store, appended to in chunks of rows: ``dtype``, rows of ``row_shape``."""

    def __init__(self, folder: str, name: str, dtype: torch.dtype, row_shape: Sequence[int], role: str):
        self.name, self.dtype, self.row_shape, self.role = name, dtype, tuple(int(s) for s in row_shape), role
        self.file = f"{name}.bin"
        self._f = open(os.path.join(folder, self.file), "wb")
        self._hasher = new_hasher()
        self.rows = 0

    def append(self, chunk: Tensor) -> None:
        """Append ``chunk`` ``[n, *row_shape]`` (cast to the array's dtype)."""
        if tuple(chunk.shape[1:]) != self.row_shape:
            raise GnnkitError(f"array {self.name!r}: chunk of shape {tuple(chunk.shape)}, rows must be {self.row_shape}")
        data = _raw_bytes(chunk.to(self.dtype))
        self._f.write(data)
        self._hasher.update(data)
        self.rows += int(chunk.shape[0])

    def close(self) -> Dict[str, Any]:
        """Flush to disk and return the array's metadata entry."""
        if not self._f.closed:
            self._f.flush()
            os.fsync(self._f.fileno())
            self._f.close()
        return {"file": self.file, "dtype": dtype_name(self.dtype), "shape": [self.rows, *self.row_shape],
                "role": self.role, "checksum": checksum_text(self._hasher)}


class StoreWriter:
    """Write a store to ``path`` (see the module docstring); use as a context manager.

    ``overwrite=False`` refuses an existing ``path``; ``True`` replaces it when the new store is
    complete (the old one is moved aside first, then removed).
    """

    def __init__(self, path, overwrite: bool = False):
        self.path = os.path.abspath(os.fspath(path))
        if os.path.exists(self.path) and not overwrite:
            raise GnnkitError(f"{path} exists; pass overwrite=True (gnnkit convert --overwrite) to replace it")
        parent = os.path.dirname(self.path)
        try:
            os.makedirs(parent, exist_ok=True)
            self.tmp = tempfile.mkdtemp(prefix=f".{os.path.basename(self.path)}.partial-", dir=parent)
        except OSError as exc:
            raise GnnkitError(f"cannot write {path}: {exc.strerror or exc}") from None
        self._arrays: Dict[str, ArrayWriter] = {}
        self._done = False

    def __enter__(self) -> "StoreWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if not self._done:
            self.abort()

    def abort(self) -> None:
        """Drop everything written so far (the temporary folder)."""
        for a in self._arrays.values():
            a._f.close()
        shutil.rmtree(self.tmp, ignore_errors=True)
        self._done = True

    def array(self, name: str, dtype: torch.dtype, row_shape: Sequence[int] = (), role: str = "node") -> ArrayWriter:
        """A new array ``name`` to append rows to (``role``: ``"node"`` or ``"graph"``)."""
        if name in self._arrays or not name.replace("_", "").isalnum():
            raise GnnkitError(f"array name {name!r} is taken or not a plain name")
        self._arrays[name] = ArrayWriter(self.tmp, name, dtype, row_shape, role)
        return self._arrays[name]

    def write(self, name: str, tensor: Tensor, dtype: Optional[torch.dtype] = None, role: str = "node",
              rows_per_chunk: int = 1 << 20) -> None:
        """Write all of ``tensor`` ``[n, ...]`` as array ``name`` (cast to ``dtype``), in chunks of rows."""
        out = self.array(name, dtype or tensor.dtype, tensor.shape[1:], role)
        for begin in range(0, max(int(tensor.shape[0]), 1), rows_per_chunk):
            out.append(tensor[begin:begin + rows_per_chunk])

    def scratch(self, name: str, dtype: torch.dtype, numel: int) -> Tensor:
        """A zero-filled writable ``[numel]`` tensor mapped on a temporary file of the folder (for
        out-of-memory passes; not part of the store: removed at :meth:`commit`)."""
        file = os.path.join(self.tmp, f"scratch-{name}.tmp")
        with open(file, "wb") as f:
            f.truncate(numel * torch.empty((), dtype=dtype).element_size())
        if numel == 0:
            return torch.empty(0, dtype=dtype)
        return torch.from_file(file, shared=True, size=numel, dtype=dtype)

    def commit(self, *, name: str, num_nodes: int, num_edges: int, is_symmetric: bool,
               meta: Optional[Dict[str, Any]] = None, fingerprint: Optional[str] = None,
               attributes: Optional[Dict[str, Any]] = None, extra: Optional[Dict[str, Any]] = None,
               csr_by_source: Optional[bool] = None) -> str:
        """Close the arrays, write the metadata, move the folder to its destination; returns the path.
        ``fingerprint`` (None: computed, :func:`~gnnkit.stores.ondisk.fingerprint.store_fingerprint`).
        ``meta``: the feature store's graph-level facts; ``attributes``: the source graph's own plain
        attributes (restored as they were by :func:`~gnnkit.stores.ondisk.to_data`); ``extra``: what a
        derived format adds, kept under ``"extra"`` (a partition's part: its index, the part count,
        the whole graph's node count...); ``csr_by_source``: whether the CSR was built from the
        reversed edges (default ``is_symmetric``; see :func:`~gnnkit.stores.ondisk.csr.write_csr_of`)."""
        arrays = {key: a.close() for key, a in self._arrays.items()}
        for file in os.listdir(self.tmp):
            if file.startswith("scratch-"):
                os.unlink(os.path.join(self.tmp, file))
        record = {"format": FORMAT, "version": VERSION, "name": name, "fingerprint": fingerprint,
                  "num_nodes": int(num_nodes), "num_edges": int(num_edges), "is_symmetric": bool(is_symmetric),
                  "csr_by_source": bool(is_symmetric if csr_by_source is None else csr_by_source),
                  "meta": dict(meta or {}), "attributes": dict(attributes or {}), "extra": dict(extra or {}),
                  "arrays": arrays}
        atomic_write_json(os.path.join(self.tmp, META_FILE), record)
        if fingerprint is None:  # the dataset fingerprint, read off the written arrays (sampled)
            from .files import StoreFiles
            from .fingerprint import store_fingerprint

            record["fingerprint"] = store_fingerprint(StoreFiles(self.tmp))
            atomic_write_json(os.path.join(self.tmp, META_FILE), record)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(self.tmp, 0o777 & ~umask)  # mkdtemp's folder is private (0700); a store is not
        old = None
        if os.path.exists(self.path):
            old = tempfile.mkdtemp(prefix=f".{os.path.basename(self.path)}.old-", dir=os.path.dirname(self.path))
            os.replace(self.path, os.path.join(old, "store"))
        os.replace(self.tmp, self.path)
        self._done = True
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        return self.path
