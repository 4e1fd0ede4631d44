"""Per-layer bipartite blocks around a set of seed nodes.

A model with ``L`` graph layers run on the seeds needs their ``L``-hop neighborhood: hop ``h`` takes
the current node set (seeds first) as rows and adds the new neighbors as columns after them, so
block ``h`` is ``[n_h, n_{h+1}]`` and its rows are the first rows of its columns. :func:`expand` runs
the hops with any one-hop rule (uniform neighbor samples, the exact rows of a normalized adjacency)
and returns the blocks in *layer* order (the last hop feeds the first layer); :func:`row_block` is
the exact rule: rows of a normalized adjacency with their columns relabeled to batch-local ids.
"""
from __future__ import annotations

from typing import Callable, List, Sequence, Tuple

import torch
from torch import Tensor

from .adjacency import Adjacency
from .build import make_csr
from .segments import concat_ranges
from .subgraph import relabel

#: ``hop(targets [n_t], k) -> (block [n_t, n_t + n_new], new global ids [n_new])``
Hop = Callable[[Tensor, object], Tuple[Adjacency, Tensor]]


def expand(seeds: Tensor, per_hop: Sequence, hop: Hop) -> Tuple[Tensor, List[Adjacency]]:
    """``(n_id, blocks)``: ``len(per_hop)`` hops from ``seeds``, hop ``h`` built by
    ``hop(n_id, per_hop[h])``; ``n_id`` ``[n_L]`` holds the seeds, then each hop's new ids, and
    ``blocks[l]`` is model layer ``l``'s block (the reverse of the hop order)."""
    n_id, blocks = seeds, []
    for k in per_hop:
        block, new = hop(n_id, k)
        blocks.append(block)
        n_id = torch.cat([n_id, new])
    return n_id, blocks[::-1]


def row_block(adj: Adjacency, rows: Tensor, lid: Tensor) -> Tuple[Adjacency, Tensor]:
    """``(A[rows, rows ‖ halo], halo)``: the rows ``rows`` ``[n]`` of ``adj`` with their columns
    relabeled (``rows`` as ``0..n-1`` in order, then the other columns, the halo, ascending).
    ``lid`` is a ``[N]`` buffer of ``-1`` (restored on return). The values are ``adj``'s own."""
    crow = adj.csr.crow_indices()  # gather first, widen after: O(rows), not O(N), per call
    start = crow[rows].long()
    cnt = crow[rows + 1].long() - start
    pos = concat_ranges(start, cnt)
    local, halo = relabel(lid, rows, adj.csr.col_indices()[pos].long())
    new_crow = torch.zeros(rows.numel() + 1, dtype=torch.long, device=rows.device)
    torch.cumsum(cnt, 0, out=new_crow[1:])
    csr = make_csr(new_crow, local, adj.csr.values()[pos], (rows.numel(), rows.numel() + halo.numel()))
    return Adjacency(csr), halo


def exact_blocks(adj: Adjacency, seeds: Tensor, num_layers: int, lid: Tensor) -> Tuple[Tensor, List[Adjacency]]:
    """The exact ``num_layers``-hop neighborhood of ``seeds`` as per-layer blocks of ``adj``:
    :func:`expand` with :func:`row_block` as the hop."""
    return expand(seeds, [None] * num_layers, lambda targets, _: row_block(adj, targets, lid))
