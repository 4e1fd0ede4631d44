"""Writing a graph into a store: :func:`write_data` (a PyG ``Data``), :func:`copy_store` (a store,
e.g. to change the feature dtype), and :func:`progress_bars` (the stage bars of a conversion).

The node arrays are every node-level tensor of the graph (those :func:`gnnkit.stores.from_data`'s
feature store answers: ``x``, ``y``, the masks, ...), in their own dtype except ``x``, written in
``feature_dtype`` (``"float32"``, ``"float16"`` or ``"bfloat16"``). The structure is the in-memory
store's CSR (:func:`~gnnkit.stores.ondisk.csr.write_csr_of`), read reversed exactly when the
in-memory store reads it so (a symmetric structure with symmetric or no weights), with the edge
weights (:func:`gnnkit.stores.memory.edge_weights_of`) in CSR order. The metadata keeps the graph-level
facts (``num_classes``, ``evaluator_name``, ``name``, ``is_symmetric``, ``multilabel``), the
graph's own plain attributes and the dataset's fingerprint (:func:`gnnkit.data.fingerprint`'s,
read off the written arrays).
"""
from __future__ import annotations

import warnings
from typing import Any, Callable, Dict, Optional

import torch
from torch import Tensor

from gnnkit.errors import GnnkitError
from gnnkit.stores.memory import META_KEYS, edge_weights_of, node_tensors, weights_symmetric

from .csr import write_csr_of
from .files import StoreFiles
from .format import DTYPES, FEATURE_DTYPES
from .writer import StoreWriter

ROWS_PER_CHUNK = 1 << 18


def feature_dtype_of(name: str) -> torch.dtype:
    if name not in FEATURE_DTYPES:
        raise GnnkitError(f"feature dtype {name!r}; choose one of {', '.join(FEATURE_DTYPES)}")
    return DTYPES[name]


def _plain(value: Any) -> Any:
    """A JSON-ready copy of a graph-level fact (a one-element tensor becomes its number)."""
    if isinstance(value, Tensor):
        return value.item() if value.numel() == 1 else value.tolist()
    return value if isinstance(value, (int, float, str, bool, type(None))) else str(value)


def graph_meta(data) -> Dict[str, Any]:
    """The graph-level facts of ``data`` the feature store's ``meta`` reports."""
    meta = {k: _plain(getattr(data, k)) for k in (*META_KEYS, "split_info") if getattr(data, k, None) is not None}
    meta["is_symmetric"] = bool(getattr(data, "is_symmetric", False))
    return meta


def plain_attributes(data) -> Dict[str, Any]:
    """The graph's non-tensor attributes that JSON holds as they are (numbers, strings, booleans)."""
    return {k: v for k, v in data.items() if isinstance(v, (bool, int, float, str))}


def write_data(data, path, feature_dtype: str = "float32", overwrite: bool = False) -> str:
    """Write the validated graph ``data`` as a store at ``path`` (see the module docstring)."""
    fdt = feature_dtype_of(feature_dtype)
    dropped = sorted(k for k, v in data.items() if isinstance(v, Tensor) and k.startswith("edge_")
                     and k not in ("edge_index", "edge_weight"))
    if dropped:
        warnings.warn(f"the store keeps edge_index and edge_weight only; {', '.join(dropped)} not stored", stacklevel=2)
    n = int(data.num_nodes)
    symmetric = bool(getattr(data, "is_symmetric", False))
    weight = edge_weights_of(data)
    by_source = symmetric and (weight is None or weights_symmetric(data.edge_index, weight, n))
    with StoreWriter(path, overwrite=overwrite) as writer:
        e = write_csr_of(writer, data.edge_index, n, by_source, weight)
        for name, t in sorted(node_tensors(data).items()):
            dtype = fdt if name == "x" and t.is_floating_point() else t.dtype
            writer.write(name, t.cpu(), dtype, rows_per_chunk=ROWS_PER_CHUNK)
        return writer.commit(name=str(getattr(data, "name", "graph")), num_nodes=n, num_edges=e,
                             is_symmetric=symmetric, meta=graph_meta(data), attributes=plain_attributes(data),
                             csr_by_source=by_source)


def copy_store(source, path, feature_dtype: Optional[str] = None, overwrite: bool = False,
               verify: bool = True) -> str:
    """Copy the store at ``source`` to ``path`` chunk by chunk (``x`` cast to ``feature_dtype`` when
    given), after checking ``source``'s checksums (``verify``)."""
    files = StoreFiles(source, verify=verify)
    with StoreWriter(path, overwrite=overwrite) as writer:
        for name, spec in sorted(files.arrays.items()):
            t = files.tensor(name)
            dtype = files.dtype(name)
            if name == "x" and feature_dtype is not None and dtype.is_floating_point:
                dtype = feature_dtype_of(feature_dtype)
            writer.write(name, t, dtype, role=spec.get("role", "node"), rows_per_chunk=ROWS_PER_CHUNK)
        m = files.meta
        return writer.commit(name=m.get("name", "graph"), num_nodes=m["num_nodes"], num_edges=m["num_edges"],
                             is_symmetric=m["is_symmetric"], meta=m.get("meta"), fingerprint=m.get("fingerprint"),
                             attributes=m.get("attributes"), extra=m.get("extra"), csr_by_source=m["csr_by_source"])


def progress_bars(enabled: bool) -> Callable[[str, int], Callable[[int], None]]:
    """``stage(name, total) -> tick(n)``: one tqdm bar per stage of a conversion, each closing the
    previous one (``stage(None, 0)`` closes the last); no-ops when off."""
    if not enabled:
        return lambda name, total: (lambda k: None)
    from tqdm.auto import tqdm

    bars = []

    def stage(name: str, total: int) -> Callable[[int], None]:
        for bar in bars:
            bar.close()
        if name is None:
            return lambda k: None
        bars[:] = [tqdm(total=total or None, desc=name, unit_scale=True, dynamic_ncols=True)]
        return bars[0].update

    return stage
