"""Graphs stored as ``.npz`` CSR matrices, in the two common layouts.

- gnn-benchmark (shchur/gnn-benchmark): ``adj_data``, ``adj_indices``, ``adj_indptr``,
  ``adj_shape``; features ``attr_data``/``attr_indices``/``attr_indptr``/``attr_shape`` or a dense
  ``attr_matrix``; ``labels``; optional ``class_names``.
- dotted: ``adj_matrix.data``, ``adj_matrix.indices``, ``adj_matrix.indptr``, ``adj_matrix.shape``;
  features ``attr_matrix.{data,indices,indptr,shape}`` or a dense ``attr_matrix``; ``labels``.

The adjacency ``A`` ``[N, N]`` has ``A[i, j] != 0`` for an edge ``i -> j`` (``edge_index[:, e] =
(i, j)``); by default both directions are kept (``undirected=True``), so the gnn-benchmark Cora's
5429 entries become 10556 directed edges. Features become dense float32 ``[N, F]``. Labels < 0
mark unlabeled nodes. These files carry no split: a seeded one is drawn (Planetoid-style by
default, see :func:`gnnkit.data.split.make_split`).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import scipy.sparse as sp
from torch_geometric.data import Data

from gnnkit.errors import GnnkitError

from .graph import make_graph

_PREFIXES = {"adj": ("adj_", "adj_matrix."), "attr": ("attr_", "attr_matrix.")}


def _csr(z, kind: str, path: Path):
    """The CSR matrix ``kind`` ("adj" or "attr") in either layout, a dense ``attr_matrix``, or None."""
    for prefix in _PREFIXES[kind]:
        keys = [prefix + part for part in ("data", "indices", "indptr", "shape")]
        if all(k in z for k in keys):
            data, indices, indptr, shape = (z[k] for k in keys)
            return sp.csr_matrix((data, indices, indptr), shape=tuple(int(s) for s in shape))
        if any(k in z for k in keys):
            missing = [k for k in keys if k not in z]
            raise GnnkitError(f"{path}: incomplete CSR matrix, missing keys {', '.join(missing)}")
    dense = f"{kind}_matrix"
    if dense in z and z[dense].dtype != object and z[dense].ndim == 2:
        return z[dense]
    return None


def load_npz(path, undirected: bool = True, split: str = "planetoid", **split_options) -> Data:
    """Load the graph in ``path``; ``split``/``split_options`` as in :func:`~gnnkit.data.split.make_split`."""
    path = Path(path)
    if not path.is_file():
        raise GnnkitError(f"npz file not found: {path}")
    try:
        z = np.load(path, allow_pickle=True)
    except (OSError, ValueError) as exc:
        raise GnnkitError(f"{path}: not a readable .npz file ({exc})") from None
    with z:
        adj = _csr(z, "adj", path)
        if adj is None:
            raise GnnkitError(f"{path}: no adjacency matrix; expected adj_data/adj_indices/adj_indptr/adj_shape "
                              f"or adj_matrix.data/.indices/.indptr/.shape (keys present: {', '.join(z.files)})")
        if adj.shape[0] != adj.shape[1]:
            raise GnnkitError(f"{path}: adjacency matrix must be square, got shape {adj.shape}")
        attr = _csr(z, "attr", path)
        if "labels" not in z:
            labels = None
        elif z["labels"].ndim != 1:
            raise GnnkitError(f"{path}: labels must be one class id per node, got shape {z['labels'].shape}")
        else:
            labels = z["labels"].astype(np.int64)
        class_names = z["class_names"] if "class_names" in z else None
    coo = sp.coo_matrix(adj)
    x = attr.toarray() if sp.issparse(attr) else attr
    num_classes = None
    if labels is not None and class_names is not None and class_names.ndim == 1:
        num_classes = max(len(class_names), int(labels.max()) + 1)
    return make_graph(np.stack([coo.row, coo.col]), adj.shape[0], x, labels, num_classes, name=path.stem,
                      undirected=undirected, split=split, **split_options)
