"""GraphStore: the structure of one graph, behind one interface for every backend.

The structure is the CSR *by destination*: ``indptr`` int64 ``[N + 1]`` and ``indices`` ``[E]`` (int64 in
memory; a memory-mapped store keeps int32 while node ids fit, so code that gathers from ``csr()``
itself widens with ``.long()``; :meth:`GraphStore.neighbors` and ``sample_neighbors`` return int64),
row ``i`` listing the sources ``j`` of the edges ``j -> i`` (``indices[indptr[i]:indptr[i + 1]]``).
Every other question (degrees, neighbors, uniform neighbor samples, induced subgraphs, the whole
graph's normalized :class:`~gnnkit.sparse.Adjacency`) is answered from it.

Edge weights (optional): :meth:`GraphStore.edge_weight` ``[E]`` in ``edge_index()``'s order gives
``a_ij`` of the edge ``j -> i`` (``None``: every ``a_ij = 1``); :meth:`GraphStore.csr_weight` the same
weights in ``csr()`` order, :meth:`GraphStore.weighted_in_degree` ``δ_i = Σ_j a_ij`` and
:meth:`GraphStore.sample_edges` the sampled sources with their weights. ``adjacency(norm)`` builds the
normalization on top of the weights (PyG's ``gcn_norm``: self-loops of weight 1, ``D`` the weighted
degrees of ``A + I``). The concrete methods here
work on any backend through :meth:`GraphStore.csr`, reading only the rows asked for (so a
memory-mapped backend touches the pages of those rows only); a backend may override them with
something faster (a partitioned store answers rows it does not own by asking their owner).
"""
from __future__ import annotations

import abc
from typing import Optional, Tuple

import torch
from torch import Tensor

from gnnkit.sparse import Adjacency
from gnnkit.sparse.segments import concat_ranges, floyd_offsets
from gnnkit.sparse.subgraph import induced_edges


class GraphStore(abc.ABC):
    """The structure of a graph with ``num_nodes`` nodes and ``num_edges`` directed edges."""

    # -- what every backend defines -------------------------------------------------------------
    @property
    @abc.abstractmethod
    def num_nodes(self) -> int:
        """``N``."""

    @property
    @abc.abstractmethod
    def num_edges(self) -> int:
        """``E``, the directed edges (an undirected edge counts twice)."""

    @property
    @abc.abstractmethod
    def is_symmetric(self) -> bool:
        """Whether every edge ``j -> i`` has its reverse ``i -> j`` (an undirected graph)."""

    @property
    @abc.abstractmethod
    def device(self) -> torch.device:
        """Where the index tensors live."""

    @abc.abstractmethod
    def csr(self) -> Tuple[Tensor, Tensor]:
        """``(indptr int64 [N + 1], indices int32 or int64 [E])``: row ``i`` lists the sources of
        ``j -> i`` (int64 for the in-memory backend)."""

    @abc.abstractmethod
    def edge_index(self) -> Tensor:
        """``[2, E]`` int64 edges ``(source, target)`` in the graph's own order (PyG's convention)."""

    @abc.abstractmethod
    def adjacency(self, norm: str, diag_lambda: float = 0.0) -> Adjacency:
        """The whole graph's ``[N, N]`` adjacency in normalization ``norm`` (``diag_lambda`` is read
        for ``"diag"`` only), built once per ``(norm, λ)`` and cached."""

    # -- edge weights (optional) ----------------------------------------------------------------
    def edge_weight(self) -> Optional[Tensor]:
        """``[E]`` float weights ``a_ij`` in :meth:`edge_index` order, or ``None`` (unweighted: all 1)."""
        return None

    def csr_weight(self) -> Optional[Tensor]:
        """The weights ``[E]`` in :meth:`csr` order (``None`` when unweighted). This default sorts
        :meth:`edge_weight` as the CSR was built (:func:`~gnnkit.stores.memory.csr_order`)."""
        w = self.edge_weight()
        if w is None:
            return None
        from .memory import csr_order

        perm = csr_order(self.edge_index(), self.csr_by_source)
        return w if perm is None else w[perm]

    def csr_edge_ids(self) -> Tensor:
        """``[E]`` int64: the :meth:`edge_index` position of every CSR entry (to gather per-edge data
        such as ``edge_attr`` for sampled edges); computed once."""
        cached = self.__dict__.get("_csr_edge_ids")
        if cached is None:
            from .memory import csr_order

            perm = csr_order(self.edge_index(), self.csr_by_source)
            cached = torch.arange(self.num_edges, device=self.device) if perm is None else perm
            self.__dict__["_csr_edge_ids"] = cached
        return cached

    @property
    def csr_by_source(self) -> bool:
        """Whether :meth:`csr` was built from the reversed edges (row ``j`` = the targets of ``j``,
        :func:`~gnnkit.stores.memory.in_neighbor_csr` with ``symmetric=True``): the order in which the
        CSR-order defaults above gather per-edge data. Default: :attr:`is_symmetric` (a symmetric
        structure's CSR, read reversed; its weights are then right only when symmetric too)."""
        return self.is_symmetric

    @property
    def symmetric_adjacency(self) -> bool:
        """Whether ``A = A^T`` weights included (a symmetric structure with symmetric weights): the
        CSR may then be read from the reversed edges and a ``"gcn"``/``"sum"`` matrix is its own
        transpose. This default trusts an unweighted symmetric structure only."""
        return self.is_symmetric and self.edge_weight() is None

    def weighted_in_degree(self, ids: Optional[Tensor] = None) -> Tensor:
        """``δ_i = Σ_j a_ij`` float ``[N]`` (or ``[len(ids)]``), computed once from :meth:`csr_weight`;
        the plain in-degree (as float32) when unweighted."""
        cached = self.__dict__.get("_weighted_degree")
        if cached is None:
            w = self.csr_weight()
            if w is None:
                cached = self.in_degree().to(torch.float32)
            else:
                indptr, _ = self.csr()
                rows = torch.repeat_interleave(torch.arange(self.num_nodes, device=w.device), indptr.diff(),
                                               output_size=w.numel())
                cached = torch.zeros(self.num_nodes, dtype=w.dtype, device=w.device).index_add_(0, rows, w)
            self.__dict__["_weighted_degree"] = cached
        return cached if ids is None else cached[ids]

    # -- answered from the CSR ------------------------------------------------------------------
    def gather(self, array: Tensor, idx: Tensor) -> Tensor:
        """``array[idx]`` for one of :meth:`csr`'s arrays (or :meth:`csr_weight`): how the methods
        below read the entries they need. A backend may read them its own way (a memory-mapped
        store reads in ascending order, concurrently for a store bigger than memory)."""
        return array[idx]

    def in_degree(self, ids: Optional[Tensor] = None) -> Tensor:
        """In-degrees ``d_i = indptr[i + 1] - indptr[i]``: ``[N]``, or ``[len(ids)]`` for ``ids``."""
        indptr, _ = self.csr()
        if ids is None:
            return indptr[1:] - indptr[:-1]
        return self.gather(indptr, ids + 1) - self.gather(indptr, ids)

    def neighbors(self, ids: Tensor) -> Tuple[Tensor, Tensor]:
        """All in-neighbors of ``ids`` ``[n]``: ``(counts [n], sources [Σ counts])``, the rows
        concatenated in the order of ``ids``, each row in CSR order."""
        indptr, indices = self.csr()
        start = self.gather(indptr, ids)
        counts = self.gather(indptr, ids + 1) - start
        return counts, self.gather(indices, concat_ranges(start, counts)).long()

    def sample_neighbors(self, ids: Tensor, k: int, gen: Optional[torch.Generator]) -> Tuple[Tensor, Tensor]:
        """A uniform ``k``-subset of the in-neighbors of every node of ``ids`` ``[n]``, without
        replacement (all of them when ``d_i <= k``; ``k = -1``: all). Returns ``(counts [n],
        sources [Σ counts])`` as :meth:`neighbors`; a sampled row lists its picks in draw order.
        The draws: one :func:`~gnnkit.sparse.segments.floyd_offsets` call over the rows with
        ``d_i > k``, ``k`` uniform numbers each, from ``gen``."""
        counts, pos = self.sample_positions(ids, k, gen)
        return counts, self.gather(self.csr()[1], pos).long()

    def sample_edges(self, ids: Tensor, k: int, gen: Optional[torch.Generator]):
        """:meth:`sample_neighbors` plus the weights of the picked edges: ``(counts [n], sources
        [Σ counts], weights [Σ counts] or None)`` (the same draws from ``gen``)."""
        counts, pos = self.sample_positions(ids, k, gen)
        w = self.csr_weight()
        return counts, self.gather(self.csr()[1], pos).long(), None if w is None else self.gather(w, pos)

    def sample_positions(self, ids: Tensor, k: int, gen: Optional[torch.Generator]) -> Tuple[Tensor, Tensor]:
        """``(counts [n], pos [Σ counts])``: the CSR positions of :meth:`sample_neighbors`' picks."""
        indptr, _ = self.csr()
        start = self.gather(indptr, ids)
        deg = self.gather(indptr, ids + 1) - start
        counts = deg if k < 0 else torch.clamp(deg, max=k)
        out_ptr = torch.cumsum(counts, 0) - counts
        pos = torch.zeros(int(counts.sum()), dtype=torch.long, device=deg.device)  # CSR position of each pick
        small = (deg <= counts).nonzero().view(-1)
        pos[concat_ranges(out_ptr[small], deg[small])] = concat_ranges(start[small], deg[small])
        big = (deg > counts).nonzero().view(-1)
        if big.numel():
            off = floyd_offsets(deg[big], k, gen)
            dest = out_ptr[big, None] + torch.arange(k, device=deg.device)
            pos[dest.view(-1)] = (start[big, None] + off).view(-1)
        return counts, pos

    def induced_subgraph(self, nodes: Tensor) -> Tensor:
        """``[2, E']`` the edges with both ends in ``nodes`` ``[k]`` (distinct ids), renumbered to
        positions in ``nodes`` (``0..k-1``), in the graph's edge order."""
        return induced_edges(self.edge_index(), nodes, self.num_nodes)
