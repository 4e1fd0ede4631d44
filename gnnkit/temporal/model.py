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

TGN is a :class:`~gnnkit.temporal.interface.TemporalModule`: its four parts are :meth:`TGN.message`
(``[s_i ‖ s_j ‖ e ‖ φ(Δt)]``, or its MLP), :meth:`TGN.update_memory` (the GRU), :meth:`TGN.embed`
(the embedding layer on PyG-style links) and :meth:`TGN.predict_link` (the MLP); :meth:`TGN.score`
is the same computation fused (one query per unique node unless the layer depends on the query
time, the memory updater's single-node GRU step, the predictor's first layer applied once per row).
With the ``transformer`` layer the interface's generic ``score`` over the four parts gives the same
logits (tested); the ``attention`` layer embeds (node, time) queries, which only the fused ``score``
does.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from ..errors import GnnkitError
from .embedding import EMBEDDINGS, valid_links
from .events import EventBatch, EventStream
from .interface import BatchContext, TemporalModule
from .memory import TemporalMemory
from .mixed import autocast_dtype, linear
from .neighbors import LastNeighbors
from .time_encoding import TimeEncoding
from .updater import MemoryUpdater

__all__ = ["TGN", "BatchContext"]


class TGN(TemporalModule):
    def __init__(self, msg_dim: int, *, memory_dim: int = 100, time_dim: int = 100, embedding_dim: int = 100,
                 node_dim: int = 0, heads: int = 2, dropout: float = 0.1, aggregator: str = "last",
                 message: str = "identity", embedding: str = "transformer", compile: bool = False):
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
        if compile:  # the embedding's dense part under torch.compile(dynamic=True): BENCHMARKS.md has its figures
            self.embedding.compile_dense()
        self.predictor = nn.Sequential(nn.Linear(2 * embedding_dim, embedding_dim), nn.ReLU(),
                                       nn.Linear(embedding_dim, 1))

    # -- the interface's four parts (gnnkit.temporal.interface) -------------------------------------
    @property
    def aggregator(self) -> str:
        return self.updater.aggregator

    def message(self, s_node: Tensor, s_other: Tensor, raw_msg: Tensor, dt: Tensor) -> Tensor:
        """``[s_i ‖ s_j ‖ e ‖ φ(Δt)]`` ``[M, 2d + F + d_t]`` (identity), or its MLP."""
        x = torch.cat([s_node, s_other, raw_msg.to(s_node.dtype), self.time_enc(dt)], -1)
        return x if self.updater.message_mlp is None else self.updater.message_mlp(x)

    def update_memory(self, s: Tensor, m: Tensor) -> Tensor:
        """``GRUCell(m, s)``."""
        return self.updater.cell(m, s)

    def node_states(self, s: Tensor, n_id: Tensor, stream: EventStream) -> Tensor:
        if self.node_proj is None:
            return s
        return s + linear(stream.x[n_id].float(), self.node_proj.weight, self.node_proj.bias, autocast_dtype(s.device.type))

    def embed(self, h: Tensor, last_update: Tensor, edge_index: Tensor, t: Tensor, msg: Tensor) -> Tensor:
        """The embedding layer on links ``edge_index[0] -> edge_index[1]``, laid out as its ``[n, k]``
        neighbor slots (links grouped by target, stably); link time feature ``φ(t_last(u) − t_link)``."""
        if self.embedding.time_origin != "neighbor":
            raise GnnkitError("TGN's attention embedding embeds (node, time) queries: use TGN.score, not the "
                              "node-level embed")
        n = h.size(0)
        src, dst = edge_index
        order = torch.argsort(dst, stable=True)
        src, dst, t, msg = src[order], dst[order], t[order], msg[order]
        counts = torch.bincount(dst, minlength=n)
        slot = torch.arange(dst.numel(), device=dst.device) - (torch.cumsum(counts, 0) - counts)[dst]
        k = max(int(counts.max()) if n else 1, 1)
        nbr = torch.arange(n, device=h.device).unsqueeze(1).repeat(1, k)
        mask = torch.zeros(n, k, dtype=torch.bool, device=h.device)
        nbr[dst, slot], mask[dst, slot] = src, True
        dt = last_update.index_select(0, src) - t
        return self.embedding(h, torch.arange(n, device=h.device), nbr, mask, msg, dt, self.time_enc)

    def predict_link(self, z_src: Tensor, z_dst: Tensor) -> Tensor:
        return self.link_logit(z_src, z_dst)

    # -- the fused computation ----------------------------------------------------------------------
    def link_logit(self, z_src: Tensor, z_dst: Tensor) -> Tensor:
        """``MLP([z_src ‖ z_dst])`` ``[B]`` for paired rows ``[B, o]`` (float32 logits under autocast too)."""
        first, last = self.predictor[0], self.predictor[2]
        hidden = torch.relu(linear(torch.cat([z_src, z_dst], -1), first.weight, first.bias,
                                   autocast_dtype(z_src.device.type)))
        return torch.addmv(last.bias, hidden.float(), last.weight[0])

    def pair_logits(self, z: Tensor, src: Tensor, dst: Tensor) -> Tensor:
        """``link_logit(z[src], z[dst])`` for row indices ``src``, ``dst`` ``[B]`` into ``z`` ``[n, o]``,
        with the first layer applied once per row: ``W [z_u ‖ z_v] = W_s z_u + W_d z_v``."""
        first, last = self.predictor[0], self.predictor[2]
        o = z.size(1)
        w = first.weight.view(o, 2, o).transpose(0, 1).reshape(2 * o, o)  # [W_s; W_d]
        zs, zd = linear(z, w, None, autocast_dtype(z.device.type)).view(-1, 2, o).unbind(1)
        hidden = torch.relu(zs.index_select(0, src) + zd.index_select(0, dst) + first.bias)
        # the last layer [o] -> 1 as a matrix-vector product: float32 under autocast too (half logits
        # would tie in the ranking that AP scores)
        return torch.addmv(last.bias, hidden.float(), last.weight[0])

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
        h = self.node_states(mem, n_id, stream)
        q_idx, nbr_idx = inv[:Q], inv[Q:].view(Q, -1)
        links = valid_links(nbr_idx, mask)  # (slot, query row, neighbor row) of each valid link
        e = eid.view(-1).index_select(0, links[0])
        if pair is None:
            dt = batch.t.repeat(3).index_select(0, links[1]) - stream.t.index_select(0, e)
        else:  # the neighbor's last memory update
            dt = last.index_select(0, links[2]) - stream.t.index_select(0, e)
        z = self.embedding(h, q_idx, nbr_idx, mask, stream.msg.index_select(0, e), dt, self.time_enc, links=links)
        if pair is None:
            pair = torch.arange(3 * b, device=z.device)
        logits = self.pair_logits(z, pair[:b].repeat(2), pair[b:])
        ctx = BatchContext(n_id, mem, last, torch.unique(q_idx[pair[: 2 * b]]))
        return logits[:b], logits[b:], ctx
