"""Node memory and the raw-message store of TGN, as tensors.

State (``N`` nodes, memory dimension ``d``, message width ``F``):

* ``memory`` ``[N, d]`` float32 ``s_i``; ``last_update`` ``[N]`` float64, the time of the latest
  event folded into ``s_i``;
* the raw-message store: an append-only log of ``(other endpoint, t, e)`` entries (``log_other``
  ``[C]``, ``log_t`` ``[C]``, ``log_msg`` ``[C, F]``, ``size`` used) and per node ``ptr[i]``,
  ``cnt[i]``: node ``i``'s pending raw messages are the log entries ``ptr[i] .. ptr[i]+cnt[i]-1``,
  in event order.

Under TGN's protocol a node's pending messages all come from the last batch in which it was an
endpoint (its memory is updated and its messages cleared whenever it is, before the new ones are
stored), so one contiguous range per node is enough. :meth:`store` appends one batch (sorted by
node, stably, so that ranges are chronological); :meth:`pending` expands the ranges of a node set
with ``repeat_interleave``; :meth:`clear` zeroes counts. No per-node Python work anywhere.

:meth:`reset` is a tensor fill; :meth:`snapshot` / :meth:`restore` copy the state (the log up to
``size``) for the evaluation protocol's backups; :meth:`state_dict` holds tensors only.
"""
from __future__ import annotations

import torch
from torch import Tensor

from ..errors import GnnkitError

STATE_KEYS = ("memory", "last_update", "ptr", "cnt", "log_other", "log_t", "log_msg")


def endpoint_groups(src: Tensor, dst: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """The ``2B`` endpoint entries of a batch (entry ``2i`` is ``src[i]``, ``2i + 1`` is ``dst[i]``) sorted
    by node, stably: ``(node, order, uniq, counts)`` — the sorted nodes ``[2B]``, the entry each came
    from ``[2B]`` (its event is ``order // 2``), the distinct nodes ``[U]`` and their entry counts ``[U]``.
    Shared by :meth:`TemporalMemory.store` and :meth:`~gnnkit.temporal.neighbors.LastNeighbors.insert`."""
    node, order = torch.sort(torch.stack([src, dst], 1).view(-1), stable=True)
    uniq, counts = torch.unique_consecutive(node, return_counts=True)
    return node, order, uniq, counts


class TemporalMemory:
    def __init__(self, num_nodes: int, memory_dim: int, msg_dim: int, device=None, capacity: int = 1024):
        self.num_nodes, self.memory_dim, self.msg_dim = int(num_nodes), int(memory_dim), int(msg_dim)
        dev = torch.device(device) if device is not None else torch.device("cpu")
        self.memory = torch.zeros(num_nodes, memory_dim, device=dev)
        self.last_update = torch.zeros(num_nodes, dtype=torch.float64, device=dev)
        self.ptr = torch.zeros(num_nodes, dtype=torch.long, device=dev)
        self.cnt = torch.zeros(num_nodes, dtype=torch.long, device=dev)
        self.log_other = torch.zeros(capacity, dtype=torch.long, device=dev)
        self.log_t = torch.zeros(capacity, dtype=torch.float64, device=dev)
        self.log_msg = torch.zeros(capacity, msg_dim, device=dev)
        self.size = 0

    @property
    def device(self) -> torch.device:
        return self.memory.device

    def reset(self) -> None:
        """Zero memory and times, drop every pending message (tensor fills; the log is reused)."""
        self.memory.zero_()
        self.last_update.zero_()
        self.cnt.zero_()
        self.size = 0

    # -- raw-message store ----------------------------------------------------------------------
    def _reserve(self, extra: int) -> None:
        need = self.size + extra
        cap = self.log_t.numel()
        if need <= cap:
            return
        cap = max(need, 2 * cap)
        for key in ("log_other", "log_t", "log_msg"):
            old = getattr(self, key)
            new = old.new_zeros((cap,) + tuple(old.shape[1:]))
            new[: self.size] = old[: self.size]
            setattr(self, key, new)

    def store(self, src: Tensor, dst: Tensor, t: Tensor, msg: Tensor, groups=None) -> None:
        """Store the raw messages of a chronological batch of events: ``(dst, t, e)`` for ``src``
        and ``(src, t, e)`` for ``dst``. Replaces the pending messages of those nodes. ``groups``:
        :func:`endpoint_groups` of ``(src, dst)`` when the caller has it."""
        node, order, uniq, counts = endpoint_groups(src, dst) if groups is None else groups
        other = torch.stack([dst, src], 1).view(-1)
        event = torch.div(order, 2, rounding_mode="floor")  # entry i belongs to event i // 2
        m = node.numel()
        self._reserve(m)
        lo = self.size
        torch.index_select(other, 0, order, out=self.log_other[lo: lo + m])
        torch.index_select(t.to(self.log_t.dtype), 0, event, out=self.log_t[lo: lo + m])
        torch.index_select(msg.to(self.log_msg.dtype), 0, event, out=self.log_msg[lo: lo + m])
        self.ptr.index_copy_(0, uniq, torch.cumsum(counts, 0).sub_(counts).add_(lo))
        self.cnt.index_copy_(0, uniq, counts)
        self.size = lo + m

    def pending(self, n_id: Tensor) -> tuple[Tensor, Tensor]:
        """``(local, pos)``: for every pending message of the nodes ``n_id`` ``[n]``, the position
        of its node in ``n_id`` and its log position (both ``[M]``, chronological per node)."""
        c = self.cnt[n_id]
        local = torch.repeat_interleave(torch.arange(n_id.numel(), device=n_id.device), c)
        first = torch.cumsum(c, 0) - c
        pos = self.ptr[n_id][local] + torch.arange(local.numel(), device=n_id.device) - first[local]
        return local, pos

    def clear(self, n_id: Tensor) -> None:
        self.cnt.index_fill_(0, n_id, 0)

    def write(self, n_id: Tensor, memory: Tensor, last_update: Tensor) -> None:
        """Keep an update: ``s[n_id] = memory`` (detached: the graph ends at the optimizer step)."""
        self.memory.index_copy_(0, n_id, memory.detach())
        self.last_update.index_copy_(0, n_id, last_update)

    # -- backups and checkpoints ----------------------------------------------------------------
    def state_dict(self) -> dict:
        return {"memory": self.memory, "last_update": self.last_update, "ptr": self.ptr, "cnt": self.cnt,
                "log_other": self.log_other[: self.size], "log_t": self.log_t[: self.size],
                "log_msg": self.log_msg[: self.size]}

    def snapshot(self) -> dict:
        """A copy of the state (``{key: tensor}``), independent of later updates."""
        return {k: v.clone() for k, v in self.state_dict().items()}

    def restore(self, state: dict) -> None:
        """Copy ``state`` (from :meth:`snapshot` or :meth:`state_dict`) into this memory."""
        missing = [k for k in STATE_KEYS if k not in state]
        if missing:
            raise GnnkitError(f"temporal memory state lacks {', '.join(missing)}")
        if tuple(state["memory"].shape) != tuple(self.memory.shape) or state["log_msg"].size(1) != self.msg_dim:
            raise GnnkitError(f"temporal memory state has memory {list(state['memory'].shape)} and message width "
                              f"{state['log_msg'].size(1)}; this run has {list(self.memory.shape)} and {self.msg_dim}")
        for k in ("memory", "last_update", "ptr", "cnt"):
            getattr(self, k).copy_(state[k])
        self.size = 0
        self._reserve(state["log_t"].numel())
        self.size = state["log_t"].numel()
        for k in ("log_other", "log_t", "log_msg"):
            getattr(self, k)[: self.size] = state[k].to(self.device)

    load_state_dict = restore

