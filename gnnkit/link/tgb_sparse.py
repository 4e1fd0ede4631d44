"""TGB ``hist_rnd`` negatives without a dense ``[rows, D]`` matrix, for wide destination ranges.

Same scheme and distribution as the dense path of :mod:`gnnkit.link.tgb_negatives` (``P`` = the
row's same-source same-time positives, ``H_s`` = its source's historical destinations):

* historical part: the row's ``H_s \\ P`` entries (a CSR range, expanded with
  :func:`gnnkit.sparse.segments.concat_ranges`) get uniform keys; sorted by (row, key), the first
  ``n_h = min(floor(K · ratio), |H_s \\ P|)`` of each row are a uniform subset;
* random part: ``m = 2K + 16`` destinations per row drawn uniformly *with* replacement; a draw in
  ``H_s ∪ P`` or equal to an earlier draw of its row is dropped, and the first ``K - n_h`` left are
  kept. Dropping repeats of a with-replacement stream gives a uniform sample without replacement,
  and dropping excluded values a uniform sample of the allowed ones. A row with too few left is
  drawn again (rounds over the short rows, vectorized); the rows kept are conditioned on an event
  symmetric in the allowed values, so their subsets stay uniform.

Used when ``D >= 8 (K + max_row |H_s ∪ P|) + 64`` (then a draw is dropped with probability below
0.3 and a second round is rare); the work is ``O(rows · (K + |H_s|))`` instead of ``O(rows · D)``.
"""
from __future__ import annotations

import torch
from torch import Tensor

from gnnkit.errors import GnnkitError
from gnnkit.sparse.segments import concat_ranges

from .edges import member


def historical(s: Tensor, g: Tensor, h_ptr: Tensor, h_vals: Tensor, p_keys: Tensor, n: int, first: int,
               last: int, kh: int, gen: torch.Generator) -> Tensor:
    """``[R, kh]`` historical picks per row (``-1`` padded), a uniform subset of ``H_s \\ P``."""
    rows = s.numel()
    lengths = h_ptr[s + 1] - h_ptr[s]
    cand = h_vals[concat_ranges(h_ptr[s], lengths)]
    row = torch.repeat_interleave(torch.arange(rows), lengths)
    ok = ~member(p_keys, g[row] * n + cand) & (cand >= first) & (cand <= last)
    row, cand = row[ok], cand[ok]
    order = torch.argsort(torch.rand(row.numel(), generator=gen))
    order = order[torch.sort(row[order], stable=True).indices]  # by row, random within a row
    row, cand = row[order], cand[order]
    counts = torch.bincount(row, minlength=rows)
    rank = torch.arange(row.numel()) - (torch.cumsum(counts, 0) - counts)[row]
    out = torch.full((rows, kh), -1, dtype=torch.long)
    keep = rank < kh
    out[row[keep], rank[keep]] = cand[keep]
    return out


def _first_valid(draws: Tensor, bad: Tensor, need: Tensor, k: int):
    """Per row the first ``need`` draws that are neither ``bad`` nor a repeat: ``[R, k]`` (-1 padded)
    and whether the row had enough."""
    sorted_vals, sidx = torch.sort(draws, dim=1, stable=True)
    dup_sorted = torch.zeros_like(bad)
    dup_sorted[:, 1:] = sorted_vals[:, 1:] == sorted_vals[:, :-1]  # later occurrences (stable sort)
    valid = ~bad & ~torch.zeros_like(bad).scatter(1, sidx, dup_sorted)
    cum = torch.cumsum(valid.long(), 1)
    take = valid & (cum <= need[:, None])
    order = torch.sort((~take).to(torch.uint8), dim=1, stable=True).indices[:, :k]
    picked = torch.where(take.gather(1, order), draws.gather(1, order), torch.full_like(order, -1))
    return picked, cum[:, -1] >= need


def random_part(s: Tensor, g: Tensor, need: Tensor, hist_keys: Tensor, p_keys: Tensor, n: int, first: int,
                last: int, k: int, gen: torch.Generator, max_rounds: int = 50) -> Tensor:
    """``[R, k]``: ``need[r]`` uniform destinations of ``[first, last] \\ (H_s ∪ P)`` per row."""
    out = torch.full((s.numel(), k), -1, dtype=torch.long)
    pending = torch.arange(s.numel())
    m = 2 * k + 16
    for _ in range(max_rounds):  # rounds over the rows still short, not a loop over rows
        if pending.numel() == 0:
            return out
        draws = torch.randint(first, last + 1, (pending.numel(), m), generator=gen)
        bad = member(hist_keys, s[pending, None] * n + draws) | member(p_keys, g[pending, None] * n + draws)
        picked, enough = _first_valid(draws, bad, need[pending], k)
        out[pending[enough]] = picked[enough]
        pending = pending[~enough]
    raise GnnkitError(f"TGB negatives: {pending.numel()} rows found too few destinations in {max_rounds} rounds")


def sparse_fits(d: int, k: int, widest: int) -> bool:
    """Whether the sparse path applies: ``D >= 8 (K + widest) + 64`` (module docstring)."""
    return d >= 8 * (k + widest) + 64
