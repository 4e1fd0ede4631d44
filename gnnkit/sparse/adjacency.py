"""Adjacency: a (normalized) sparse matrix in CSR with its transpose, built once per graph.

Row ``i`` of the matrix holds the weights with which node ``i`` aggregates its in-neighbors: an
edge ``(j -> i)`` of ``edge_index`` (PyG's ``source_to_target`` flow, ``edge_index[0] = j``,
``edge_index[1] = i``) becomes entry ``A[i, j]``. A bipartite adjacency (``num_rows`` targets,
``num_cols`` sources) serves sampled layers: output rows are the first ``num_rows`` input rows.

Normalizations (``norm=``):

* ``"gcn"``: ``D^-1/2 (A + I) D^-1/2`` with ``D`` the degrees of ``A + I`` (Kipf & Welling).
* ``"mean"``: ``D^-1 A``, the row mean over in-neighbors (GraphSAGE's aggregator).
* ``"sum"``: ``A`` unchanged (weights from ``edge_weight`` or 1).
* ``"diag"``: Cluster-GCN's diagonal enhancement ``Ã + λ·diag(Ã)`` with ``Ã = (D + I)^-1 (A + I)``.

``adj @ x`` runs :func:`gnnkit.sparse.spmm`, a CSR sparse-dense product (MKL on CPU, cuSPARSE on
CUDA) whose backward multiplies by the cached transposed CSR.

Layout (see :mod:`gnnkit.sparse.build`): ``int32`` indices while they fit, rows in order, the
columns inside a row in input order (not sorted; duplicates kept and summed by the product), and
the self-loop of ``A + I`` first in its row. Building costs one sort of the targets, or none when
``edge_index`` already comes ordered by target (or, with ``symmetric=True``, by source).
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from ..errors import GnnkitError
from .build import (coalesce_sorted, crow_from_counts, group_by_row, index_dtype, insert_diagonal, is_sorted,
                    make_csr, sort_csr, transpose_csr)
from .spmm import SparseInputError, spmm

NORMS = ("gcn", "mean", "sum", "diag")


def _check_edges(edge_index: Tensor, edge_weight: Optional[Tensor], n_rows: int, n_cols: int) -> None:
    if not isinstance(edge_index, Tensor) or edge_index.dim() != 2 or edge_index.shape[0] != 2:
        shape = tuple(edge_index.shape) if isinstance(edge_index, Tensor) else type(edge_index).__name__
        raise SparseInputError(f"edge_index must be a [2, E] tensor, got {shape}")
    if edge_index.dtype not in (torch.int64, torch.int32):
        raise SparseInputError(f"edge_index must hold int64 or int32 node ids, got {edge_index.dtype}")
    if n_rows < 0 or n_cols < 0:
        raise SparseInputError(f"num_nodes/num_rows must be non-negative, got {n_cols}/{n_rows}")
    if edge_weight is not None:
        if not isinstance(edge_weight, Tensor) or tuple(edge_weight.shape) != (edge_index.shape[1],):
            shape = tuple(edge_weight.shape) if isinstance(edge_weight, Tensor) else type(edge_weight).__name__
            raise SparseInputError(f"edge_weight must have shape [E] = [{edge_index.shape[1]}], got {shape}")
        if not edge_weight.is_floating_point():
            raise SparseInputError(f"edge_weight must be floating point, got {edge_weight.dtype}")
        if edge_weight.device != edge_index.device:
            raise SparseInputError(f"edge_weight is on {edge_weight.device}, edge_index on {edge_index.device}")
    if edge_index.shape[1] == 0:
        return
    lo, hi = torch.aminmax(edge_index, dim=1)
    lo, hi = lo.tolist(), hi.tolist()
    if min(lo) < 0 or hi[0] >= n_cols or hi[1] >= n_rows:
        raise SparseInputError(
            f"edge_index out of range: sources in [{lo[0]}, {hi[0]}] must lie in [0, {n_cols}), "
            f"targets in [{lo[1]}, {hi[1]}] in [0, {n_rows})")


def _with_loops(rows: Tensor, cols: Tensor, w: Optional[Tensor], n: int):
    """``(rows, cols, w)`` with the ``n`` self-loops ``(i, i)`` of weight 1 appended."""
    loop = torch.arange(n, dtype=rows.dtype, device=rows.device)
    w = None if w is None else torch.cat([w, torch.ones(n, dtype=w.dtype, device=w.device)])
    return torch.cat([rows, loop]), torch.cat([cols, loop]), w


def _times(w: Optional[Tensor], v: Tensor) -> Tensor:
    """``w * v``, or ``v`` for an unweighted graph (``w is None``: all weights 1)."""
    return v if w is None else w * v


def _normalized(norm: str, row: Tensor, col: Tensor, w: Optional[Tensor], deg: Tensor, diag_lambda: float):
    """``(val [nnz], diag [n])``: the entries ``(row, col)`` (weights ``w``, ``None`` = 1) and the
    self-loop weights of ``norm``, from the weighted in-degrees ``deg`` ``[n]`` (of ``A + I`` when
    the norm adds self-loops)."""
    diag = torch.ones(deg.numel(), dtype=deg.dtype, device=row.device)
    if norm == "gcn":  # d_i^-1/2 a_ij d_j^-1/2
        dinv = deg.pow(-0.5).masked_fill_(deg == 0, 0.0)
        return _times(w, dinv.index_select(0, row) * dinv.index_select(0, col)), dinv * dinv
    if norm == "mean":  # a_ij / d_i
        return _times(w, deg.reciprocal().masked_fill_(deg == 0, 0.0).index_select(0, row)), diag
    if norm == "diag":  # (1 + λ [i = j]) (a_ij + [i = j]) / (d_i + 1)
        dinv = deg.reciprocal()
        val = _times(w, dinv.index_select(0, row))
        if diag_lambda:  # self-loops already in A belong to diag(Ã) as well
            val = torch.where(row == col, val * (1.0 + diag_lambda), val)
        return val, dinv * (1.0 + diag_lambda)
    # sum: a_ij
    return (torch.ones(row.numel(), dtype=deg.dtype, device=row.device) if w is None else w), diag


def _with_values(csr: Tensor, dtype: torch.dtype) -> Tensor:
    """The CSR ``csr`` with its values cast to ``dtype`` (index tensors shared)."""
    return make_csr(csr.crow_indices(), csr.col_indices(), csr.values().to(dtype), tuple(csr.shape))


class Adjacency:
    """A sparse ``[num_rows, num_cols]`` matrix in CSR plus its lazily built transpose.

    Args:
        csr: a ``torch.sparse_csr_tensor``.
        csr_t: its transpose in CSR, when already known (for a symmetric matrix, ``csr`` itself).
        sorted_columns: whether ``csr`` has sorted, distinct columns in each row (torch's CSR
            invariant, which cuSPARSE documents too); :meth:`to` a CUDA device sorts when not.
    """

    def __init__(self, csr: Tensor, csr_t: Optional[Tensor] = None, *, sorted_columns: bool = True):
        if csr.layout != torch.sparse_csr:
            raise GnnkitError(f"Adjacency needs a sparse CSR tensor, got layout {csr.layout}")
        self.csr = csr
        self._csr_t = csr_t
        self.sorted_columns = sorted_columns
        self._cast: dict = {}  # dtype -> (csr, csr_t or None): the values in another type (mixed precision)

    # -- construction ---------------------------------------------------------------------------
    @classmethod
    def from_edge_index(
        cls,
        edge_index: Tensor,
        num_nodes: int,
        *,
        norm: str = "gcn",
        edge_weight: Optional[Tensor] = None,
        num_rows: Optional[int] = None,
        diag_lambda: float = 0.0,
        dtype: torch.dtype = torch.float32,
        symmetric: bool = False,
        sort_columns: Optional[bool] = None,
    ) -> "Adjacency":
        """Build from ``edge_index`` ``[2, E]`` (``j -> i`` becomes ``A[i, j]``).

        ``num_nodes`` is the number of columns (source nodes); ``num_rows`` (default
        ``num_nodes``) the number of target rows, for bipartite layers. ``edge_weight`` ``[E]``
        gives ``a_ij`` (default 1). ``symmetric=True`` states that ``A = A^T`` (an undirected
        graph, symmetric weights): the transpose of ``"gcn"``/``"sum"`` is then the matrix itself.
        ``sort_columns`` (default: on CUDA only) sorts the columns inside each row, as cuSPARSE
        expects; MKL does not need it. Raises :class:`SparseInputError` on a malformed
        ``edge_index``/``edge_weight``.
        """
        if norm not in NORMS:
            raise GnnkitError(f"unknown normalization {norm!r}; known: {', '.join(NORMS)}")
        if not dtype.is_floating_point:
            raise SparseInputError(f"dtype must be floating point, got {dtype}")
        n_rows = num_nodes if num_rows is None else num_rows
        _check_edges(edge_index, edge_weight, n_rows, num_nodes)
        loops = norm in ("gcn", "diag")
        if loops and n_rows != num_nodes:
            raise GnnkitError(f"norm={norm!r} adds self-loops and needs a square adjacency")
        idx = index_dtype(edge_index.shape[1] + n_rows, n_rows + 1, num_nodes)
        sort_cols = edge_index.is_cuda if sort_columns is None else sort_columns
        w = None if edge_weight is None else edge_weight.to(dtype)
        rows, cols = edge_index[1], edge_index[0]
        if symmetric and n_rows == num_nodes and is_sorted(cols):
            rows, cols = cols, rows  # A = A^T: read the edges reversed and skip the sort
        if loops and sort_cols:  # the self-loops of A + I as edges, sorted into place
            rows, cols, w = _with_loops(rows, cols, w, n_rows)
        row, col, w, counts = group_by_row(rows, cols, w, n_rows, num_nodes, idx, sort_cols)
        # deg[i]: weighted in-degree of row i, counting the self-loop of A + I
        deg = (counts.to(dtype) if w is None
               else torch.zeros(n_rows, dtype=dtype, device=row.device).index_add_(0, row, w))
        if loops and not sort_cols:
            deg += 1.0
        val, diag = _normalized(norm, row, col, w, deg, diag_lambda)
        if sort_cols:  # repeated (row, col) pairs summed into one entry
            row, col, val = coalesce_sorted(row, col, val, num_nodes)
            counts = torch.bincount(row, minlength=n_rows)
        del row
        crow = crow_from_counts(counts, idx)
        if loops and not sort_cols:  # the self-loops of A + I, first in each row
            crow, col, val = insert_diagonal(crow, col, val, diag)
        csr = make_csr(crow, col, val, (n_rows, num_nodes))
        sym = symmetric and norm in ("gcn", "sum") and n_rows == num_nodes
        return cls(csr, csr if sym else None, sorted_columns=sort_cols)

    # -- properties -----------------------------------------------------------------------------
    @property
    def num_rows(self) -> int:
        return self.csr.shape[0]

    @property
    def num_cols(self) -> int:
        return self.csr.shape[1]

    @property
    def nnz(self) -> int:
        return self.csr.values().numel()

    @property
    def device(self) -> torch.device:
        return self.csr.device

    @property
    def csr_t(self) -> Tensor:
        """The transpose in CSR, built on first use and cached."""
        if self._csr_t is None:
            self._csr_t = transpose_csr(self.csr)
        return self._csr_t

    def csr_as(self, dtype: torch.dtype) -> Tensor:
        """``csr`` with its values in ``dtype`` (same indices; built once per type and cached)."""
        if dtype == self.csr.dtype:
            return self.csr
        if dtype not in self._cast:
            self._cast[dtype] = (_with_values(self.csr, dtype), None)
        return self._cast[dtype][0]

    def csr_t_as(self, dtype: torch.dtype) -> Tensor:
        """``csr_t`` with its values in ``dtype`` (a symmetric matrix's is :meth:`csr_as` itself)."""
        if dtype == self.csr.dtype:
            return self.csr_t
        csr = self.csr_as(dtype)
        t = self._cast[dtype][1]
        if t is None:
            t = csr if self.csr_t is self.csr else _with_values(self.csr_t, dtype)
            self._cast[dtype] = (csr, t)
        return t

    # -- operations -----------------------------------------------------------------------------
    def __matmul__(self, x: Tensor) -> Tensor:
        return spmm(self, x)

    def to(self, device) -> "Adjacency":
        """This adjacency on ``device``; on CUDA with sorted, distinct columns (cuSPARSE's CSR)."""
        device = torch.device(device)
        if self.csr.device == device:
            return self
        csr = self.csr.to(device)
        if device.type == "cuda" and not self.sorted_columns:
            csr = sort_csr(csr)
            return Adjacency(csr, csr if self._csr_t is self.csr else None)
        if self._csr_t is self.csr:
            return Adjacency(csr, csr, sorted_columns=self.sorted_columns)
        csr_t = None if self._csr_t is None else self._csr_t.to(device)
        return Adjacency(csr, csr_t, sorted_columns=self.sorted_columns)

    def t(self) -> "Adjacency":
        """The transpose ``[num_cols, num_rows]`` (its own transpose is this adjacency's CSR)."""
        return Adjacency(self.csr_t, self.csr, sorted_columns=self.sorted_columns)

    def row_slice(self, start: int, end: int) -> "Adjacency":
        """Rows ``start:end`` as a ``[end - start, num_cols]`` adjacency (no copy of the rest)."""
        if not 0 <= start <= end <= self.num_rows:
            raise SparseInputError(f"row_slice({start}, {end}) outside the {self.num_rows} rows")
        crow = self.csr.crow_indices()
        lo, hi = int(crow[start]), int(crow[end])
        sub = make_csr(crow[start:end + 1] - lo, self.csr.col_indices()[lo:hi],
                       self.csr.values()[lo:hi], (end - start, self.num_cols))
        return Adjacency(sub, sorted_columns=self.sorted_columns)

    def to_dense(self) -> Tensor:
        return self.csr.to_dense()

    def __repr__(self) -> str:
        return f"Adjacency({self.num_rows}x{self.num_cols}, nnz={self.nnz}, device={self.device})"
