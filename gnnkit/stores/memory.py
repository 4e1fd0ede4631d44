"""The in-memory backend: a validated PyG ``Data`` seen through the two store interfaces.

``from_data(data)`` wraps the graph without copying its tensors (they stay on ``data``'s device):
the structure's CSR by destination is built once, on first use, and each normalized adjacency once
per normalization.
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple

import torch
from torch import Tensor

from gnnkit.errors import GnnkitError
from gnnkit.sparse import Adjacency

from .features import FeatureStore
from .graph import GraphStore

META_KEYS = ("num_classes", "evaluator_name", "is_symmetric", "name", "multilabel")


def in_neighbor_csr(edge_index: Tensor, num_nodes: int, symmetric: bool = False) -> Tuple[Tensor, Tensor]:
    """``(indptr [N + 1], indices [E])`` int64: row ``i`` lists the sources ``j`` of edges ``j -> i``.

    Within a row the edges keep their order in ``edge_index`` (a stable sort by target, skipped when
    the targets already come sorted). A symmetric graph is read reversed (``j`` lists its targets,
    which are its sources too), which skips the sort for the usual source-sorted ``edge_index``.
    """
    dst, src = (edge_index[0], edge_index[1]) if symmetric else (edge_index[1], edge_index[0])
    if dst.numel() > 1 and not bool((dst[1:] >= dst[:-1]).all()):
        dst, perm = torch.sort(dst, stable=True)
        src = src[perm]
    indptr = torch.zeros(num_nodes + 1, dtype=torch.long, device=dst.device)
    torch.cumsum(torch.bincount(dst, minlength=num_nodes), 0, out=indptr[1:])
    return indptr, src.long()


class InMemoryGraphStore(GraphStore):
    """The structure of ``edge_index`` ``[2, E]`` on ``num_nodes`` nodes, held in memory."""

    def __init__(self, edge_index: Tensor, num_nodes: int, is_symmetric: bool = False):
        self._edge_index, self._num_nodes, self._symmetric = edge_index, int(num_nodes), bool(is_symmetric)
        self._csr: Optional[Tuple[Tensor, Tensor]] = None
        self._adj: Dict[Tuple[str, float], Adjacency] = {}

    @property
    def num_nodes(self) -> int:
        return self._num_nodes

    @property
    def num_edges(self) -> int:
        return int(self._edge_index.shape[1])

    @property
    def is_symmetric(self) -> bool:
        return self._symmetric

    @property
    def device(self) -> torch.device:
        return self._edge_index.device

    def csr(self) -> Tuple[Tensor, Tensor]:
        if self._csr is None:
            self._csr = in_neighbor_csr(self._edge_index, self._num_nodes, self._symmetric)
        return self._csr

    def edge_index(self) -> Tensor:
        return self._edge_index

    def adjacency(self, norm: str, diag_lambda: float = 0.0) -> Adjacency:
        lam = float(diag_lambda or 0.0) if norm == "diag" else 0.0
        key = (norm, lam)
        if key not in self._adj:
            self._adj[key] = Adjacency.from_edge_index(self._edge_index, self._num_nodes, norm=norm, diag_lambda=lam,
                                                       symmetric=self._symmetric)
        return self._adj[key]


class InMemoryFeatureStore(FeatureStore):
    """Node tensors of a graph held in memory, keyed by name; ``get`` indexes them."""

    def __init__(self, tensors: Dict[str, Tensor], meta: Optional[Dict[str, Any]] = None):
        sizes = {t.shape[0] for t in tensors.values()}
        if len(sizes) > 1:
            raise GnnkitError(f"node tensors disagree on the node count: {sorted(sizes)}")
        self._t, self._meta = dict(tensors), dict(meta or {})

    def names(self) -> List[str]:
        return sorted(self._t)

    def shape(self, name: str) -> Tuple[int, ...]:
        self.check(name)
        return tuple(self._t[name].shape)

    def dtype(self, name: str) -> torch.dtype:
        self.check(name)
        return self._t[name].dtype

    def get(self, name: str, ids: Optional[Tensor] = None) -> Tensor:
        t = self._t.get(name)
        if t is None:
            self.check(name)
        return t if ids is None else t[ids]

    @property
    def meta(self) -> Dict[str, Any]:
        return self._meta


def node_tensors(data) -> Dict[str, Tensor]:
    """The node-level tensors of ``data``: every tensor attribute with ``N`` rows except the edges."""
    n = data.num_nodes
    out = {}
    for key in data.keys():
        value = data[key]
        if isinstance(value, Tensor) and value.dim() >= 1 and value.shape[0] == n and not key.startswith("edge_"):
            out[key] = value
    return out


def from_data(data) -> Tuple[InMemoryGraphStore, InMemoryFeatureStore]:
    """``(graph, features)`` over a validated PyG ``Data`` (no copies; the tensors stay on its device)."""
    if getattr(data, "edge_index", None) is None or data.num_nodes is None:
        raise GnnkitError("a graph store needs data.edge_index and data.num_nodes")
    symmetric = bool(getattr(data, "is_symmetric", False))
    graph = InMemoryGraphStore(data.edge_index, int(data.num_nodes), symmetric)
    meta = {k: getattr(data, k) for k in META_KEYS if getattr(data, k, None) is not None}
    meta["is_symmetric"] = symmetric
    return graph, InMemoryFeatureStore(node_tensors(data), meta)
