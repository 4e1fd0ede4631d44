"""TGN's memory updater: message function, aggregator and GRU, applied inside autograd.

For node ``i`` with pending raw messages ``(j, t, e)`` (see :class:`TemporalMemory`):

* message ``m = [s_i ‖ s_j ‖ e ‖ φ(t − t_last(i))]`` (identity, width ``2d + F + d_t``), or an MLP
  of it (``message="mlp"``: Linear → ReLU → Linear, same width);
* aggregation over ``i``'s pending messages: ``last`` (the latest one) or ``mean`` (scatter-mean);
* update ``s_i ← GRU(m̄_i, s_i)`` and ``t_last(i) ← max t``.

Nodes without pending messages keep their memory unchanged (as in the authors' code; PyG's
``TGNMemory`` also runs the GRU on an all-zero message for them). ``s_i``, ``s_j`` are read from
the (detached) state, so the gradient of the loss reaches the message function, the time encoding
and the GRU, never earlier batches.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch_geometric.utils import scatter

from ..errors import GnnkitError
from .memory import TemporalMemory

AGGREGATORS = ("last", "mean")


class MemoryUpdater(nn.Module):
    def __init__(self, memory_dim: int, msg_dim: int, time_dim: int, aggregator: str = "last",
                 message: str = "identity"):
        super().__init__()
        if aggregator not in AGGREGATORS:
            raise GnnkitError(f"unknown aggregator {aggregator!r}; known: {', '.join(AGGREGATORS)}")
        if message not in ("identity", "mlp"):
            raise GnnkitError(f"unknown message function {message!r}; known: identity, mlp")
        self.aggregator = aggregator
        width = 2 * memory_dim + msg_dim + time_dim
        self.message_mlp = (nn.Sequential(nn.Linear(width, width), nn.ReLU(), nn.Linear(width, width))
                            if message == "mlp" else None)
        self.cell = nn.GRUCell(width, memory_dim)

    def messages(self, mem: TemporalMemory, s: Tensor, last: Tensor, local: Tensor, pos: Tensor,
                 time_enc: nn.Module) -> tuple[Tensor, Tensor]:
        """Messages for log positions ``pos`` of the nodes ``local``, as the constant part
        ``[s_i ‖ s_j ‖ e]`` ``[M, 2d + F]`` and ``φ(Δt)`` ``[M, d_t]`` (identity), or as one
        ``[M, 2d + F + d_t]`` tensor and ``None`` (MLP)."""
        const = torch.cat([s[local], mem.memory[mem.log_other[pos]], mem.log_msg[pos]], dim=-1)
        phi = time_enc(mem.log_t[pos] - last[local])
        if self.message_mlp is None:
            return const, phi
        return self.message_mlp(torch.cat([const, phi], -1)), None

    def gru(self, x: Tensor, phi, h: Tensor) -> Tensor:
        """``GRUCell([x ‖ phi], h)`` with the input product split in two, so that autograd forms
        no gradient for the constant part ``x`` (memories and raw features)."""
        cell = self.cell
        if phi is None:
            gi = F.linear(x, cell.weight_ih, cell.bias_ih)
        else:
            a = x.size(1)
            gi = F.linear(x, cell.weight_ih[:, :a], cell.bias_ih) + F.linear(phi, cell.weight_ih[:, a:])
        gh = F.linear(h, cell.weight_hh, cell.bias_hh)
        i_r, i_z, i_n = gi.chunk(3, 1)
        h_r, h_z, h_n = gh.chunk(3, 1)
        r, z = torch.sigmoid(i_r + h_r), torch.sigmoid(i_z + h_z)
        n = torch.tanh(i_n + r * h_n)
        return n + z * (h - n)

    def forward(self, mem: TemporalMemory, n_id: Tensor, time_enc: nn.Module) -> tuple[Tensor, Tensor]:
        """Updated ``memory`` ``[n, d]`` and ``last_update`` ``[n]`` of the unique nodes ``n_id``;
        the state itself is not changed (see :meth:`TemporalMemory.write`)."""
        s, last = mem.memory[n_id], mem.last_update[n_id]
        cnt = mem.cnt[n_id]
        has = (cnt > 0).nonzero().view(-1)
        if has.numel() == 0:
            return s, last
        if self.aggregator == "last":
            # a node's pending entries are contiguous and chronological: the latest is the last one
            pos = mem.ptr[n_id[has]] + cnt[has] - 1
            x, phi = self.messages(mem, s, last, has, pos, time_enc)
            t_new = mem.log_t[pos]
        else:
            local, pos = mem.pending(n_id)
            x, phi = self.messages(mem, s, last, local, pos, time_enc)
            x = scatter(x, local, dim=0, dim_size=n_id.numel(), reduce="mean")[has]
            phi = None if phi is None else scatter(phi, local, dim=0, dim_size=n_id.numel(), reduce="mean")[has]
            t_new = scatter(mem.log_t[pos], local, dim=0, dim_size=n_id.numel(), reduce="max")[has]
        new = self.gru(x, phi, s[has])
        return s.index_copy(0, has, new), last.index_copy(0, has, t_new)
