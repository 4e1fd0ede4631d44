"""Fixed evaluation negatives for temporal links in the TGB scheme (``hist_rnd``, Huang et al. 2023).

For each positive event ``(s, d, t)`` of the evaluated split, with ``K`` negatives and
``hist_ratio = 1/2`` (py-tgb's ``NegativeEdgeGenerator.generate_negative_samples_hist_rnd``):

* ``P = {d' : (s, d', t) is an event of the split}``: the positives of the same source at the same
  time, never used as negatives ("filtered");
* ``H_s`` = the distinct destinations of ``s`` in the historical (training) events;
* historical part: ``n_h = min(floor(K · hist_ratio), |H_s \\ P|)`` destinations drawn uniformly
  without replacement from ``H_s \\ P``;
* random part: ``K - n_h`` destinations drawn uniformly without replacement from
  ``[first_dst, last_dst] \\ (P ∪ H_s)`` (all of them when fewer remain).

Result ``[E, K]`` int64, historical picks first, ``-1`` padding where a row has fewer than ``K``.
Vectorized over chunks of rows: the candidates of a row are a dense ``[D]`` mask
(``D = last_dst - first_dst + 1``), a uniform random key per candidate, and ``topk`` of the
smallest keys among the allowed ones is a uniform subset without replacement. A chunk holds at
most ``chunk_elems`` keys. Where the range ``D`` is much wider than ``K`` plus a row's exclusions,
``method="auto"`` takes the sparse path of :mod:`gnnkit.link.tgb_sparse` (same distribution, no
``[rows, D]`` matrix). The draws differ from py-tgb's numpy stream but follow the same
distribution; they are seeded (``torch.Generator().manual_seed(seed)``).

:func:`load_or_generate` keeps them in a file beside the run (``atomic_torch_save``; read back
with ``weights_only=True``), reused only when its settings and positives match.
"""
from __future__ import annotations

import os
from typing import Dict, Optional

import torch
from torch import Tensor

from gnnkit.errors import GnnkitError
from gnnkit.fileio import atomic_torch_save
from gnnkit.sparse.segments import concat_ranges

from .tgb_sparse import historical, random_part, sparse_fits


def _csr(group: Tensor, value: Tensor, num_groups: int):
    """Values sorted by group and the ``[num_groups + 1]`` row pointer."""
    order = torch.sort(group, stable=True).indices
    ptr = torch.zeros(num_groups + 1, dtype=torch.long)
    ptr[1:] = torch.cumsum(torch.bincount(group, minlength=num_groups), 0)
    return value[order], ptr


def _scatter_rows(mask: Tensor, rows: Tensor, ptr: Tensor, values: Tensor, first: int) -> None:
    """``mask[r, values[ptr[rows[r]]:ptr[rows[r]+1]] - first] = True`` for every row ``r``."""
    starts, lengths = ptr[rows], ptr[rows + 1] - ptr[rows]
    idx = concat_ranges(starts, lengths)
    r = torch.repeat_interleave(torch.arange(rows.numel()), lengths)
    col = values[idx] - first
    ok = (col >= 0) & (col < mask.shape[1])
    mask[r[ok], col[ok]] = True


def _smallest(keys: Tensor, allowed: Tensor, k: int):
    """Columns of the ``k`` smallest keys among allowed entries per row, and whether each is real."""
    keys = torch.where(allowed, keys, torch.full_like(keys, float("inf")))
    k = min(k, keys.shape[1])
    vals, cols = torch.topk(keys, k, dim=1, largest=False, sorted=True)
    return cols, torch.isfinite(vals)


def _chunk(keys, hist, pos, first: int, k: int, ratio: float) -> Tensor:
    """The ``[R, K]`` negatives of one chunk (module docstring), ``-1`` padded."""
    hist_ok, rnd_ok = hist & ~pos, ~hist & ~pos
    kh = int(k * ratio)
    hcols, hreal = _smallest(keys, hist_ok, kh)
    n_h = hreal.sum(1, keepdim=True)
    rcols, rreal = _smallest(keys, rnd_ok, k)
    rreal &= torch.arange(rcols.shape[1])[None, :] < (k - n_h)
    hist = torch.where(hreal, hcols + first, torch.full_like(hcols, -1))
    return _compact([hist, torch.where(rreal, rcols + first, torch.full_like(rcols, -1))], k)


def _compact(parts, k: int) -> Tensor:
    """Row-wise concatenation of ``-1``-padded parts, real entries first (in order), ``[R, k]``."""
    cols = torch.cat(parts, 1)
    order = torch.sort((cols < 0).to(torch.uint8), dim=1, stable=True).indices[:, :k]
    out = cols.gather(1, order)
    return torch.cat([out, out.new_full((out.shape[0], k - out.shape[1]), -1)], 1) if out.shape[1] < k else out


def tgb_negatives(src: Tensor, dst: Tensor, t: Tensor, hist_src: Tensor, hist_dst: Tensor, *,
                  first_dst: int, last_dst: int, num_negatives: int = 100, hist_ratio: float = 0.5,
                  seed: int = 0, chunk_elems: int = 1 << 24, method: str = "auto") -> Tensor:
    """``[E, K]`` negative destinations for the events ``src, dst, t`` ``[E]`` given the historical
    (training) events ``hist_src, hist_dst`` (module docstring). ``method``: ``"dense"`` (the
    ``[rows, D]`` keys), ``"sparse"`` (:mod:`gnnkit.link.tgb_sparse`, for ``D`` much wider than ``K``
    plus a row's exclusions) or ``"auto"`` (sparse where it applies)."""
    if num_negatives < 1 or not 0.0 <= hist_ratio <= 1.0 or last_dst < first_dst or first_dst < 0:
        raise GnnkitError(f"bad TGB negative settings: num_negatives={num_negatives}, hist_ratio={hist_ratio}, "
                          f"destinations [{first_dst}, {last_dst}]")
    if method not in ("auto", "dense", "sparse"):
        raise GnnkitError(f"unknown TGB negative method {method!r}; known: auto, dense, sparse")
    src, dst, t = src.long().cpu(), dst.long().cpu(), t.cpu()
    n = 1 + max([last_dst] + [int(a.max()) for a in (src, hist_src, hist_dst) if a.numel()])
    hist_keys = torch.unique(hist_src.long().cpu() * n + hist_dst.long().cpu())
    h_vals, h_ptr = _csr(hist_keys // n, hist_keys % n, n)
    t_id = torch.unique(t, return_inverse=True)[1]
    _, gid = torch.unique(torch.stack([t_id, src]), dim=1, return_inverse=True)
    num_groups = int(gid.max()) + 1 if gid.numel() else 0
    p_vals, p_ptr = _csr(gid, dst, num_groups)
    d = last_dst - first_dst + 1
    gen = torch.Generator().manual_seed(int(seed))
    widest = int((h_ptr[1:] - h_ptr[:-1]).max()) + int((p_ptr[1:] - p_ptr[:-1]).max()) if src.numel() else 0
    if method == "sparse" or (method == "auto" and sparse_fits(d, num_negatives, widest)):
        if not sparse_fits(d, num_negatives, widest):
            raise GnnkitError(f"TGB negatives: {d} destinations are too few for the sparse method "
                              f"(needs >= 8 (K + {widest}) + 64)")
        p_keys = torch.unique(gid * n + dst)
        return _sparse(src, gid, (hist_keys, h_vals, h_ptr, p_keys), n, first_dst, last_dst, num_negatives,
                       hist_ratio, gen, max(1, chunk_elems // (3 * num_negatives + 16)))
    rows = max(1, chunk_elems // d)
    out = []
    for a in range(0, src.numel(), rows):  # chunks of rows, each fully vectorized
        s, g = src[a:a + rows], gid[a:a + rows]
        hist = torch.zeros(s.numel(), d, dtype=torch.bool)
        pos = torch.zeros_like(hist)
        _scatter_rows(hist, s, h_ptr, h_vals, first_dst)
        _scatter_rows(pos, g, p_ptr, p_vals, first_dst)
        keys = torch.rand(s.numel(), d, generator=gen)
        out.append(_chunk(keys, hist, pos, first_dst, num_negatives, hist_ratio))
    return torch.cat(out) if out else torch.zeros(0, num_negatives, dtype=torch.long)


def _sparse(src, gid, tables, n: int, first: int, last: int, k: int, ratio: float, gen, rows: int) -> Tensor:
    """The sparse path in chunks of ``rows`` rows (:mod:`gnnkit.link.tgb_sparse`)."""
    hist_keys, h_vals, h_ptr, p_keys = tables
    kh, out = int(k * ratio), []
    for a in range(0, src.numel(), rows):  # chunks of rows, each fully vectorized
        s, g = src[a:a + rows], gid[a:a + rows]
        hist = historical(s, g, h_ptr, h_vals, p_keys, n, first, last, kh, gen)
        need = k - (hist >= 0).sum(1)
        out.append(_compact([hist, random_part(s, g, need, hist_keys, p_keys, n, first, last, k, gen)], k))
    return torch.cat(out) if out else torch.zeros(0, k, dtype=torch.long)


def load_or_generate(path: str, src: Tensor, dst: Tensor, t: Tensor, hist_src: Tensor, hist_dst: Tensor,
                     **settings) -> Tensor:
    """The negatives stored at ``path`` when they were made for these positives and ``settings``
    (the keyword arguments of :func:`tgb_negatives`), else generated now and saved there."""
    meta: Dict[str, object] = {k: settings[k] for k in sorted(settings)}
    meta["num_events"] = int(src.numel())
    if os.path.isfile(path):
        saved = _load(path)
        same = saved.get("meta") == meta and all(torch.equal(saved[k], v.long().cpu() if k != "t" else v.cpu())
                                                 for k, v in (("src", src), ("dst", dst), ("t", t)))
        if same:
            return saved["neg"]
    neg = tgb_negatives(src, dst, t, hist_src, hist_dst, **settings)
    atomic_torch_save(path, {"format": "gnnkit-tgb-negatives-1", "meta": meta, "src": src.long().cpu(),
                             "dst": dst.long().cpu(), "t": t.cpu(), "neg": neg})
    return neg


def _load(path: str) -> Dict[str, object]:
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - a damaged file is regenerated, never run
        raise GnnkitError(f"{path}: cannot read the stored negatives ({type(exc).__name__}); delete it to redraw")
    if not isinstance(saved, dict) or saved.get("format") != "gnnkit-tgb-negatives-1":
        raise GnnkitError(f"{path}: not a gnnkit TGB negatives file; delete it to redraw")
    return saved


def stream_negatives(stream, split: str = "test", *, path: Optional[str] = None, **settings) -> Tensor:
    """TGB negatives for the ``split`` events of an :class:`~gnnkit.temporal.events.EventStream`
    split by :func:`gnnkit.temporal.split.temporal_split`; history = the training events;
    destinations range over ``[min dst, max dst]`` of the whole stream (as TGB's scripts do)."""
    mask = getattr(stream, f"{split}_mask", None)
    if mask is None or stream.train_mask is None:
        raise GnnkitError(f"{stream.name}: split the stream first (no {split}_mask)")
    mask, train = mask.cpu(), stream.train_mask.cpu()
    settings.setdefault("first_dst", int(stream.dst.min()))
    settings.setdefault("last_dst", int(stream.dst.max()))
    args = (stream.src.cpu()[mask], stream.dst.cpu()[mask], stream.t.cpu()[mask],
            stream.src.cpu()[train], stream.dst.cpu()[train])
    if path is None:
        return tgb_negatives(*args, **settings)
    return load_or_generate(path, *args, **settings)
