"""Rows owned by other ranks, asked for and answered in batched rounds: :class:`Exchange`.

The only module of :mod:`gnnkit.partitioned` that talks to ``torch.distributed``; it uses
``all_to_all_single`` (present on gloo and NCCL; uneven splits) and ``all_gather``. One *round*
answers one batch of global ids ``ids`` ``[m]``:

1. the requester splits ``ids`` by owner (the book: ``owner[v]``, ``local[v]``); its own ids are
   answered locally; the others are made distinct (one ask per id per round, whatever the repeats)
   and grouped by owner;
2. one ``all_to_all_single`` of an int64 header ``[P, 1 + c]`` per rank: how many rows it asks of
   each rank, plus ``c`` words of the round (e.g. the fanout and a sampling seed);
3. one ``all_to_all_single`` of the asked rows' LOCAL indices in their owners (so an owner answers
   without looking anything up);
4. each owner answers the rows asked of it (the round's ``answer`` function on its part), and one
   more ``all_to_all_single`` per answer tensor sends them back (rows of any dtype, as bytes); a
   variable-length answer (an adjacency row) first sends each row's length.

Every rank must call the same rounds in the same order (lockstep: each sampler step and each
feature read is one round on every rank, with empty requests where a rank needs nothing). With one
process, or inside :func:`gnnkit.distributed.local_only`, no collective runs and remote ids are refused.
``stats`` counts rounds and the bytes this rank sent and received; ``log`` (when a list) records,
per round, the global ids this rank asked of each owner and those it answered to each requester.
"""
from __future__ import annotations

from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch
import torch.distributed as dist
from torch import Tensor

from gnnkit import distributed as gdist
from gnnkit.errors import GnnkitError
from gnnkit.sparse.segments import concat_ranges

Answer = Callable[[Tensor, Tensor], Tuple[Tensor, List[Tensor]]]  # (local rows, header row) -> (counts, values)


def _as_bytes(t: Tensor) -> Tensor:
    """``t`` ``[n, ...]`` as uint8 ``[n, row_bytes]`` (bool/half/any dtype travels as bytes)."""
    row_bytes = t[0].numel() * t.element_size() if t.shape[0] else int(torch.tensor(t.shape[1:]).prod()) * t.element_size()
    return t.contiguous().reshape(-1).view(torch.uint8).reshape(t.shape[0], row_bytes)


def _from_bytes(b: Tensor, like: Tensor) -> Tensor:
    return b.contiguous().view(like.dtype).reshape(b.shape[0], *like.shape[1:])


class Exchange:
    """Batched requests to the owners of global ids (see the module docstring)."""

    def __init__(self, book, global_ids: Tensor, rank: int, world: int):
        self.book, self.global_ids, self.rank, self.world = book, global_ids, int(rank), int(world)
        self.stats: Dict[str, int] = {"rounds": 0, "bytes_sent": 0, "bytes_received": 0, "ids_asked": 0}
        self.log: Optional[list] = None

    # -- collectives --------------------------------------------------------------------------------
    def live(self) -> bool:
        return self.world > 1 and gdist.is_initialized()

    def _device(self) -> torch.device:
        if dist.get_backend() == "nccl":
            return torch.device("cuda", torch.cuda.current_device())
        return torch.device("cpu")

    def _a2a(self, send: Tensor, counts: Sequence[int], recv_counts: Sequence[int]) -> Tensor:
        """``send`` ``[Σ counts, ...]`` grouped by destination -> ``[Σ recv_counts, ...]`` grouped by source."""
        dev = self._device()
        out = torch.empty((int(sum(recv_counts)), *send.shape[1:]), dtype=send.dtype, device=dev)
        dist.all_to_all_single(out, send.to(dev), [int(c) for c in recv_counts], [int(c) for c in counts])
        row = send[0].numel() * send.element_size() if send.shape[0] else out[:1].numel() * out.element_size()
        self.stats["bytes_sent"] += row * (int(sum(counts)) - int(counts[self.rank]))
        self.stats["bytes_received"] += row * (int(sum(recv_counts)) - int(recv_counts[self.rank]))
        return out.cpu()

    def _a2a_rows(self, rows: Tensor, counts: Sequence[int], recv_counts: Sequence[int]) -> Tensor:
        """:meth:`_a2a` of rows of any dtype and shape (sent as bytes)."""
        raw = _as_bytes(rows)
        return _from_bytes(self._a2a(raw, counts, recv_counts), rows)

    def all_gather(self, t: Tensor, sizes: Sequence[int]) -> List[Tensor]:
        """Every rank's ``t`` (rank ``q`` holds ``sizes[q]`` rows), padded to the largest for the call."""
        if not self.live():
            return [t]
        dev, big = self._device(), max(sizes)
        pad = torch.zeros((big, *t.shape[1:]), dtype=t.dtype, device=dev)
        pad[: t.shape[0]] = t.to(dev)
        outs = [torch.empty_like(pad) for _ in range(self.world)]
        dist.all_gather(outs, pad)
        self.stats["bytes_sent"] += pad.numel() * pad.element_size() * (self.world - 1)
        return [o[:s].cpu() for o, s in zip(outs, sizes)]

    # -- one round ------------------------------------------------------------------------------------
    def round(self, ids: Tensor, answer: Answer, header: Sequence[int] = (),
              fixed: bool = False) -> Tuple[Tensor, List[Tensor]]:
        """Answer the global ``ids`` ``[m]``: ``(counts [m], values)`` where ``values[j]`` holds the
        rows ``answer`` gives, ``counts[i]`` of them for ``ids[i]``, in the order of ``ids``.
        ``answer(local_rows [k], header_row [1 + c]) -> (counts [k], values)`` runs on the owner
        (``header_row`` = the requester's header; ``[0, *header]`` of this rank for its own ids).
        ``fixed``: every id gets exactly one row (features), so the lengths are not sent."""
        ids = ids.long()
        owner, local = self.book.locate(ids)
        remote = owner != self.rank
        mine = (~remote).nonzero().view(-1)
        head = torch.tensor([0, *header], dtype=torch.long)
        own_counts, own_values = answer(local[mine], head)
        if not bool(remote.any()) and not self.live():
            return self._merge(ids.numel(), mine, own_counts, own_values, None, None, None)
        if not self.live():
            raise GnnkitError(f"{int(remote.sum())} ids are owned by other ranks, but no process group is "
                              "running (a partitioned store answers remote rows under torchrun only)")
        where = remote.nonzero().view(-1)
        uniq, inverse = torch.unique(ids[where], return_inverse=True)  # sorted: grouped by owner already?
        u_owner, u_local = self.book.locate(uniq)
        order = torch.sort(u_owner, stable=True).indices
        uniq, u_owner, u_local = uniq[order], u_owner[order], u_local[order]
        inverse = torch.empty_like(order).index_copy_(0, order, torch.arange(order.numel()))[inverse]
        counts = torch.bincount(u_owner, minlength=self.world)
        got_counts, got_values = self._serve(u_local, counts, head, answer, fixed)
        self.stats["rounds"] += 1
        self.stats["ids_asked"] += int(uniq.numel())
        if self.log is not None:
            self.log[-1]["asked"] = {int(q): uniq[u_owner == q].tolist() for q in range(self.world)}
        return self._merge(ids.numel(), mine, own_counts, own_values, where, inverse, (got_counts, got_values))

    def _serve(self, u_local: Tensor, counts: Tensor, head: Tensor, answer: Answer,
               fixed: bool) -> Tuple[Tensor, List[Tensor]]:
        """Steps 2-4 of the module docstring: send the asks, answer those received, send the answers back."""
        send_head = torch.cat([counts.view(-1, 1), head[1:].expand(self.world, -1)], 1)
        recv_head = self._a2a(send_head, [1] * self.world, [1] * self.world)
        recv_counts = recv_head[:, 0].tolist()
        asked = self._a2a(u_local, counts.tolist(), recv_counts)
        if self.log is not None:
            ends = torch.cumsum(recv_head[:, 0], 0).tolist()
            answered = {q: self.global_ids[asked[e - c:e]].tolist() for q, (c, e) in enumerate(zip(recv_counts, ends))}
            self.log.append({"answered": answered})
        seg_counts, seg_values = [], []
        begin = 0
        for q in range(self.world):  # one answer call per requester (its own header): a loop over ranks
            c, v = answer(asked[begin:begin + recv_counts[q]], recv_head[q])
            seg_counts.append(c)
            seg_values.append(v)
            begin += recv_counts[q]
        if fixed:
            back_counts = torch.ones(int(counts.sum()), dtype=torch.long)
        else:
            back_counts = self._a2a(torch.cat(seg_counts), recv_counts, counts.tolist())
        per_rank = [int(c.sum()) for c in seg_counts]  # value rows sent to each requester
        back_rows = [int(c.sum()) for c in torch.split(back_counts, counts.tolist())]  # received from each owner
        values = [self._a2a_rows(torch.cat([v[j] for v in seg_values]), per_rank, back_rows)
                  for j in range(len(seg_values[0]))]
        return back_counts, values

    def _merge(self, m: int, mine: Tensor, own_counts: Tensor, own_values: List[Tensor], where: Optional[Tensor],
               inverse: Optional[Tensor], got) -> Tuple[Tensor, List[Tensor]]:
        """The answers in the order of the ``m`` ids: own rows at ``mine``, asked rows at ``where``
        (distinct asked row ``inverse[i]`` answers ``ids[where[i]]``)."""
        counts = torch.zeros(m, dtype=torch.long)
        counts[mine] = own_counts
        if where is not None:
            got_counts, got_values = got
            counts[where] = got_counts[inverse]
        ptr = torch.cumsum(counts, 0) - counts
        values = []
        for j, own in enumerate(own_values):
            out = torch.empty((int(counts.sum()), *own.shape[1:]), dtype=own.dtype)
            out[concat_ranges(ptr[mine], own_counts)] = own
            if where is not None:
                g_counts, g_vals = got[0], got[1][j]
                g_ptr = torch.cumsum(g_counts, 0) - g_counts
                out[concat_ranges(ptr[where], counts[where])] = g_vals[concat_ranges(g_ptr[inverse], g_counts[inverse])]
            values.append(out)
        return counts, values
