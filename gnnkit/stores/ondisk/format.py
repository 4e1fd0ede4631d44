"""The on-disk store format: a folder of plain binary arrays and one JSON metadata file.

Layout of a store folder ``DIR``::

    DIR/gnnkit-store.json     metadata (below); written last, so a folder without it is no store
    DIR/indptr.bin            int64 [N + 1]    CSR by destination: row i = sources of the edges j -> i
    DIR/indices.bin           int32 [E]        (int64 when N >= 2^31) the sources, row after row
    DIR/edge_order.bin        int64 [E]        optional: edge e of the source graph is CSR entry
                                               edge_order[e] (absent when the CSR order is the graph's)
    DIR/edge_weight.bin       float [E]        optional: edge weights in CSR order
    DIR/x.bin                 float32/float16/bfloat16 [N, F]   node features
    DIR/y.bin                 int64 [N] or [N, T]               labels (-1 = unlabeled)
    DIR/train_mask.bin ...    bool [N]                          split masks (+ any other node tensor)

Every array is raw, little-endian, C-order, no header, so ``torch.from_file`` (or ``numpy.memmap``)
maps it as it is. The metadata file is::

    {"format": "gnnkit-store", "version": 1, "name": str, "fingerprint": str | null,
     "num_nodes": N, "num_edges": E, "is_symmetric": bool, "meta": {num_classes, ...},
     "csr_by_source": bool (the CSR holds the reversed edges: row j = the targets of j; set for a
                            symmetric structure with symmetric or no weights, as the in-memory store),
     "attributes": {the source graph's plain attributes}, "extra": {what a derived format adds},
     "arrays": {name: {"file": "x.bin", "dtype": "float16", "shape": [N, F], "role": "node" | "graph",
                       "checksum": "blake2b-128:<hex>"}}}

A part of a partitioned graph (issue 22) is a store too: ``N`` its rows (owned nodes), ``indices``
holding global source ids (dtype by the whole graph's node count), a node array of the rows' global
ids, and the part's facts under ``"extra"``; the size checks here hold for it unchanged (they
check row counts against ``N`` and ``E``, never id ranges).

``"role": "node"`` arrays are what the feature store answers; ``"graph"`` arrays hold the structure.
:func:`read_metadata` checks the metadata and every array's size against it (cheap: one ``stat``
per file); :func:`verify_checksums` re-reads the arrays and compares their checksums.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
from typing import Any, Dict

import torch

from gnnkit.errors import GnnkitError

META_FILE = "gnnkit-store.json"
FORMAT, VERSION = "gnnkit-store", 1
GRAPH_ARRAYS = ("indptr", "indices", "edge_order", "edge_weight")
DTYPES: Dict[str, torch.dtype] = {
    "float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16, "float64": torch.float64,
    "int64": torch.int64, "int32": torch.int32, "int16": torch.int16, "int8": torch.int8, "uint8": torch.uint8,
    "bool": torch.bool}
FEATURE_DTYPES = ("float32", "float16", "bfloat16")
_READ_CHUNK = 1 << 24  # bytes hashed at a time


def dtype_name(dtype: torch.dtype) -> str:
    """``torch.float16`` -> ``"float16"``; a GnnkitError for a dtype the format does not hold."""
    for name, dt in DTYPES.items():
        if dt == dtype:
            return name
    raise GnnkitError(f"the store format cannot hold dtype {dtype}; it holds {', '.join(DTYPES)}")


def itemsize(dtype: torch.dtype) -> int:
    return torch.empty((), dtype=dtype).element_size()


def new_hasher():
    """The per-array checksum: BLAKE2b with a 128-bit digest over the file's bytes."""
    return hashlib.blake2b(digest_size=16)


def checksum_text(hasher) -> str:
    return "blake2b-128:" + hasher.hexdigest()


def is_store(path) -> bool:
    """Whether ``path`` is a folder holding a store's metadata file (complete stores only)."""
    return os.path.isdir(path) and os.path.isfile(os.path.join(path, META_FILE))


def _bad(path, message: str) -> GnnkitError:
    return GnnkitError(f"store {path}: {message}")


def _load_json(path) -> Dict[str, Any]:
    file = os.path.join(path, META_FILE)
    if not os.path.isdir(path):
        raise GnnkitError(f"store {path}: no such folder")
    if not os.path.isfile(file):
        raise _bad(path, f"not a complete gnnkit store (no {META_FILE}; an interrupted conversion leaves none)")
    try:
        with open(file, "rb") as f:
            meta = json.loads(f.read().decode("utf-8"))
    except (OSError, ValueError) as exc:
        raise _bad(path, f"{META_FILE} cannot be read: {exc}") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise _bad(path, f"{META_FILE} is not gnnkit-store metadata")
    if meta.get("version") != VERSION:
        raise _bad(path, f"store format version {meta.get('version')!r}; this gnnkit reads version {VERSION}")
    return meta


def _check_array(path, name: str, spec: Any, n: int, e: int) -> None:
    """Raise when array ``name``'s spec is malformed, its shape disagrees with ``N``/``E`` or its
    file's size with the spec."""
    if not isinstance(spec, dict) or spec.get("dtype") not in DTYPES or not isinstance(spec.get("shape"), list):
        raise _bad(path, f"array {name!r}: malformed entry in {META_FILE}")
    shape = spec["shape"]
    if not shape or not all(isinstance(s, int) and s >= 0 for s in shape):
        raise _bad(path, f"array {name!r}: bad shape {shape}")
    want = {"indptr": n + 1, "indices": e, "edge_order": e, "edge_weight": e}.get(name, n)
    if shape[0] != want:
        raise _bad(path, f"array {name!r} has {shape[0]} rows, expected {want}")
    file = os.path.join(path, os.path.basename(str(spec.get("file", ""))))
    expected = math.prod(shape) * itemsize(DTYPES[spec["dtype"]])
    try:
        size = os.path.getsize(file)
    except OSError:
        raise _bad(path, f"array {name!r}: file {os.path.basename(file)} is missing") from None
    if size != expected:
        what = "truncated" if size < expected else "too long"
        raise _bad(path, f"array {name!r} is {what}: {size} bytes, expected {expected}")


def read_metadata(path) -> Dict[str, Any]:
    """The metadata of the store at ``path``, after checking it and every array's file size;
    a :class:`GnnkitError` naming the array otherwise."""
    meta = _load_json(path)
    n, e, arrays = meta.get("num_nodes"), meta.get("num_edges"), meta.get("arrays")
    counts_ok = all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in (n, e))
    if not counts_ok or not isinstance(arrays, dict) or not isinstance(meta.get("is_symmetric"), bool):
        raise _bad(path, f"{META_FILE} needs num_nodes and num_edges (integers >= 0), is_symmetric and arrays")
    if not isinstance(meta.setdefault("csr_by_source", meta["is_symmetric"]), bool):
        raise _bad(path, f"{META_FILE}: 'csr_by_source' must be true or false")
    for key in ("meta", "attributes", "extra"):
        if not isinstance(meta.setdefault(key, {}), dict):
            raise _bad(path, f"{META_FILE}: {key!r} must be an object")
    for name in ("indptr", "indices"):
        if name not in arrays:
            raise _bad(path, f"array {name!r} is missing from {META_FILE}")
    for name, spec in arrays.items():
        _check_array(path, name, spec, n, e)
    return meta


def array_file(path, spec: Dict[str, Any]) -> str:
    return os.path.join(path, os.path.basename(spec["file"]))


def file_checksum(file: str) -> str:
    hasher = new_hasher()
    with open(file, "rb") as f:
        for block in iter(lambda: f.read(_READ_CHUNK), b""):
            hasher.update(block)
    return checksum_text(hasher)


def verify_checksums(path, meta: Dict[str, Any]) -> None:
    """Re-read every array of the store and compare its checksum with the metadata's."""
    for name, spec in meta["arrays"].items():
        if file_checksum(array_file(path, spec)) != spec.get("checksum"):
            raise _bad(path, f"array {name!r} is corrupted: its checksum differs from {META_FILE}")
