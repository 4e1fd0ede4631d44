"""CSR construction from edge lists: grouping by row, diagonal insertion, transposition.

All helpers work on the three CSR arrays ``crow`` ``[n + 1]``, ``col`` ``[nnz]`` and ``val``
``[nnz]``. Rows must be contiguous and in order. On CPU the columns inside a row may come in any
order and repeat: MKL's CSR product sums each row's entries whatever their order (checked against
dense algebra in the tests), so building needs a sort on the row only, never on the ``(row, col)``
pair, and no sort at all when the rows already come in order. Such a CSR breaks torch's own
invariant (sorted, distinct columns; ``check_invariants=True`` rejects it), which only the
invariant checker and the layout conversions care about. cuSPARSE documents sorted columns, so
on CUDA the build sorts on ``(row, col)`` (a GPU radix sort, cheap there).

Index dtype: ``int32`` whenever ``nnz`` and the sizes fit, because MKL (LP64) works on 32-bit
indices and would otherwise convert the ``int64`` arrays on every product; ``int64`` beyond.
"""
from __future__ import annotations

import warnings
from typing import Optional, Tuple

import torch
from torch import Tensor

_INT32_MAX = 2**31 - 1


def index_dtype(nnz: int, *sizes: int) -> torch.dtype:
    """``int32`` when ``nnz`` and every size fit in 32 bits, else ``int64``."""
    return torch.int32 if max(nnz, *sizes) < _INT32_MAX else torch.int64


def make_csr(crow: Tensor, col: Tensor, val: Tensor, size) -> Tensor:
    """``torch.sparse_csr_tensor`` without the invariant check (our indices are built valid)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
        return torch.sparse_csr_tensor(crow, col, val, size, check_invariants=False)


def crow_from_counts(counts: Tensor, dtype: torch.dtype) -> Tensor:
    """``crow[0] = 0``, ``crow[i + 1] = counts[0] + ... + counts[i]``: ``[n + 1]``."""
    crow = torch.zeros(counts.numel() + 1, dtype=dtype, device=counts.device)
    torch.cumsum(counts, 0, out=crow[1:])
    return crow


def is_sorted(x: Tensor) -> bool:
    """Whether the 1-D ``x`` is non-decreasing, in ``O(len(x))``."""
    return x.numel() < 2 or bool((x[1:] >= x[:-1]).all())


def group_by_row(row: Tensor, col: Tensor, val: Optional[Tensor], n_rows: int, n_cols: int,
                 idx: torch.dtype, sort_cols: bool = False):
    """Order the ``nnz`` entries ``(row, col, val)`` by row, keeping their order within a row.

    With ``sort_cols`` the columns inside each row come sorted too (a sort on the ``int64`` key
    ``row * n_cols + col``; cuSPARSE documents sorted columns as part of its CSR format).
    Returns ``(row, col, val, counts)``: ``row`` sorted (``idx`` dtype), ``col`` permuted along
    (``idx`` dtype), ``val`` permuted (or ``None``) and ``counts`` ``[n_rows]`` the entries per row
    (``int64``). Entries already in order (checked in ``O(nnz)``) are not sorted.
    """
    row, col = row.to(idx), col.to(idx)
    perm = None
    if sort_cols:
        key = row.long() * n_cols + col
        if not is_sorted(key):
            perm = torch.sort(key, stable=True).indices
            row = row.index_select(0, perm)
    elif not is_sorted(row):
        row, perm = torch.sort(row, stable=True)
    if perm is not None:
        col = col.index_select(0, perm)
        val = None if val is None else val.index_select(0, perm)
    counts = torch.bincount(row, minlength=n_rows)
    return row, col, val, counts


def coalesce_sorted(row: Tensor, col: Tensor, val: Tensor, n_cols: int) -> Tuple[Tensor, Tensor, Tensor]:
    """Sum the repeated ``(row, col)`` entries of ``nnz`` entries sorted by ``(row, col)``."""
    key = row.long() * n_cols + col
    if is_sorted(key) and (key.numel() < 2 or bool((key[1:] > key[:-1]).all())):
        return row, col, val
    uniq, inverse = torch.unique_consecutive(key, return_inverse=True)
    val = torch.zeros(uniq.numel(), dtype=val.dtype, device=val.device).index_add_(0, inverse, val)
    return (uniq // n_cols).to(row.dtype), (uniq % n_cols).to(col.dtype), val


def sort_csr(csr: Tensor) -> Tensor:
    """``csr`` with sorted, distinct columns in each row (repeats summed): torch's CSR invariant."""
    crow, col, val = csr.crow_indices(), csr.col_indices(), csr.values()
    n, m = csr.shape
    row, col, val, _ = group_by_row(rows_of(crow), col, val, n, m, col.dtype, sort_cols=True)
    row, col, val = coalesce_sorted(row, col, val, m)
    return make_csr(crow_from_counts(torch.bincount(row, minlength=n), crow.dtype), col, val, (n, m))


def insert_diagonal(crow: Tensor, col: Tensor, val: Tensor, diag: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
    """Add the entry ``(i, i) = diag[i]`` in front of each row ``i`` of a square CSR.

    ``crow`` ``[n + 1]``, ``col``/``val`` ``[nnz]``, ``diag`` ``[n]`` → CSR arrays with
    ``nnz + n`` entries; row ``i`` now spans ``crow[i] + i .. crow[i + 1] + i + 1``. Ordered
    scatters, no sort.
    """
    n = crow.numel() - 1
    new_crow = crow + torch.arange(n + 1, dtype=crow.dtype, device=crow.device)
    loop_pos = new_crow[:-1].long()
    keep = torch.ones(col.numel() + n, dtype=torch.bool, device=col.device)
    keep[loop_pos] = False
    old_pos = keep.nonzero().squeeze(1)
    new_col = torch.empty(col.numel() + n, dtype=col.dtype, device=col.device)
    new_col.index_copy_(0, old_pos, col).index_copy_(0, loop_pos, torch.arange(n, dtype=col.dtype, device=col.device))
    new_val = torch.empty(new_col.numel(), dtype=val.dtype, device=val.device)
    new_val.index_copy_(0, old_pos, val).index_copy_(0, loop_pos, diag)
    return new_crow, new_col, new_val


def rows_of(crow: Tensor) -> Tensor:
    """The row of every entry, ``[nnz]``, from ``crow`` ``[n + 1]`` (the inverse of counting)."""
    n = crow.numel() - 1
    return torch.repeat_interleave(torch.arange(n, dtype=crow.dtype, device=crow.device),
                                   crow.diff(), output_size=int(crow[-1]))


def transpose_csr(csr: Tensor) -> Tensor:
    """``A^T`` in CSR for ``A`` ``[n, m]`` in CSR: one stable sort on the column index.

    The rows of ``A`` come in order, so a stable sort leaves the columns of ``A^T`` sorted.
    """
    crow, col, val = csr.crow_indices(), csr.col_indices(), csr.values()
    n, m = csr.shape
    t_row, t_col, t_val, counts = group_by_row(col, rows_of(crow), val, m, n, col.dtype)
    return make_csr(crow_from_counts(counts, crow.dtype), t_col, t_val, (m, n))
