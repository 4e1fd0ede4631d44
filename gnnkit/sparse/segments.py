"""Index arithmetic on segments (runs of consecutive positions), without Python loops.

:func:`concat_ranges` turns ``(start, length)`` pairs into the positions they cover (the CSR rows of
a set of nodes, the nodes of a set of clusters); :func:`floyd_offsets` draws a uniform ``k``-subset
of every row's positions (neighbor sampling without replacement).
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor


def concat_ranges(starts: Tensor, lengths: Tensor) -> Tensor:
    """``cat([arange(s, s + l) for s, l in zip(starts, lengths)])``: ``[lengths.sum()]``.

    ``arange(total) + repeat(starts - offsets, lengths)`` with ``offsets`` the exclusive running
    sum of ``lengths`` (the output position where each range begins).
    """
    total = int(lengths.sum())
    shift = starts - (torch.cumsum(lengths, 0) - lengths)  # start minus output offset of each range
    return torch.arange(total, device=starts.device) + torch.repeat_interleave(shift, lengths, output_size=total)


def floyd_offsets(deg: Tensor, k: int, gen: Optional[torch.Generator]) -> Tensor:
    """``[n, k]`` distinct offsets in ``[0, deg_r)`` per row: a uniform ``k``-subset (Floyd's
    algorithm, vectorized over rows; needs ``deg_r >= k``). Step ``t`` draws ``r`` uniform in
    ``[0, j]``, ``j = deg - k + t``, and takes ``j`` itself when ``r`` was already picked: ``k``
    float64 draws per row, ``O(n k²)`` comparisons, independent of the degree."""
    n = deg.numel()
    out = torch.empty(n, k, dtype=torch.long, device=deg.device)
    for t in range(k):
        j = deg - k + t  # draw in [0, j]; on a collision take j itself
        r = (torch.rand(n, generator=gen, device=deg.device, dtype=torch.float64) * (j + 1)).long()
        r = torch.minimum(r, j)
        if t:
            r = torch.where((out[:, :t] == r[:, None]).any(1), j, r)
        out[:, t] = r
    return out
