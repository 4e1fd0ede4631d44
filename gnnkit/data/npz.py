"""Graphs stored as ``.npz`` CSR matrices, in the two common layouts.

- gnn-benchmark (shchur/gnn-benchmark): ``adj_data``, ``adj_indices``, ``adj_indptr``,
  ``adj_shape``; features ``attr_data``/``attr_indices``/``attr_indptr``/``attr_shape`` or a dense
  ``attr_matrix``; ``labels``; optional ``class_names``.
- dotted: ``adj_matrix.data``, ``adj_matrix.indices``, ``adj_matrix.indptr``, ``adj_matrix.shape``;
  features ``attr_matrix.{data,indices,indptr,shape}`` or a dense ``attr_matrix``; ``labels``.

The adjacency ``A`` ``[N, N]`` has ``A[i, j] != 0`` for an edge ``i -> j`` (``edge_index[:, e] =
(i, j)``); by default both directions are kept (``undirected=True``), so the gnn-benchmark Cora's
5429 entries become 10556 directed edges. Features become dense float32 ``[N, F]``. Labels < 0
mark unlabeled nodes. These files carry no split: a seeded one is drawn (Planetoid-style when the
graph has enough labeled nodes, else random 60/20/20, see :func:`gnnkit.data.split.make_split`).

Files are read by :func:`gnnkit.data.npz_reader.read_npz` (no pickle runs; object members go
through the restricted unpickler), and every CSR part is checked before scipy sees it. A 3-d
``attr_matrix``, float labels that are not whole numbers and labels outside ``[-1, N)`` are
refused, never reinterpreted.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import scipy.sparse as sp
from torch_geometric.data import Data

from gnnkit.errors import GnnkitError

from .graph import labels_as_long, make_graph
from .limits import check_allocation, check_nodes
from .npz_reader import read_npz
from .validate import check_csr, sparse_to_csr

_PREFIXES = {"adj": ("adj_", "adj_matrix."), "attr": ("attr_", "attr_matrix.")}


def _stored_matrix(z, key: str, path: Path):
    """A whole sparse matrix pickled as a 0-d object array (older files), or None."""
    value = z.get(key)
    if value is None or value.dtype != object:
        return None
    item = value.item() if value.shape == () else None
    if not sp.issparse(item):
        raise GnnkitError(f"{path}: {key} is an object array that does not hold a sparse matrix")
    shape = np.asarray(getattr(item, "__dict__", {}).get("_shape", ()))
    if shape.shape == (2,) and shape.dtype.kind in "iu":
        check_nodes(float(shape[0]), f"{path}: {key}")
    csr = sparse_to_csr(item, f"{path}: {key}")
    return csr.indptr, csr.indices, csr.data, np.asarray(csr.shape, dtype=np.int64)


def _csr(z, kind: str, path: Path):
    """The CSR matrix ``kind`` ("adj" or "attr") in either layout, a dense ``attr_matrix``, or None;
    its parts are checked (:func:`~gnnkit.data.validate.check_csr`) before scipy sees them."""
    parts = None
    for prefix in _PREFIXES[kind]:
        keys = [prefix + part for part in ("indptr", "indices", "data", "shape")]
        if all(k in z for k in keys):
            parts = [z[k] for k in keys]
            break
        if any(k in z for k in keys):
            missing = [k for k in keys if k not in z]
            raise GnnkitError(f"{path}: incomplete CSR matrix, missing keys {', '.join(missing)}")
    dense_key = f"{kind}_matrix"
    if parts is None:
        parts = _stored_matrix(z, dense_key, path)
    if parts is not None:
        indptr, indices, data, shape = parts
        check_csr(indptr, indices, data, shape, f"{path}: {kind} matrix")
        return sp.csr_matrix((data, indices, indptr), shape=tuple(int(s) for s in shape))
    if dense_key not in z:
        return None
    dense = z[dense_key]
    if dense.ndim != 2 or dense.dtype.kind not in "biuf":
        raise GnnkitError(f"{path}: {dense_key} must be a 2-d numeric [num_nodes, num_features] array, "
                          f"got {dense.dtype} of shape {dense.shape}")
    return dense


def _features(attr, n: int, path: Path):
    if attr is None:
        return None
    if attr.shape[0] != n:
        raise GnnkitError(f"{path}: the feature matrix has {attr.shape[0]} rows but the graph has {n} nodes")
    check_allocation(4.0 * attr.shape[0] * attr.shape[1], f"{path}: dense features [{attr.shape[0]} x {attr.shape[1]}]")
    return attr.toarray() if sp.issparse(attr) else attr


def load_npz(path, undirected: bool = True, split: str = "auto", **split_options) -> Data:
    """Load the graph in ``path``; ``split``/``split_options`` as in :func:`~gnnkit.data.split.make_split`
    (``"auto"``: planetoid when the graph has enough labeled nodes, else random 60/20/20)."""
    path = Path(path)
    if not path.is_file():
        raise GnnkitError(f"npz file not found: {path}")
    z = read_npz(path)
    adj = _csr(z, "adj", path)
    if adj is None:
        raise GnnkitError(f"{path}: no adjacency matrix; expected adj_data/adj_indices/adj_indptr/adj_shape "
                          f"or adj_matrix.data/.indices/.indptr/.shape (keys present: {', '.join(z) or 'none'})")
    if adj.shape[0] != adj.shape[1]:
        raise GnnkitError(f"{path}: adjacency matrix must be square, got shape {adj.shape}")
    n = adj.shape[0]
    x = _features(_csr(z, "attr", path), n, path)
    labels = z.get("labels")
    if labels is not None:
        labels = labels_as_long(labels, n, f"{path}: labels").numpy()
    class_names = z.get("class_names")
    coo = sp.coo_matrix(adj)
    num_classes = None
    if labels is not None and class_names is not None and class_names.ndim == 1 and labels.size \
            and len(class_names) <= n:
        num_classes = max(len(class_names), int(labels.max()) + 1)
    return make_graph(np.stack([coo.row, coo.col]), n, x, labels, num_classes, name=path.stem,
                      undirected=undirected, split=split, **split_options)
