"""The ``k`` most recent temporal neighbors of every node, in a tensor ring buffer.

State: ``nbr`` ``[N, k]`` neighbor ids, ``eid`` ``[N, k]`` the global event id that made each
link (``-1``: empty slot), ``count`` ``[N]`` links inserted so far. The next link of node ``i``
goes to slot ``count[i] % k``, so the buffer always holds the node's last ``min(count[i], k)``
links. :meth:`insert` adds a chronological batch of events in both directions with one stable
sort (no Python loop over nodes); within a batch only each node's last ``k`` links are written.
Events are inserted after the batch that contains them has been scored, so no event is ever its
own neighbor. Times and features of a link are read from the stream through ``eid``.
"""
from __future__ import annotations

import torch
from torch import Tensor

from ..errors import GnnkitError
from .memory import endpoint_groups


class LastNeighbors:
    def __init__(self, num_nodes: int, size: int = 10, device=None):
        if size < 1:
            raise GnnkitError(f"the number of temporal neighbors must be >= 1, got {size}")
        self.num_nodes, self.size = int(num_nodes), int(size)
        dev = torch.device(device) if device is not None else torch.device("cpu")
        self.nbr = torch.zeros(num_nodes, size, dtype=torch.long, device=dev)
        self.eid = torch.full((num_nodes, size), -1, dtype=torch.long, device=dev)
        self.count = torch.zeros(num_nodes, dtype=torch.long, device=dev)

    def reset(self) -> None:
        self.eid.fill_(-1)
        self.count.zero_()

    def insert(self, src: Tensor, dst: Tensor, e_id: Tensor, groups=None) -> None:
        """Add the events ``e_id`` ``[B]`` (chronological) as links ``src→dst`` and ``dst→src``.
        ``groups``: :func:`~gnnkit.temporal.memory.endpoint_groups` of ``(src, dst)`` when the caller has it."""
        node, order, uniq, counts = endpoint_groups(src, dst) if groups is None else groups
        other = torch.stack([dst, src], 1).view(-1).index_select(0, order)
        eid = e_id.index_select(0, torch.div(order, 2, rounding_mode="floor"))
        start = torch.cumsum(counts, 0).sub_(counts)
        group = torch.repeat_interleave(torch.arange(uniq.numel(), device=node.device), counts)
        rank = torch.arange(node.numel(), device=node.device) - start.index_select(0, group)
        if int(counts.max()) > self.size:  # only each node's last k links of this batch (distinct slots)
            keep = (rank >= counts.index_select(0, group) - self.size).nonzero().view(-1)
            node, other, eid, rank = (x.index_select(0, keep) for x in (node, other, eid, rank))
        flat = node * self.size + (self.count.index_select(0, node) + rank) % self.size  # [node, slot]
        self.nbr.view(-1).index_copy_(0, flat, other)
        self.eid.view(-1).index_copy_(0, flat, eid)
        self.count.index_add_(0, uniq, counts)

    def __call__(self, n_id: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``(nbr, eid, mask)`` ``[n, k]`` for the nodes ``n_id`` ``[n]``; ``mask`` marks filled slots."""
        eid = self.eid.index_select(0, n_id)
        return self.nbr.index_select(0, n_id), eid, eid >= 0

    def state_dict(self) -> dict:
        return {"nbr": self.nbr, "eid": self.eid, "count": self.count}

    def snapshot(self) -> dict:
        return {k: v.clone() for k, v in self.state_dict().items()}

    def restore(self, state: dict) -> None:
        if tuple(state.get("eid", torch.empty(0)).shape) != tuple(self.eid.shape):
            raise GnnkitError(f"neighbor buffer state has shape {list(state.get('eid', torch.empty(0)).shape)}, "
                              f"this run has {list(self.eid.shape)}")
        for k in ("nbr", "eid", "count"):
            getattr(self, k).copy_(state[k])

    load_state_dict = restore
