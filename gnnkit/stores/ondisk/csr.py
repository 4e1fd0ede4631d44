"""The CSR by destination of a store, from an in-memory ``edge_index`` or from a stream of edges.

:func:`write_csr_of` (a graph in memory) writes exactly the CSR of
:func:`gnnkit.stores.in_neighbor_csr` (the in-memory store's: rows by destination, each row in the
graph's edge order) plus, when reading the CSR row by row does not give back the graph's own edge
order, ``edge_order`` int64 ``[E]`` (edge ``e`` is CSR entry ``edge_order[e]``), so that the on-disk
store's ``edge_index()`` is the graph's, bit for bit.

:func:`write_streamed_csr` never holds the edges: ``chunks()`` yields ``(dst, src)`` int64 pairs
(``src -> dst``) and is called twice. Pass 1 counts each row's entries; pass 2 scatters the
sources into a scratch file mapped in memory (``[Σ counts]``, row after row, via one cursor per
row); pass 3 reads the scratch file block of rows by block of rows, sorts each row, drops
repeated sources and appends the rows to ``indices`` and their ends to ``indptr``. Memory: two
int64 ``[N + 1]`` arrays (row offsets, cursors) plus one chunk; the rows come out sorted and distinct.
"""
from __future__ import annotations

from typing import Callable, Iterator, Optional, Tuple

import torch
from torch import Tensor

from gnnkit.stores.memory import csr_order, in_neighbor_csr

from .writer import StoreWriter

INT32_MAX = 2**31 - 1
BLOCK = 1 << 23  # scratch entries sorted at a time in pass 3


def index_dtype(num_nodes: int) -> torch.dtype:
    """``indices``' dtype: int32 while node ids fit, else int64."""
    return torch.int32 if num_nodes <= INT32_MAX else torch.int64


def csr_edges(indptr: Tensor, indices: Tensor, by_source: bool) -> Tensor:
    """``[2, E]`` int64 edges ``(source, target)`` read off the CSR row by row: ``(indices, row)``,
    or ``(row, indices)`` for a CSR built from the reversed edges (``by_source``: the in-memory
    store reads a symmetric adjacency's ``edge_index`` reversed, see :func:`~gnnkit.stores.in_neighbor_csr`)."""
    n = indptr.numel() - 1
    row = torch.repeat_interleave(torch.arange(n), indptr[1:] - indptr[:-1], output_size=indices.numel())
    col = indices.long()
    return torch.stack([row, col]) if by_source else torch.stack([col, row])


def write_csr_of(writer: StoreWriter, edge_index: Tensor, num_nodes: int, by_source: bool,
                 edge_weight: Optional[Tensor] = None) -> int:
    """Write ``indptr``, ``indices`` (+ ``edge_order``, ``edge_weight`` in CSR order) of
    ``edge_index`` ``[2, E]``, the CSR read as :class:`~gnnkit.stores.InMemoryGraphStore` reads it
    (``by_source``: its ``csr_by_source``); returns ``E``."""
    edge_index = edge_index.cpu()
    indptr, indices = in_neighbor_csr(edge_index, num_nodes, by_source)
    writer.write("indptr", indptr, torch.int64, role="graph")
    writer.write("indices", indices, index_dtype(num_nodes), role="graph")
    perm = csr_order(edge_index, by_source)  # CSR entry p is edge perm[p]; None: already in order
    if perm is not None:
        order = torch.empty_like(perm)
        order[perm] = torch.arange(perm.numel())
        writer.write("edge_order", order, torch.int64, role="graph")
    if edge_weight is not None:
        w = edge_weight.cpu().view(-1)
        writer.write("edge_weight", w if perm is None else w[perm], role="graph")
    return int(indices.numel())


def _count(chunks, n: int, tick) -> Tensor:
    """Pass 1: ``ptr`` int64 ``[N + 1]``, the running sum of each row's entry count (``ptr[0] = 0``)."""
    ptr = torch.zeros(n + 1, dtype=torch.long)
    counts = ptr[1:]
    for dst, _ in chunks():
        counts.index_add_(0, dst, torch.ones_like(dst))
        tick(dst.numel())
    torch.cumsum(counts, 0, out=counts)
    return ptr


def _scatter(chunks, raw: Tensor, ptr: Tensor, tick) -> None:
    """Pass 2: ``raw[cursor[dst] + rank] = src``, ``rank`` = the entry's place among the chunk's
    entries of that row; then the cursors move past them (``cursor`` starts at ``ptr[:-1]``)."""
    cursor = ptr[:-1].clone()
    for dst, src in chunks():
        d, order = torch.sort(dst)
        rows, counts = torch.unique_consecutive(d, return_counts=True)
        first = torch.cumsum(counts, 0) - counts
        rank = torch.arange(d.numel()) - torch.repeat_interleave(first, counts, output_size=d.numel())
        raw[cursor[d] + rank] = src[order].to(raw.dtype)
        cursor[rows] += counts
        tick(dst.numel())
    del cursor


def _compact(raw: Tensor, ptr: Tensor, indptr_out, indices_out, tick) -> int:
    """Pass 3: each row ``raw[ptr[i]:ptr[i + 1]]`` sorted and deduplicated, appended to the two
    arrays, blocks of rows of about ``BLOCK`` entries at a time; returns ``E``."""
    n = ptr.numel() - 1
    bounds = torch.searchsorted(ptr[1:], torch.arange(0, int(ptr[-1]), BLOCK), right=True).tolist()
    bounds = sorted(set([0, *bounds, n]))
    indptr_out.append(torch.zeros(1, dtype=torch.long))
    total = 0
    for a, b in zip(bounds[:-1], bounds[1:]):
        seg = raw[int(ptr[a]):int(ptr[b])].long()
        local = torch.repeat_interleave(torch.arange(b - a), ptr[a + 1:b + 1] - ptr[a:b], output_size=seg.numel())
        key = torch.sort(local * n + seg).values
        keep = torch.ones(key.numel(), dtype=torch.bool)
        keep[1:] = key[1:] != key[:-1]
        key = key[keep]
        indices_out.append(key % n)
        indptr_out.append(total + torch.cumsum(torch.bincount(key // n, minlength=b - a), 0))
        total += key.numel()
        tick(seg.numel())
    return total


def write_streamed_csr(writer: StoreWriter, chunks: Callable[[], Iterator[Tuple[Tensor, Tensor]]],
                       num_nodes: int, progress: Optional[Callable[[str, int], Callable[[int], None]]] = None) -> int:
    """Write ``indptr``/``indices`` of the edges ``chunks()`` yields (see the module docstring),
    with sorted, distinct rows; returns ``E``. ``progress(stage, total)`` returns a ``tick(n)``."""
    progress = progress or (lambda stage, total: (lambda k: None))
    ptr = _count(chunks, num_nodes, progress("edges: count", 0))  # [N + 1]: row i of the scratch copy
    total = int(ptr[-1])
    raw = writer.scratch("raw", index_dtype(num_nodes), total)
    _scatter(chunks, raw, ptr, progress("edges: scatter", total))
    indptr = writer.array("indptr", torch.int64, role="graph")
    indices = writer.array("indices", index_dtype(num_nodes), role="graph")
    e = _compact(raw, ptr, indptr, indices, progress("edges: sort rows", total))
    del raw
    return e
