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

    def insert(self, src: Tensor, dst: Tensor, e_id: Tensor) -> None:
        """Add the events ``e_id`` ``[B]`` (chronological) as links ``src→dst`` and ``dst→src``."""
        node = torch.stack([src, dst], 1).view(-1)
        other = torch.stack([dst, src], 1).view(-1)
        eid = e_id.repeat_interleave(2)
        node, order = torch.sort(node, stable=True)
        other, eid = other[order], eid[order]
        uniq, counts = torch.unique_consecutive(node, return_counts=True)
        start = torch.cumsum(counts, 0) - counts
        group = torch.repeat_interleave(torch.arange(uniq.numel(), device=node.device), counts)
        rank = torch.arange(node.numel(), device=node.device) - start[group]
        keep = rank >= counts[group] - self.size  # only each node's last k links of this batch
        node, other, eid, rank = node[keep], other[keep], eid[keep], rank[keep]
        slot = (self.count[node] + rank) % self.size
        self.nbr[node, slot] = other
        self.eid[node, slot] = eid
        self.count[uniq] += counts

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
