"""What the temporal-link task trains: a TGN-like module with four parts, and how the task drives it.

A :class:`TemporalModule` is an ``nn.Module`` that declares ``msg_dim`` (width ``F`` of the raw event
messages it expects; ``0`` for none) and ``memory_dim`` (width ``d`` of a node's memory row) and
defines the four parts of Rossi et al.'s TGN (2020):

* **message** ``message(s_node [M, d], s_other [M, d], raw_msg [M, F], dt [M]) -> [M, m]``: the message
  a stored event ``(node, other, t, raw_msg)`` sends to ``node``; ``dt = t − t_last(node)`` (float64);
* **memory** ``update_memory(s [n, d], m [n, m]) -> [n, d]``: the new memory of ``n`` nodes from their
  aggregated message (e.g. a ``GRUCell``); ``aggregator`` (``"last"``, default, or ``"mean"``) says how
  a node's pending messages are aggregated;
* **embedding** ``embed(h [n, d], last_update [n], edge_index [2, P], t [P], msg [P, F]) -> z [n, o]``:
  node embeddings from the (updated) memory ``h`` of the batch's nodes and their most recent temporal
  links ``edge_index[0] -> edge_index[1]`` (local rows of ``h``; link times ``t`` and messages ``msg``),
  PyG's ``GraphAttentionEmbedding(x, last_update, edge_index, t, msg)`` signature;
* **predictor** ``predict_link(z_src [B, o], z_dst [B, o]) -> [B]``: link logits.

PyG's TGN parts fit these slots: ``message`` can call ``IdentityMessage(s_node, s_other, raw_msg,
TimeEncoder(dt))``, ``update_memory`` a ``GRUCell``, ``embed`` a ``TransformerConv`` on ``edge_index``
with ``[φ(last_update[j] − t) ‖ msg]`` edge features, ``predict_link`` any MLP (``PyGParts`` in
``tests/test_temporal_custom.py``; ``examples/custom_temporal.py`` is a module unlike TGN).

The memory state itself (memory rows, last-update times, each node's pending raw messages) is a
:class:`~gnnkit.temporal.memory.TemporalMemory` and the temporal neighbors a
:class:`~gnnkit.temporal.neighbors.LastNeighbors`, both owned by the task (reset per epoch, backed up
and restored by the evaluation protocol, saved in checkpoints), never by the module.

The task calls :meth:`TemporalModule.score` (logits of a batch's positive and negative pairs with
the state before the batch) and :meth:`TemporalModule.commit` (the batch enters the state). Their
default is TGN's protocol over the four parts: (1) the unique nodes of the batch and their last
``k`` neighbors; (2) their memory brought up to date from pending messages (message -> aggregate ->
update, inside autograd, state unchanged); (3) ``embed``; (4) ``predict_link``; then on commit the
positives' updated memory is kept (detached), their pending messages consumed, the batch's raw
messages stored and its links inserted, so an event never sees itself. A module whose embedding
depends on the query time (gnnkit's :class:`~gnnkit.temporal.model.TGN` with the authors'
``attention`` layer) or that fuses the steps for speed overrides :meth:`~TemporalModule.score`.
:func:`score_queries` scores chosen ``(src, dst, t)`` queries (the task's ``predict``).
"""
from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn
from torch_geometric.utils import scatter

from ..errors import GnnkitError
from .events import EventBatch, EventStream
from .memory import TemporalMemory, endpoint_groups
from .neighbors import LastNeighbors

AGGREGATORS = ("last", "mean")


@dataclass
class BatchContext:
    """What :meth:`TemporalModule.score` computed that :meth:`TemporalModule.commit` needs."""

    n_id: Tensor  # [n] the nodes whose memory was brought up to date
    memory: Tensor  # [n, d] their updated memory
    last_update: Tensor  # [n] their updated last-update times
    pos_index: Tensor  # positions in n_id of the positive pairs' nodes


class TemporalModule(nn.Module, abc.ABC):
    """A TGN-like model (module docstring); subclasses set ``msg_dim`` and ``memory_dim``."""

    msg_dim: int
    memory_dim: int
    aggregator: str = "last"

    @abc.abstractmethod
    def message(self, s_node: Tensor, s_other: Tensor, raw_msg: Tensor, dt: Tensor) -> Tensor:
        """Messages ``[M, m]`` of ``M`` stored events to their node."""

    @abc.abstractmethod
    def update_memory(self, s: Tensor, m: Tensor) -> Tensor:
        """New memory ``[n, d]`` from the current ``s`` ``[n, d]`` and the aggregated message ``[n, m]``."""

    @abc.abstractmethod
    def embed(self, h: Tensor, last_update: Tensor, edge_index: Tensor, t: Tensor, msg: Tensor) -> Tensor:
        """Embeddings ``[n, o]`` of the rows of ``h`` ``[n, d]`` from the links ``edge_index`` ``[2, P]``."""

    @abc.abstractmethod
    def predict_link(self, z_src: Tensor, z_dst: Tensor) -> Tensor:
        """Link logits ``[B]`` of paired rows ``[B, o]``."""

    def node_states(self, s: Tensor, n_id: Tensor, stream: EventStream) -> Tensor:
        """What ``embed`` receives as ``h`` for the nodes ``n_id``: the memory ``s`` (override to add
        node features ``stream.x[n_id]``)."""
        return s

    def updated_memory(self, memory: TemporalMemory, n_id: Tensor) -> tuple[Tensor, Tensor]:
        """Memory ``[n, d]`` and last-update times ``[n]`` of the unique nodes ``n_id`` after their pending
        messages (message -> ``aggregator`` -> ``update_memory``); the state itself is unchanged."""
        s, last = memory.memory.index_select(0, n_id), memory.last_update.index_select(0, n_id)
        cnt = memory.cnt.index_select(0, n_id)
        has = (cnt > 0).nonzero().view(-1)
        if has.numel() == 0:
            return s, last
        if self.aggregator == "last":  # a node's pending entries are chronological: the latest is the last
            local = has
            pos = memory.ptr.index_select(0, n_id.index_select(0, has)) + cnt.index_select(0, has) - 1
        elif self.aggregator == "mean":
            local, pos = memory.pending(n_id)
        else:
            raise GnnkitError(f"unknown aggregator {self.aggregator!r}; known: {', '.join(AGGREGATORS)}")
        t_msg = memory.log_t.index_select(0, pos)
        m = self.message(s.index_select(0, local), memory.memory.index_select(0, memory.log_other.index_select(0, pos)),
                         memory.log_msg.index_select(0, pos), t_msg - last.index_select(0, local))
        if self.aggregator == "mean":
            m = scatter(m, local, dim=0, dim_size=n_id.numel(), reduce="mean").index_select(0, has)
            t_msg = scatter(t_msg, local, dim=0, dim_size=n_id.numel(), reduce="max").index_select(0, has)
        new = self.update_memory(s.index_select(0, has), m)
        return s.index_copy(0, has, new.to(s.dtype)), last.index_copy(0, has, t_msg)

    def score(self, memory: TemporalMemory, neighbors: LastNeighbors, stream: EventStream,
              batch: EventBatch) -> tuple[Tensor, Tensor, BatchContext]:
        """Logits ``[B]`` of the positive pairs ``(src, dst)`` and the negative pairs ``(src, neg_dst)``
        with the state before the batch, and what :meth:`commit` needs (steps 1-4 of the module doc)."""
        b = batch.num_events
        qn, pair = torch.unique(torch.cat([batch.src, batch.dst, batch.neg_dst]), return_inverse=True)
        nbr, eid, mask = neighbors(qn)
        n_id, inv = torch.unique(torch.cat([qn, nbr[mask]]), return_inverse=True)
        q_idx = inv[: qn.numel()]
        target = q_idx.index_select(0, mask.nonzero()[:, 0])  # the query row of each valid link, row-major
        edge_index = torch.stack([inv[qn.numel():], target])
        mem, last = self.updated_memory(memory, n_id)
        e = eid[mask]
        z = self.embed(self.node_states(mem, n_id, stream), last, edge_index, stream.t.index_select(0, e),
                       stream.msg.index_select(0, e))
        zq = z.index_select(0, q_idx)
        logits = self.predict_link(zq.index_select(0, pair[:b].repeat(2)), zq.index_select(0, pair[b:])).view(-1)
        ctx = BatchContext(n_id, mem, last, torch.unique(q_idx.index_select(0, pair[: 2 * b])))
        return logits[:b], logits[b:], ctx

    @torch.no_grad()
    def commit(self, memory: TemporalMemory, neighbors: LastNeighbors, batch: EventBatch,
               ctx: BatchContext | None) -> None:
        """Keep the positives' memory update, store the batch's raw messages, insert its links."""
        if ctx is not None:
            p = ctx.pos_index
            nodes = ctx.n_id.index_select(0, p)
            memory.write(nodes, ctx.memory.index_select(0, p), ctx.last_update.index_select(0, p))
            memory.clear(nodes)
        groups = endpoint_groups(batch.src, batch.dst)  # one sort of the endpoints for both stores
        memory.store(batch.src, batch.dst, batch.t, batch.msg, groups)
        neighbors.insert(batch.src, batch.dst, batch.e_id, groups)


def check_queries(queries: Any, num_nodes: int, device) -> tuple[Tensor, Tensor, Tensor]:
    """``(src, dst, t)`` ``[Q]`` tensors (int64, int64, float64 on ``device``) from a ``(src, dst, t)``
    triple or a mapping with those keys, each a 1-d array-like; ids in ``[0, num_nodes)``, finite times."""
    if isinstance(queries, dict):
        missing = [k for k in ("src", "dst", "t") if k not in queries]
        if missing:
            raise GnnkitError(f"queries lack {', '.join(missing)} (give src, dst and t)")
        queries = (queries["src"], queries["dst"], queries["t"])
    if not isinstance(queries, (tuple, list)) or len(queries) != 3:
        raise GnnkitError("queries are (src, dst, t): three 1-d arrays of equal length")
    out = []
    for name, value, dtype in zip(("src", "dst", "t"), queries, (torch.long, torch.long, torch.float64)):
        v = torch.as_tensor(value)
        if v.dim() != 1:
            raise GnnkitError(f"queries: {name} must be 1-d, got shape {list(v.shape)}")
        if name != "t" and v.numel() and (v.is_floating_point() and not bool((v == v.round()).all())):
            raise GnnkitError(f"queries: {name} holds a non-integer node id")
        if name != "t" and v.numel() and (int(v.min()) < 0 or int(v.max()) >= num_nodes):
            raise GnnkitError(f"queries: {name} holds a node id outside [0, {num_nodes})")
        if name == "t" and v.numel() and not bool(torch.isfinite(v.double()).all()):
            raise GnnkitError("queries: t holds a NaN or infinite time")
        out.append(v.to(device=device, dtype=dtype))
    if not out[0].numel() == out[1].numel() == out[2].numel():
        raise GnnkitError(f"queries: src, dst and t have {out[0].numel()}, {out[1].numel()} and {out[2].numel()} "
                          "entries; they must be equal")
    return out[0], out[1], out[2]


@torch.no_grad()
def score_queries(model: TemporalModule, memory: TemporalMemory, neighbors: LastNeighbors, stream: EventStream,
                  queries: tuple[Tensor, Tensor, Tensor], replay: Tensor, batch_size: int,
                  chunk: int = 4096) -> Tensor:
    """Link probabilities ``σ(logit)`` ``[Q]`` of the queries ``(src, dst, t)``, in their order.

    From the live state, the ``replay`` events (chronological ids, e.g. the validation and test
    events after training) are committed in batches of ``batch_size``, each scored before it enters
    the state as in evaluation; a query at time ``t`` is scored (``chunk`` queries per call) with the
    state just before the first replayed batch holding an event at time ``>= t``, or after the last.
    Queries are scored, never committed; the replay advances the live state (the caller restores it)."""
    src, dst, t = queries
    out = torch.empty(src.numel(), dtype=torch.float32, device=src.device)
    n = replay.numel()
    starts = list(range(0, n, batch_size))
    ends = (torch.arange(1, len(starts) + 1, device=replay.device) * batch_size).clamp(max=n) - 1
    last_t = stream.t.index_select(0, replay.index_select(0, ends)).to(t.dtype)  # each batch's last time
    order = torch.argsort(t, stable=True)
    seen = torch.searchsorted(last_t.contiguous(), t.index_select(0, order).contiguous(), side="left")
    bounds = torch.searchsorted(seen, torch.arange(len(starts) + 2, device=seen.device), side="left").tolist()
    no_msg = stream.msg.new_zeros(0, stream.msg_dim)
    for j in range(len(starts) + 1):
        group = order[bounds[j]: bounds[j + 1]]
        for lo in range(0, group.numel(), chunk):
            q = group[lo: lo + chunk]
            s, d = src.index_select(0, q), dst.index_select(0, q)
            batch = EventBatch(e_id=q, src=s, dst=d, t=t.index_select(0, q), msg=no_msg.new_zeros(q.numel(), stream.msg_dim), neg_dst=d)
            out[q] = model.score(memory, neighbors, stream, batch)[0].float().sigmoid()
        if j < len(starts):
            e = replay[starts[j]: starts[j] + batch_size]
            ev = EventBatch(e_id=e, src=stream.src[e], dst=stream.dst[e], t=stream.t[e], msg=stream.msg[e],
                            neg_dst=stream.dst[e])
            model.commit(memory, neighbors, ev, model.score(memory, neighbors, stream, ev)[2])
    return out
