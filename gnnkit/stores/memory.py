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


def csr_order(edge_index: Tensor, symmetric: bool = False) -> Optional[Tensor]:
    """The permutation ``[E]`` that puts the edges in :func:`in_neighbor_csr`'s order (CSR entry ``p``
    is edge ``perm[p]``), or ``None`` when they already are (targets, or with ``symmetric`` sources,
    sorted)."""
    dst = edge_index[0] if symmetric else edge_index[1]
    if dst.numel() > 1 and not bool((dst[1:] >= dst[:-1]).all()):
        return torch.sort(dst, stable=True).indices
    return None


def in_neighbor_csr(edge_index: Tensor, num_nodes: int, symmetric: bool = False) -> Tuple[Tensor, Tensor]:
    """``(indptr [N + 1], indices [E])`` int64: row ``i`` lists the sources ``j`` of edges ``j -> i``.

    Within a row the edges keep their order in ``edge_index`` (a stable sort by target, skipped when
    the targets already come sorted: :func:`csr_order`). A symmetric graph is read reversed (``j``
    lists its targets, which are its sources too), which skips the sort for the usual source-sorted
    ``edge_index``.
    """
    dst, src = (edge_index[0], edge_index[1]) if symmetric else (edge_index[1], edge_index[0])
    perm = csr_order(edge_index, symmetric)
    if perm is not None:
        dst, src = dst[perm], src[perm]
    indptr = torch.zeros(num_nodes + 1, dtype=torch.long, device=dst.device)
    torch.cumsum(torch.bincount(dst, minlength=num_nodes), 0, out=indptr[1:])
    return indptr, src.long()


def weights_symmetric(edge_index: Tensor, edge_weight: Tensor, num_nodes: int) -> bool:
    """Whether the multiset of ``(j, i, a)`` equals that of ``(i, j, a)``: ``A = A^T`` weights included.
    Two sorts of the ``E`` edges by ``(key, weight)``, one by ``j·N + i``, one by ``i·N + j``."""
    def ordered(src: Tensor, dst: Tensor) -> Tuple[Tensor, Tensor]:
        by_w = torch.sort(edge_weight, stable=True).indices
        key = src[by_w] * num_nodes + dst[by_w]
        key, perm = torch.sort(key, stable=True)
        return key, edge_weight[by_w][perm]

    k1, w1 = ordered(edge_index[0].long(), edge_index[1].long())
    k2, w2 = ordered(edge_index[1].long(), edge_index[0].long())
    return bool(torch.equal(k1, k2) and torch.equal(w1, w2))


class InMemoryGraphStore(GraphStore):
    """The structure of ``edge_index`` ``[2, E]`` on ``num_nodes`` nodes, held in memory, with the
    optional weights ``edge_weight`` ``[E]`` (``a_ij`` of the edge ``j -> i``)."""

    def __init__(self, edge_index: Tensor, num_nodes: int, is_symmetric: bool = False,
                 edge_weight: Optional[Tensor] = None):
        self._edge_index, self._num_nodes, self._symmetric = edge_index, int(num_nodes), bool(is_symmetric)
        self._weight = edge_weight
        self._sym_adj = self._symmetric and (edge_weight is None or weights_symmetric(edge_index, edge_weight,
                                                                                   self._num_nodes))
        self._csr: Optional[Tuple[Tensor, Tensor]] = None
        self._csr_w: Optional[Tensor] = None
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
    def symmetric_adjacency(self) -> bool:
        return self._sym_adj

    @property
    def csr_by_source(self) -> bool:
        return self._sym_adj  # a symmetric structure with asymmetric weights is read by target

    @property
    def device(self) -> torch.device:
        return self._edge_index.device

    def csr(self) -> Tuple[Tensor, Tensor]:
        if self._csr is None:
            self._csr = in_neighbor_csr(self._edge_index, self._num_nodes, self._sym_adj)
        return self._csr

    def edge_index(self) -> Tensor:
        return self._edge_index

    def edge_weight(self) -> Optional[Tensor]:
        return self._weight

    def csr_weight(self) -> Optional[Tensor]:
        if self._weight is not None and self._csr_w is None:
            self._csr_w = super().csr_weight()
        return self._csr_w

    def adjacency(self, norm: str, diag_lambda: float = 0.0) -> Adjacency:
        lam = float(diag_lambda or 0.0) if norm == "diag" else 0.0
        key = (norm, lam)
        if key not in self._adj:
            self._adj[key] = Adjacency.from_edge_index(self._edge_index, self._num_nodes, norm=norm, diag_lambda=lam,
                                                       edge_weight=self._weight, symmetric=self._sym_adj)
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

    def with_dtype(self, name: str, dtype: torch.dtype) -> FeatureStore:
        """A store sharing this one's tensors except ``name``, converted once to ``dtype`` (a half
        type halves every later gather of it); ``self`` when ``name`` already is ``dtype``."""
        self.check(name)
        if self._t[name].dtype == dtype:
            return self
        return InMemoryFeatureStore({**self._t, name: self._t[name].to(dtype)}, self._meta)


def node_tensors(data) -> Dict[str, Tensor]:
    """The node-level tensors of ``data``: every tensor attribute with ``N`` rows except the edges."""
    n = data.num_nodes
    out = {}
    for key in data.keys():
        value = data[key]
        if isinstance(value, Tensor) and value.dim() >= 1 and value.shape[0] == n and not key.startswith("edge_"):
            out[key] = value
    return out


def edge_weights_of(data) -> Optional[Tensor]:
    """``data.edge_weight`` ``[E]`` (or ``[E, 1]``) as a float ``[E]`` tensor, ``None`` when absent;
    a :class:`GnnkitError` for a wrong shape or a non-finite or negative weight."""
    w = getattr(data, "edge_weight", None)
    if w is None:
        return None
    e = int(data.edge_index.shape[1])
    if not isinstance(w, Tensor) or tuple(w.shape) not in ((e,), (e, 1)):
        shape = tuple(w.shape) if isinstance(w, Tensor) else type(w).__name__
        raise GnnkitError(f"edge_weight must have shape [E] = [{e}], got {shape}")
    w = w.view(-1)
    if not w.is_floating_point():
        w = w.to(torch.float32)
    if not bool(torch.isfinite(w).all()) or bool((w < 0).any()):
        raise GnnkitError("edge_weight must be finite and non-negative (the normalizations take square roots "
                          "and reciprocals of weighted degrees)")
    return w


def from_data(data) -> Tuple[InMemoryGraphStore, InMemoryFeatureStore]:
    """``(graph, features)`` over a validated PyG ``Data`` (no copies; the tensors stay on its device)."""
    if getattr(data, "edge_index", None) is None or data.num_nodes is None:
        raise GnnkitError("a graph store needs data.edge_index and data.num_nodes")
    symmetric = bool(getattr(data, "is_symmetric", False))
    graph = InMemoryGraphStore(data.edge_index, int(data.num_nodes), symmetric, edge_weights_of(data))
    meta = {k: getattr(data, k) for k in META_KEYS if getattr(data, k, None) is not None}
    meta["is_symmetric"] = symmetric
    return graph, InMemoryFeatureStore(node_tensors(data), meta)
