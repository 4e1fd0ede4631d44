"""OnDiskGraphStore: the structure of a store, memory-mapped.

``csr()`` gives the mapped arrays themselves: ``indptr`` int64 ``[N + 1]`` and ``indices`` ``[E]``
in their stored dtype (int32 while node ids fit in it: the in-memory store's are int64); the
base's ``neighbors`` and ``sample_neighbors`` read only the rows asked for and return int64
sources, as on every backend. ``edge_index()`` and ``adjacency()`` build whole-graph
tensors in memory (for graphs that fit: full-batch training, Cluster-GCN, ForwardGNN), equal bit
for bit to the in-memory store of the graph the store was converted from; where they would not
fit (:func:`gnnkit.data.limits.check_allocation`) a GnnkitError says so instead.
"""
from __future__ import annotations

from typing import Optional, Tuple

import torch
from torch import Tensor

from gnnkit.data.limits import check_allocation
from gnnkit.sparse import Adjacency
from gnnkit.stores.graph import GraphStore
from gnnkit.stores.memory import InMemoryGraphStore

from .csr import csr_edges
from .files import StoreFiles, sorted_take


class OnDiskGraphStore(GraphStore):
    """The graph of the store ``files`` (a :class:`~gnnkit.stores.ondisk.files.StoreFiles`)."""

    def __init__(self, files: StoreFiles):
        self.files = files
        self._edge_index: Optional[Tensor] = None
        self._memory: Optional[InMemoryGraphStore] = None

    @property
    def num_nodes(self) -> int:
        return int(self.files.meta["num_nodes"])

    @property
    def num_edges(self) -> int:
        return int(self.files.meta["num_edges"])

    @property
    def is_symmetric(self) -> bool:
        return bool(self.files.meta["is_symmetric"])

    @property
    def device(self) -> torch.device:
        return torch.device("cpu")

    def csr(self) -> Tuple[Tensor, Tensor]:
        return self.files.tensor("indptr"), self.files.tensor("indices")

    def gather(self, array: Tensor, idx: Tensor) -> Tensor:
        """``array[idx]``; for a store bigger than memory (``read_threads > 1``) read in ascending
        order by concurrent readers (:func:`~gnnkit.stores.ondisk.files.sorted_take`)."""
        threads = self.files.read_threads
        return array[idx] if threads <= 1 else sorted_take(array, idx, threads)

    @property
    def csr_by_source(self) -> bool:
        return bool(self.files.meta["csr_by_source"])

    @property
    def symmetric_adjacency(self) -> bool:
        """As the in-memory store's: the CSR holds the reversed edges exactly when ``A = A^T``."""
        return self.csr_by_source

    def edge_index(self) -> Tensor:
        """``[2, E]`` int64 in the source graph's edge order (built in memory once, then cached)."""
        if self._edge_index is None:
            check_allocation(24.0 * self.num_edges, f"the whole edge_index of {self.num_edges} edges in memory")
            ei = csr_edges(*self.csr(), self.csr_by_source)
            if self.files.has("edge_order"):
                ei = ei[:, self.files.tensor("edge_order")]
            self._edge_index = ei
        return self._edge_index

    def csr_weight(self) -> Optional[Tensor]:
        """The mapped edge weights ``[E]`` (stored in CSR order), or None for an unweighted store."""
        return self.files.tensor("edge_weight") if self.files.has("edge_weight") else None

    def edge_weight(self) -> Optional[Tensor]:
        """Edge weights ``[E]`` in ``edge_index()``'s order, or None for an unweighted store."""
        w = self.csr_weight()
        if w is None:
            return None
        return w[self.files.tensor("edge_order")] if self.files.has("edge_order") else w

    def csr_edge_ids(self) -> Tensor:
        """``[E]`` the ``edge_index()`` position of each CSR entry: the inverse of ``edge_order``."""
        if "_csr_edge_ids" not in self.__dict__:
            ids = torch.arange(self.num_edges)
            if self.files.has("edge_order"):
                ids = torch.empty_like(ids).index_copy_(0, self.files.tensor("edge_order"), ids)
            self.__dict__["_csr_edge_ids"] = ids
        return self.__dict__["_csr_edge_ids"]

    def adjacency(self, norm: str, diag_lambda: float = 0.0) -> Adjacency:
        """As the in-memory store's (the same builder on the same ``edge_index`` and weights), cached."""
        if self._memory is None:
            self._memory = InMemoryGraphStore(self.edge_index(), self.num_nodes, self.is_symmetric, self.edge_weight())
        return self._memory.adjacency(norm, diag_lambda)
