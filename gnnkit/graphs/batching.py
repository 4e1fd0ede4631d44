"""Mini-batches of whole graphs: one block-diagonal CSR sliced out of the prebuilt concatenation.

For a batch of ``B`` graphs ``idx`` (any order) with ``n_b`` nodes and ``e_b`` edges in total, the
batch's operator is the block-diagonal matrix ``diag(A_{idx[0]}, ..., A_{idx[B-1]})``
``[n_b, n_b]``: graph ``idx[k]``'s nodes become rows ``ptr[k] .. ptr[k+1] - 1``. The whole
collection's normalized :class:`~gnnkit.sparse.Adjacency` (and its transpose) is built once; since
every graph's rows and columns form one diagonal block of it, a batch is a gather of row ranges:

* ``n_id = cat(arange(node_ptr[g], node_ptr[g+1]) for g in idx)`` (:func:`concat_ranges`);
* the CSR entries of those rows are the ranges ``crow[node_ptr[g]] .. crow[node_ptr[g+1]]``, their
  columns shifted by ``ptr[k] - node_ptr[g]`` (one ``repeat_interleave``);
* ``crow_b = [0, cumsum(deg[n_id])]``, the values gathered unchanged. A per-graph normalization
  (GCN's ``D^-1/2 (A+I) D^-1/2``, the row mean) only involves degrees inside the graph, so the
  global values are exactly each graph's own. The transposed CSR (the backward's operand) is the
  same gather on the global transpose: no sort per batch.

``batch`` ``[n_b]`` gives each row's position ``k`` in the batch (the pooling index). No Python
loop over a batch's graphs: every step is a fixed number of tensor operations.
"""
from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Callable, Iterator, Optional, Sequence

import torch
from torch import Tensor

from gnnkit.errors import GnnkitError
from gnnkit.samplers.loader import epoch_generator, shuffled
from gnnkit.sparse import Adjacency
from gnnkit.sparse.build import crow_from_counts, index_dtype, make_csr
from gnnkit.sparse.segments import concat_ranges

from .collection import GraphCollection


@dataclass
class GraphBatch:
    """``B`` graphs: ``x`` ``[n_b, F]``, ``adj`` block-diagonal ``[n_b, n_b]``, ``batch`` ``[n_b]``
    (graph position 0..B-1 of every row), ``ptr`` ``[B + 1]`` (row offsets), ``y`` ``[B]`` or
    ``[B, T]``, ``graph_ids`` ``[B]`` (ids in the collection), ``n_id`` ``[n_b]`` (global node ids);
    with edges: ``edge_index`` ``[2, e_b]`` batch-local (``j -> i``, CSR order by target) and
    ``edge_attr`` ``[e_b, D]`` or ``None``."""

    x: Tensor
    adj: Adjacency
    batch: Tensor
    ptr: Tensor
    y: Tensor
    graph_ids: Tensor
    n_id: Tensor
    edge_index: Optional[Tensor] = None
    edge_attr: Optional[Tensor] = None

    @property
    def num_graphs(self) -> int:
        return self.ptr.numel() - 1

    def to(self, device) -> "GraphBatch":
        moved = {f.name: getattr(self, f.name) for f in fields(self)}
        return replace(self, **{k: None if v is None else v.to(device) for k, v in moved.items()})


class GraphBatcher:
    """Slices batches of graphs out of ``coll`` (see the module docstring).

    ``norm``: the operator's normalization (``"sum"`` for GIN: ``A`` itself, no self-loops;
    ``"gcn"``; ``"mean"``). ``edges=True`` adds ``edge_index``/``edge_attr`` to every batch (for
    layers with edge features). ``device``: where the concatenation lives and batches are cut.
    ``sort_columns``: the global operator's layout (default: sorted on CUDA, as cuSPARSE wants;
    a batch keeps it, since shifting a block's columns by a constant keeps their order).
    """

    def __init__(self, coll: GraphCollection, norm: str = "sum", *, edges: bool = False, device="cpu",
                 sort_columns: Optional[bool] = None, dtype: Optional[torch.dtype] = None):
        self.coll, self.norm, self.edges = coll, norm, edges
        self.device = torch.device(device)
        n = coll.num_nodes
        adj = Adjacency.from_edge_index(coll.edge_index.to(self.device), n, norm=norm, sort_columns=sort_columns)
        self.sorted_columns = adj.sorted_columns
        self.crow, self.col, self.val = adj.csr.crow_indices().long(), adj.csr.col_indices(), adj.csr.values()
        t = adj.csr_t
        self.crow_t, self.col_t, self.val_t = t.crow_indices().long(), t.col_indices(), t.values()
        self.node_ptr = coll.node_ptr.to(self.device)
        self.edge_ptr = coll.edge_ptr.to(self.device)
        x = coll.x.to(self.device)  # floating features in ``dtype`` (a mixed precision's half type) when given
        self.x = x.to(dtype) if dtype is not None and x.is_floating_point() else x
        self.y = coll.y.to(self.device)
        self.edge_index = coll.edge_index.to(self.device) if edges else None
        self.edge_attr = None if coll.edge_attr is None or not edges else coll.edge_attr.to(self.device)

    def __call__(self, idx: Tensor) -> GraphBatch:
        """The batch of graphs ``idx`` ``[B]`` (int64 graph ids, any order, repeats allowed)."""
        idx = torch.as_tensor(idx, dtype=torch.long, device=self.device)
        if idx.dim() != 1 or idx.numel() == 0:
            raise GnnkitError(f"a batch needs a non-empty 1-d tensor of graph ids, got {tuple(idx.shape)}")
        g = self.coll.num_graphs
        if int(idx.min()) < 0 or int(idx.max()) >= g:
            raise GnnkitError(f"graph ids must lie in [0, {g}), got {int(idx.min())}..{int(idx.max())}")
        start, count = self.node_ptr[idx], self.node_ptr[idx + 1] - self.node_ptr[idx]
        ptr = torch.zeros(idx.numel() + 1, dtype=torch.long, device=self.device)
        torch.cumsum(count, 0, out=ptr[1:])
        n_b = int(ptr[-1])
        n_id = concat_ranges(start, count)
        batch = torch.repeat_interleave(torch.arange(idx.numel(), device=self.device), count, output_size=n_b)
        shift = start - ptr[:-1]  # global id minus batch-local id, per graph
        csr = self._block(self.crow, self.col, self.val, start, count, shift, n_id)
        csr_t = self._block(self.crow_t, self.col_t, self.val_t, start, count, shift, n_id)
        adj = Adjacency(csr, csr_t, sorted_columns=self.sorted_columns)
        out = GraphBatch(x=self.x.index_select(0, n_id), adj=adj, batch=batch, ptr=ptr,
                         y=self.y.index_select(0, idx), graph_ids=idx, n_id=n_id)
        if self.edges:
            out.edge_index, out.edge_attr = self._edges(idx, shift)
        return out

    def _block(self, crow: Tensor, col: Tensor, val: Tensor, start: Tensor, count: Tensor, shift: Tensor,
               n_id: Tensor) -> Tensor:
        """The block-diagonal CSR ``[n_b, n_b]`` of the graphs whose node ranges are ``(start, count)``."""
        lo, hi = crow[start], crow[start + count]
        nnz = hi - lo
        pos = concat_ranges(lo, nnz)
        total = int(pos.numel())
        idx_t = index_dtype(total, n_id.numel() + 1)
        new_col = col.index_select(0, pos) - torch.repeat_interleave(shift, nnz, output_size=total).to(col.dtype)
        deg = crow[n_id + 1] - crow[n_id]
        new_crow = crow_from_counts(deg, idx_t)
        n_b = n_id.numel()
        return make_csr(new_crow, new_col.to(idx_t), val.index_select(0, pos), (n_b, n_b))

    def _edges(self, idx: Tensor, shift: Tensor):
        """``edge_index`` ``[2, e_b]`` batch-local and ``edge_attr`` ``[e_b, D]`` of the graphs ``idx``."""
        lo = self.edge_ptr[idx]
        cnt = self.edge_ptr[idx + 1] - lo
        pos = concat_ranges(lo, cnt)
        ei = self.edge_index.index_select(1, pos) - torch.repeat_interleave(shift, cnt, output_size=pos.numel())
        ea = None if self.edge_attr is None else self.edge_attr.index_select(0, pos)
        return ei, ea


class GraphLoader:
    """Batches of ``batch_size`` graphs from ``graph_ids`` ``[M]``: per epoch shuffled (when
    ``shuffle``) with the generator of ``(seed, epoch)`` (:func:`gnnkit.samplers.loader.epoch_generator`,
    so a resumed run draws the same batches), then this rank's share, cut into consecutive batches
    (the last may be smaller unless ``drop_last``).

    ``shard``: ``items -> this rank's items`` (``RunContext.shard``: an equal round-robin share);
    ``None`` keeps all (one process). ``world_size``: how many ranks share, for :meth:`__len__`.
    """

    def __init__(self, batcher: GraphBatcher, graph_ids: Tensor, batch_size: int, *, shuffle: bool = True,
                 seed: int = 0, drop_last: bool = False, shard: Optional[Callable[[Sequence], Sequence]] = None,
                 world_size: int = 1):
        if batch_size < 1:
            raise GnnkitError(f"batch_size must be at least 1, got {batch_size}")
        self.batcher, self.batch_size, self.shuffle, self.seed = batcher, int(batch_size), shuffle, seed
        self.ids = torch.as_tensor(graph_ids, dtype=torch.long)
        self.drop_last, self.shard, self.world_size = drop_last, shard, world_size
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def order(self) -> Tensor:
        """This rank's graph ids for the current epoch, in visiting order."""
        ids = shuffled(self.ids, epoch_generator(self.seed, self.epoch)) if self.shuffle else self.ids
        return ids if self.shard is None else self.shard(ids)

    def __len__(self) -> int:
        m = self.ids.numel() // self.world_size if self.world_size > 1 else self.ids.numel()
        return m // self.batch_size if self.drop_last else -(-m // self.batch_size)

    def __iter__(self) -> Iterator[GraphBatch]:
        order = self.order().to(self.batcher.device)
        for s in range(0, len(self) * self.batch_size, self.batch_size):
            yield self.batcher(order[s:s + self.batch_size])
