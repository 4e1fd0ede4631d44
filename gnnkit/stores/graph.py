"""GraphStore: the structure of one graph, behind one interface for every backend.

The structure is the CSR *by destination*: ``indptr`` int64 ``[N + 1]`` and ``indices`` ``[E]`` (int64 in
memory; a memory-mapped store keeps int32 while node ids fit, so code that gathers from ``csr()``
itself widens with ``.long()``; :meth:`GraphStore.neighbors` and ``sample_neighbors`` return int64),
row ``i`` listing the sources ``j`` of the edges ``j -> i`` (``indices[indptr[i]:indptr[i + 1]]``).
Every other question (degrees, neighbors, uniform neighbor samples, induced subgraphs, the whole
graph's normalized :class:`~gnnkit.sparse.Adjacency`) is answered from it. The concrete methods here
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

    # -- answered from the CSR ------------------------------------------------------------------
    def in_degree(self, ids: Optional[Tensor] = None) -> Tensor:
        """In-degrees ``d_i = indptr[i + 1] - indptr[i]``: ``[N]``, or ``[len(ids)]`` for ``ids``."""
        indptr, _ = self.csr()
        if ids is None:
            return indptr[1:] - indptr[:-1]
        return indptr[ids + 1] - indptr[ids]

    def neighbors(self, ids: Tensor) -> Tuple[Tensor, Tensor]:
        """All in-neighbors of ``ids`` ``[n]``: ``(counts [n], sources [Σ counts])``, the rows
        concatenated in the order of ``ids``, each row in CSR order."""
        indptr, indices = self.csr()
        start = indptr[ids]
        counts = indptr[ids + 1] - start
        return counts, indices[concat_ranges(start, counts)].long()

    def sample_neighbors(self, ids: Tensor, k: int, gen: Optional[torch.Generator]) -> Tuple[Tensor, Tensor]:
        """A uniform ``k``-subset of the in-neighbors of every node of ``ids`` ``[n]``, without
        replacement (all of them when ``d_i <= k``; ``k = -1``: all). Returns ``(counts [n],
        sources [Σ counts])`` as :meth:`neighbors`; a sampled row lists its picks in draw order.
        The draws: one :func:`~gnnkit.sparse.segments.floyd_offsets` call over the rows with
        ``d_i > k``, ``k`` uniform numbers each, from ``gen``."""
        indptr, indices = self.csr()
        start = indptr[ids]
        deg = indptr[ids + 1] - start
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
        return counts, indices[pos].long()

    def induced_subgraph(self, nodes: Tensor) -> Tensor:
        """``[2, E']`` the edges with both ends in ``nodes`` ``[k]`` (distinct ids), renumbered to
        positions in ``nodes`` (``0..k-1``), in the graph's edge order."""
        return induced_edges(self.edge_index(), nodes, self.num_nodes)
