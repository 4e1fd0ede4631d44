"""EdgeBank (Poursafaei et al., NeurIPS 2022), TGB's reference heuristic: a model with no training.

It scores a query ``(s, d)`` 1 when the edge ``s -> d`` is in its memory, else 0:

* ``memory="unlimited"``: every edge seen so far;
* ``memory="window"`` (TGB's ``fixed_time_window``): the edges last seen at a time ``>= prev_t``.
  From the history times: ``prev_t = t_min + (1 - ratio)(t_max - t_min)``, ``cur_t = t_max``, window
  length ``w = cur_t - prev_t``; every update with newer events moves ``cur_t`` to their maximum and
  ``prev_t = cur_t - w``.

Evaluation follows TGB's loop (validation, then test with the validation events added by
:meth:`EdgeBank.extend`, the window length kept from :meth:`EdgeBank.fit`): the queried events are taken in chronological batches of
``batch_size``; a batch is scored with the memory of the history and of the earlier batches, then
its positives enter the memory. Vectorized without that loop: the events (history then queries,
chronological) get positions; the last occurrence of a pair before batch ``b``'s first position is
one ``searchsorted`` over ``pair id · (L + 1) + position`` sorted; ``cur_t`` before batch ``b`` is the
time of the event just before it.
"""
from __future__ import annotations

from typing import Tuple

import torch
from torch import Tensor

from gnnkit.errors import GnnkitError

MODES = ("unlimited", "window")


class EdgeBank:
    """EdgeBank over a history of events (module docstring). ``fit(src, dst, t)`` stores the
    history; :meth:`score_stream` scores later events and their negatives."""

    def __init__(self, memory: str = "unlimited", time_window_ratio: float = 0.15, batch_size: int = 200):
        if memory not in MODES:
            raise GnnkitError(f"unknown EdgeBank memory {memory!r}; known: {', '.join(MODES)}")
        if not 0.0 < time_window_ratio <= 1.0 or batch_size < 1:
            raise GnnkitError(f"need 0 < time_window_ratio <= 1 and batch_size >= 1, got "
                              f"{time_window_ratio}, {batch_size}")
        self.memory, self.ratio, self.batch_size = memory, float(time_window_ratio), int(batch_size)
        self.hist, self.window = None, 0.0

    def fit(self, src: Tensor, dst: Tensor, t: Tensor) -> "EdgeBank":
        """Remember the history events ``[H]`` (chronological); the window length ``w`` is fixed
        from their times here, as TGB fixes it when the predictor is built."""
        if src.numel() == 0:
            raise GnnkitError("EdgeBank needs at least one history event")
        self.hist = (src.long().cpu(), dst.long().cpu(), t.double().cpu())
        t_min, t_max = float(self.hist[2].min()), float(self.hist[2].max())
        self.window = t_max - (t_min + (t_max - t_min) * (1.0 - self.ratio))
        return self

    def extend(self, src: Tensor, dst: Tensor, t: Tensor) -> "EdgeBank":
        """Add later events to the memory (TGB's ``update_memory`` after scoring them); ``w`` stays."""
        if self.hist is None:
            raise GnnkitError("EdgeBank: call fit(history) first")
        if src.numel() and float(t.min()) < float(self.hist[2].max()):
            raise GnnkitError("EdgeBank: events must be added in chronological order")
        self.hist = tuple(torch.cat([a, b.to(a.dtype).cpu()]) for a, b in zip(self.hist, (src, dst, t)))
        return self

    def score_stream(self, src: Tensor, dst: Tensor, t: Tensor, neg_dst: Tensor) -> Tuple[Tensor, Tensor]:
        """Scores ``[E]`` of the events ``src -> dst`` at ``t`` and ``[E, K]`` of ``src -> neg_dst``
        (``-1`` padding scores 0), each batch with the memory before it (module docstring)."""
        if self.hist is None:
            raise GnnkitError("EdgeBank: call fit(history) first")
        hs, hd, ht = self.hist
        src, dst, t, neg_dst = src.long().cpu(), dst.long().cpu(), t.double().cpu(), neg_dst.long().cpu()
        e, h = src.numel(), hs.numel()
        if neg_dst.dim() != 2 or neg_dst.shape[0] != e:
            raise GnnkitError(f"negatives must be [E={e}, K], got {tuple(neg_dst.shape)}")
        if e and float(t.min()) < float(ht.max()):
            raise GnnkitError("EdgeBank: the scored events must not precede the history")
        all_s, all_d, all_t = torch.cat([hs, src]), torch.cat([hd, dst]), torch.cat([ht, t])
        k = neg_dst.shape[1]
        q_s = torch.cat([src, src.repeat_interleave(k)])
        q_d = torch.cat([dst, neg_dst.reshape(-1)])
        cut = h + (torch.arange(e) // self.batch_size) * self.batch_size  # first position of each batch
        q_cut = torch.cat([cut, cut.repeat_interleave(k)])
        last = _last_before(all_s, all_d, q_s, q_d, q_cut)
        hit = last >= 0
        if self.memory == "window":
            cur_t = all_t[q_cut - 1]
            hit &= all_t[last.clamp_min(0)] >= cur_t - self.window
        hit &= q_d >= 0
        score = hit.double()
        return score[:e], score[e:].view(e, k)


def _last_before(s: Tensor, d: Tensor, q_s: Tensor, q_d: Tensor, q_cut: Tensor) -> Tensor:
    """For each query, the last position ``< q_cut`` of an event ``q_s -> q_d`` (``-1`` if none)."""
    length = s.numel()
    n = 1 + max(int(a.max()) for a in (s, d, q_s, q_d) if a.numel())
    keys, inv = torch.unique(torch.cat([s * n + d, q_s * n + q_d.clamp_min(0)]), return_inverse=True)
    ev, q = inv[:length], inv[length:]
    comp = torch.sort(ev * (length + 1) + torch.arange(length)).values
    j = torch.searchsorted(comp, q * (length + 1) + q_cut) - 1
    jc = j.clamp_min(0)
    found = (j >= 0) & (comp[jc] // (length + 1) == q)
    return torch.where(found, comp[jc] % (length + 1), torch.full_like(j, -1))
