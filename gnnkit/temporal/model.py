"""TGN (Rossi et al., 2020): memory + temporal graph attention embedding + link predictor.

For a batch of ``B`` chronological events ``(src, dst, t)`` with negative destinations ``neg``
(:meth:`TGN.score`):

1. queries: the ``Q = 3B`` (node, time) pairs ``src``, ``dst``, ``neg`` at the event times (the
   unique nodes among them when the embedding does not depend on the query time), and each query
   node's last ``k`` temporal neighbors (``LastNeighbors``, all from earlier batches);
2. the memory of every unique query and neighbor node is brought up to date from its pending raw
   messages (``MemoryUpdater``, inside autograd); ``h⁰ = s`` (``+ W_x x`` with node features);
3. embedding: one graph-attention layer with ``heads`` heads over the valid neighbor links
   (:mod:`gnnkit.temporal.embedding`: the ``TransformerConv`` layer of PyG's example, the
   default, or the authors' ``TemporalAttention``); the link time feature is ``φ(t_query − t_link)``
   for the former and ``φ(t_last(u) − t_link)`` (neighbor ``u``'s last update from step 2) for
   the latter, as in each reference;
4. link logits ``MLP([z_src ‖ z_dst])`` for the positive and the negative pairs.

:meth:`TGN.commit` then applies the rest of the memory protocol: the update of step 2 is kept for
the positive pairs' nodes (their pending messages consumed), the batch's own raw messages are
stored and its events enter the neighbor buffers. So an event never sees itself: neither its
message nor its link exists while it is scored.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import GnnkitError
from .embedding import EMBEDDINGS
from .events import EventBatch, EventStream
from .memory import TemporalMemory
from .neighbors import LastNeighbors
from .time_encoding import TimeEncoding
from .updater import MemoryUpdater


@dataclass
class BatchContext:
    """What :meth:`TGN.score` computed that :meth:`TGN.commit` needs."""

    n_id: Tensor
    memory: Tensor
    last_update: Tensor
    pos_index: Tensor  # positions in n_id of the positive pairs' nodes


class TGN(nn.Module):
    def __init__(self, msg_dim: int, *, memory_dim: int = 100, time_dim: int = 100, embedding_dim: int = 100,
                 node_dim: int = 0, heads: int = 2, dropout: float = 0.1, aggregator: str = "last",
                 message: str = "identity", embedding: str = "transformer"):
        super().__init__()
        if embedding not in EMBEDDINGS:
            raise GnnkitError(f"unknown embedding {embedding!r}; known: {', '.join(EMBEDDINGS)}")
        for what, v in (("memory_dim", memory_dim), ("time_dim", time_dim), ("embedding_dim", embedding_dim)):
            if v < 1:
                raise GnnkitError(f"{what} must be >= 1, got {v}")
        self.msg_dim, self.memory_dim = msg_dim, memory_dim
        self.time_enc = TimeEncoding(time_dim)
        self.updater = MemoryUpdater(memory_dim, msg_dim, time_dim, aggregator, message)
        self.node_proj = nn.Linear(node_dim, memory_dim) if node_dim else None
        self.embedding = EMBEDDINGS[embedding](memory_dim, msg_dim, time_dim, embedding_dim, heads, dropout)
        self.predictor = nn.Sequential(nn.Linear(2 * embedding_dim, embedding_dim), nn.ReLU(),
                                       nn.Linear(embedding_dim, 1))

    def link_logit(self, z_src: Tensor, z_dst: Tensor) -> Tensor:
        """``MLP([z_src ‖ z_dst])`` ``[B]`` for paired rows ``[B, o]``."""
        return self.predictor(torch.cat([z_src, z_dst], -1)).view(-1)

    def pair_logits(self, z: Tensor, src: Tensor, dst: Tensor) -> Tensor:
        """``link_logit(z[src], z[dst])`` for row indices ``src``, ``dst`` ``[B]`` into ``z`` ``[n, o]``,
        with the first layer applied once per row: ``W [z_u ‖ z_v] = W_s z_u + W_d z_v``."""
        first, last = self.predictor[0], self.predictor[2]
        o = z.size(1)
        w = first.weight.view(o, 2, o).transpose(0, 1).reshape(2 * o, o)  # [W_s; W_d]
        zs, zd = F.linear(z, w).view(-1, 2, o).unbind(1)
        hidden = torch.relu(zs.index_select(0, src) + zd.index_select(0, dst) + first.bias)
        return F.linear(hidden, last.weight, last.bias).view(-1)

    def score(self, memory: TemporalMemory, neighbors: LastNeighbors, stream: EventStream,
              batch: EventBatch) -> tuple[Tensor, Tensor, BatchContext]:
        """Logits ``[B]`` of the positive and the negative pairs (steps 1-4 of the module doc)."""
        b = batch.num_events
        nodes = torch.cat([batch.src, batch.dst, batch.neg_dst])
        if self.embedding.time_origin == "query":
            qn, pair = nodes, None
        else:  # the embedding does not depend on the query time: one query per unique node
            qn, pair = torch.unique(nodes, return_inverse=True)
        Q = qn.numel()
        nbr, eid, mask = neighbors(qn)
        nbr = torch.where(mask, nbr, qn.unsqueeze(1))
        n_id, inv = torch.unique(torch.cat([qn, nbr.view(-1)]), return_inverse=True)
        mem, last = self.updater(memory, n_id, self.time_enc)
        h = mem if self.node_proj is None else mem + self.node_proj(stream.x[n_id])
        e = eid[mask]
        q_idx, nbr_idx = inv[:Q], inv[Q:].view(Q, -1)
        if pair is None:
            dt = batch.t.repeat(3).unsqueeze(1).expand_as(mask)[mask] - stream.t[e]
        else:  # the neighbor's last memory update
            dt = last.index_select(0, nbr_idx[mask]) - stream.t.index_select(0, e)
        z = self.embedding(h, q_idx, nbr_idx, mask, stream.msg.index_select(0, e), dt, self.time_enc)
        if pair is None:
            pair = torch.arange(3 * b, device=z.device)
        logits = self.pair_logits(z, pair[:b].repeat(2), pair[b:])
        ctx = BatchContext(n_id, mem, last, torch.unique(q_idx[pair[: 2 * b]]))
        return logits[:b], logits[b:], ctx

    @torch.no_grad()
    def commit(self, memory: TemporalMemory, neighbors: LastNeighbors, batch: EventBatch,
               ctx: Optional[BatchContext]) -> None:
        """Keep the positives' memory update, store the batch's raw messages, insert its links."""
        if ctx is not None:
            p = ctx.pos_index
            nodes = ctx.n_id.index_select(0, p)
            memory.write(nodes, ctx.memory.index_select(0, p), ctx.last_update.index_select(0, p))
            memory.clear(nodes)
        memory.store(batch.src, batch.dst, batch.t, batch.msg)
        neighbors.insert(batch.src, batch.dst, batch.e_id)
