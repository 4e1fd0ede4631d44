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
"""
from __future__ import annotations

import warnings
from typing import Optional

import torch
from torch import Tensor

from ..errors import GnnkitError
from .spmm import spmm

NORMS = ("gcn", "mean", "sum", "diag")


def _csr_from_sorted(rows: Tensor, cols: Tensor, vals: Tensor, n_rows: int, n_cols: int) -> Tensor:
    crow = torch.zeros(n_rows + 1, dtype=torch.int64, device=rows.device)
    torch.cumsum(torch.bincount(rows, minlength=n_rows), 0, out=crow[1:])
    return make_csr(crow, cols, vals, (n_rows, n_cols))


def make_csr(crow: Tensor, col: Tensor, val: Tensor, size) -> Tensor:
    """``torch.sparse_csr_tensor`` without the invariant check (our indices are built sorted)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
        return torch.sparse_csr_tensor(crow, col, val, size, check_invariants=False)


class Adjacency:
    """A sparse ``[num_rows, num_cols]`` matrix in CSR plus its lazily built transpose.

    Args:
        csr: a ``torch.sparse_csr_tensor``.
        csr_t: its transpose in CSR, when already known (for a symmetric matrix, ``csr`` itself).
    """

    def __init__(self, csr: Tensor, csr_t: Optional[Tensor] = None):
        if csr.layout != torch.sparse_csr:
            raise GnnkitError(f"Adjacency needs a sparse CSR tensor, got layout {csr.layout}")
        self.csr = csr
        self._csr_t = csr_t

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
    ) -> "Adjacency":
        """Build from ``edge_index`` ``[2, E]`` (``j -> i`` becomes ``A[i, j]``).

        ``num_nodes`` is the number of columns (source nodes); ``num_rows`` (default
        ``num_nodes``) the number of target rows, for bipartite layers. ``symmetric=True`` states
        that the graph is undirected, so the transpose of a symmetric normalization is free.
        """
        if norm not in NORMS:
            raise GnnkitError(f"unknown normalization {norm!r}; known: {', '.join(NORMS)}")
        n_rows = num_nodes if num_rows is None else num_rows
        src, dst = edge_index[0], edge_index[1]
        w = (torch.ones(src.numel(), dtype=dtype, device=src.device) if edge_weight is None
             else edge_weight.to(dtype))
        if norm in ("gcn", "diag"):
            if n_rows != num_nodes:
                raise GnnkitError(f"norm={norm!r} adds self-loops and needs a square adjacency")
            loop = torch.arange(num_nodes, device=src.device)
            src = torch.cat([src, loop])
            dst = torch.cat([dst, loop])
            w = torch.cat([w, torch.ones(num_nodes, dtype=dtype, device=w.device)])
        deg = torch.zeros(n_rows, dtype=dtype, device=w.device).index_add_(0, dst, w)
        if norm == "gcn":
            dinv = deg.pow(-0.5)
            dinv.masked_fill_(torch.isinf(dinv), 0.0)
            w = dinv[dst] * w * dinv[src]
        elif norm == "mean":
            dinv = 1.0 / deg
            dinv.masked_fill_(torch.isinf(dinv), 0.0)
            w = dinv[dst] * w
        elif norm == "diag":
            # deg already counts the self-loop, so it is the D + I of (D + I)^-1 (A + I)
            w = w / deg[dst]
            if diag_lambda:
                w = w + diag_lambda * w * (src == dst).to(dtype)
        perm = torch.argsort(dst * num_nodes + src)
        csr = _csr_from_sorted(dst[perm], src[perm], w[perm], n_rows, num_nodes)
        sym = symmetric and norm in ("gcn", "sum") and n_rows == num_nodes
        return cls(csr, csr if sym else None)

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
            crow, col, val = self.csr.crow_indices(), self.csr.col_indices(), self.csr.values()
            row = torch.repeat_interleave(torch.arange(self.num_rows, device=crow.device), crow.diff())
            perm = torch.argsort(col * self.num_rows + row)
            self._csr_t = _csr_from_sorted(col[perm], row[perm], val[perm], self.num_cols, self.num_rows)
        return self._csr_t

    # -- operations -----------------------------------------------------------------------------
    def __matmul__(self, x: Tensor) -> Tensor:
        return spmm(self, x)

    def to(self, device) -> "Adjacency":
        device = torch.device(device)
        if self.csr.device == device:
            return self
        t = None if self._csr_t is None else (self.csr.to(device) if self._csr_t is self.csr else self._csr_t.to(device))
        csr = self.csr.to(device)
        return Adjacency(csr, csr if self._csr_t is self.csr else t)

    def row_slice(self, start: int, end: int) -> "Adjacency":
        """Rows ``start:end`` as a ``[end - start, num_cols]`` adjacency (no copy of the rest)."""
        crow = self.csr.crow_indices()
        lo, hi = int(crow[start]), int(crow[end])
        sub = make_csr(crow[start:end + 1] - lo, self.csr.col_indices()[lo:hi],
                                      self.csr.values()[lo:hi], (end - start, self.num_cols))
        return Adjacency(sub)

    def to_dense(self) -> Tensor:
        return self.csr.to_dense()

    def __repr__(self) -> str:
        return f"Adjacency({self.num_rows}x{self.num_cols}, nnz={self.nnz}, device={self.device})"
