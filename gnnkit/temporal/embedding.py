"""Temporal graph attention: the embedding ``z_v(t)`` of a node from its last ``k`` neighbor links.

Inputs (shared by both layers): ``h`` ``[n, d]`` (memory, plus node features) of the batch's
unique nodes, ``q_idx`` ``[Q]`` the query rows, ``nbr_idx`` ``[Q, k]`` the neighbor rows, ``mask``
``[Q, k]`` the valid links, and for the ``P`` valid links (row-major order of ``mask``) ``e``
``[P, F]`` and ``Δt`` ``[P]``; ``f = [e ‖ φ(Δt)]``. Output ``[Q, out_dim]``. Each layer names the
time origin of its ``Δt`` in ``time_origin`` (the model computes it, :meth:`TGN.score`):
``"query"``: ``Δt = t_query − t_link`` (the authors); ``"neighbor"``: ``Δt = t_last(u) − t_link``,
the neighbor's (updated) last memory update minus the link time (PyG's example, whose
``rel_t = last_update[edge_index[0]] − t``).

* ``attention`` (the authors' ``TemporalAttention``, TGN-attn): query ``W_q [h_v ‖ φ(0)]``,
  keys and values ``W_{k,v} [h_u ‖ f_uv]`` (width ``d + d_t``), softmax over the links per head,
  ``z = MLP([W_o attn ‖ h_v])``; a node without links gets ``attn = 0``. Time origin: the query.
* ``transformer`` (``TransformerConv`` as in PyG's ``examples/tgn.py``): per head ``c =
  out_dim / heads``, query ``W_q h_v``, keys ``W_k h_u + W_e f_uv``, values ``W_v h_u + W_e f_uv``,
  ``z = attn + W_r h_v``. Time origin: the neighbor's last update, as in that example (the
  link feature then says how long the neighbor has been active since the link; it does not
  depend on the query time, so the embedding of a node is the same for all its queries).

The node parts of the keys and values are computed once per unique node and gathered; the link
parts once per valid link (padded slots cost nothing). Attention dropout as in both references.
Under a mixed precision the layers' products run in the autocast type and return float32
(:mod:`gnnkit.temporal.mixed`); scores, softmax and sums are float32.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import GnnkitError
from .mixed import autocast_dtype, linear

EMPTY = -1e30  # score of an empty neighbor slot: exp(EMPTY - max) == 0 in float32


def valid_links(nbr_idx: Tensor, mask: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """``(flat, qi, rows)`` ``[P]`` of the valid slots of ``mask`` ``[Q, k]`` in row-major order: the slot
    ``q·k + j``, its query row ``q`` and its neighbor row ``nbr_idx[q, j]`` (the only data-dependent
    shapes of a layer, computed once per batch)."""
    flat = mask.view(-1).nonzero().view(-1)
    return flat, torch.div(flat, mask.size(1), rounding_mode="floor"), nbr_idx.reshape(-1).index_select(0, flat)


def attend(q: Tensor, key: Tensor, val: Tensor, flat: Tensor, qi: Tensor, k: int, dropout: float,
           training: bool) -> Tensor:
    """``q`` ``[Q, H, c]``, ``key``/``val`` ``[P, H, c]`` of the valid links (slots ``flat``, query rows
    ``qi``, :func:`valid_links`) of ``Q`` queries with ``k`` slots each -> ``Σ_u softmax_u(q·k_u / √c) v_u``
    ``[Q, H·c]`` (0 where a query has no link).

    The softmax runs on a dense ``[Q, k, H]`` score whose empty slots hold a large negative
    number (not ``-inf``: a query without links then gets a finite, unused row, no NaN)."""
    Q, H, c = q.shape
    s = (q.index_select(0, qi) * key).sum(-1) * (1.0 / math.sqrt(c))  # [P, H]
    score = s.new_full((Q * k, H), EMPTY).index_copy_(0, flat, s).view(Q, k, H)
    attn = torch.softmax(score, 1).view(Q * k, H).index_select(0, flat)
    attn = F.dropout(attn, dropout, training)  # per link, as in both references
    return s.new_zeros(Q, H, c).index_add_(0, qi, attn.unsqueeze(-1) * val).view(Q, H * c)


class _LinkAttention(torch.autograd.Function):
    """The ``transformer`` layer's attention with a hand-written backward (one autograd node):
    ``q`` ``[Q, o]`` (query rows), ``table`` ``[n, 2o]`` (``[W_k h + b_k ‖ W_v h + b_v]`` per unique
    node), ``f`` ``[P, o]`` (``W_e [e ‖ φ]`` per valid link), links as in :func:`attend` ->
    ``Σ_u a_u (v_u)`` ``[Q, o]`` per head (``H`` heads of ``c = o / H``), with ``k_u = table[u, :o] + f``,
    ``v_u = table[u, o:] + f``, ``p = softmax_u(q·k_u / √c)`` over the query's links, ``a = p ⊙ m``
    (``m``: the dropout mask, scaled by ``1 / (1 − dropout)``; none in evaluation).

    Backward, with ``G = ∂L/∂out`` gathered per link ``Ĝ`` ``[P, o]``: ``∂L/∂v = a ⊙ Ĝ`` (per head),
    ``∂L/∂a = Σ_c Ĝ ⊙ v``, ``∂L/∂p = m ⊙ ∂L/∂a``, ``∂L/∂s = p ⊙ (∂L/∂p − Σ_{query's links} p ⊙ ∂L/∂p)
    / √c``, ``∂L/∂k = ∂L/∂s ⊙ q̂``, ``∂L/∂q = Σ_{links} ∂L/∂s ⊙ k``, ``∂L/∂f = ∂L/∂k + ∂L/∂v``,
    ``∂L/∂table = Σ_{links of u} [∂L/∂k ‖ ∂L/∂v]``. The same math as :func:`attend` on ``key``/``val``
    (tested against it), without its ``[P, 2, o]`` broadcasts and their reductions."""

    @staticmethod
    def forward(ctx, q, table, f, rows, flat, qi, k: int, heads: int, dropout: float):
        (Q, o), P = q.shape, rows.numel()
        c = o // heads
        kv = table.index_select(0, rows)  # [P, 2o]
        key, val = torch.add(kv[:, :o], f), torch.add(kv[:, o:], f)  # [P, o] each, contiguous
        qg = q.index_select(0, qi)  # [P, o]
        s = (qg * key).view(P, heads, c).sum(-1).mul_(1.0 / math.sqrt(c))  # [P, H]
        score = s.new_full((Q * k, heads), EMPTY).index_copy_(0, flat, s).view(Q, k, heads)
        p = torch.softmax(score, 1).view(Q * k, heads).index_select(0, flat)  # [P, H]
        noise = torch.empty_like(p).bernoulli_(1 - dropout).div_(1 - dropout) if dropout > 0 else None
        a = (p * noise if noise is not None else p).repeat_interleave(c, 1)  # [P, o], per head
        ctx.save_for_backward(qg, key, val, p, noise, a, rows, qi)
        ctx.sizes = (Q, table.size(0), heads)
        return s.new_zeros(Q, o).index_add_(0, qi, a * val)

    @staticmethod
    def backward(ctx, g):
        qg, key, val, p, noise, a, rows, qi = ctx.saved_tensors
        (Q, n, H), (P, o) = ctx.sizes, qg.shape
        c = o // H
        gg = g.index_select(0, qi)  # [P, o]
        g_kv = gg.new_empty(P, 2 * o)  # [∂L/∂k ‖ ∂L/∂v], written in place (a cat along dim 1 is slow on CPU)
        g_key, g_val = g_kv[:, :o], torch.mul(gg, a, out=g_kv[:, o:])
        g_p = gg.mul_(val).view(P, H, c).sum(-1)  # ∂L/∂a  [P, H]
        if noise is not None:
            g_p.mul_(noise)
        pg = g_p.mul_(p)  # p ⊙ ∂L/∂p
        tot = pg.new_zeros(Q, H).index_add_(0, qi, pg).index_select(0, qi)
        g_s = pg.sub_(tot.mul_(p)).mul_(1.0 / math.sqrt(c)).repeat_interleave(c, 1)  # [P, o]
        need = ctx.needs_input_grad
        g_q = g_s.new_zeros(Q, o).index_add_(0, qi, g_s * key) if need[0] else None
        torch.mul(g_s, qg, out=g_key)
        g_f = g_key + g_val if need[2] else None
        g_table = g_kv.new_zeros(n, 2 * o).index_add_(0, rows, g_kv) if need[1] else None
        return g_q, g_table, g_f, None, None, None, None, None, None


class _Layer(nn.Module):
    """What both layers share: ``forward`` finds the valid links (or takes them, ``links``) and hands
    the rest, free of data-dependent shapes, to ``dense``; ``compile_dense(True)`` wraps ``dense`` in
    ``torch.compile(dynamic=True)`` (one graph for all batch sizes; the first batches pay the compile)."""

    _compiled = None

    def compile_dense(self, on: bool = True) -> "_Layer":
        self._compiled = torch.compile(self.dense, dynamic=True) if on else None
        return self

    def forward(self, h: Tensor, q_idx: Tensor, nbr_idx: Tensor, mask: Tensor, e: Tensor, dt: Tensor,
                time_enc: nn.Module, links: tuple | None = None) -> Tensor:
        flat, qi, rows = valid_links(nbr_idx, mask) if links is None else links
        fn = self._compiled or self.dense
        return fn(h, q_idx, rows, flat, qi, mask.size(1), e, dt, time_enc, autocast_dtype(h.device.type))


class TemporalAttention(_Layer):
    """The authors' TGN-attn layer (see the module docstring)."""

    time_origin = "query"

    def __init__(self, node_dim: int, msg_dim: int, time_dim: int, out_dim: int, heads: int = 2,
                 dropout: float = 0.1):
        super().__init__()
        q_dim = node_dim + time_dim
        if q_dim % heads:
            raise GnnkitError(f"memory_dim + time_dim = {q_dim} must be divisible by heads = {heads}")
        self.heads, self.dropout, self.q_dim = heads, dropout, q_dim
        self.q = nn.Linear(q_dim, q_dim)
        self.kv_node = nn.Linear(node_dim, 2 * q_dim)  # key and value, node part
        self.kv_link = nn.Linear(msg_dim + time_dim, 2 * q_dim, bias=False)  # key and value, link part
        self.out = nn.Linear(q_dim, q_dim)
        self.merge = nn.Sequential(nn.Linear(q_dim + node_dim, node_dim), nn.ReLU(), nn.Linear(node_dim, out_dim))

    def dense(self, h: Tensor, q_idx: Tensor, rows: Tensor, flat: Tensor, qi: Tensor, k: int, e: Tensor, dt: Tensor,
              time_enc: nn.Module, half) -> Tensor:
        Q = q_idx.numel()
        H, c = self.heads, self.q_dim // self.heads
        h_q = h.index_select(0, q_idx)
        phi0 = time_enc(h.new_zeros(1)).expand(Q, -1)
        q = linear(torch.cat([h_q, phi0], -1), self.q.weight, self.q.bias, half).view(Q, H, c)
        kv = (linear(h, self.kv_node.weight, self.kv_node.bias, half).index_select(0, rows)
              + linear(torch.cat([e.to(h.dtype), time_enc(dt)], -1), self.kv_link.weight, None, half))
        key, val = kv[:, : self.q_dim].view(-1, H, c), kv[:, self.q_dim:].view(-1, H, c)
        out = attend(q, key, val, flat, qi, k, self.dropout, self.training)
        has = torch.zeros(Q, dtype=h.dtype, device=h.device).index_fill_(0, qi, 1.0).unsqueeze(1)
        out = linear(out, self.out.weight, self.out.bias, half) * has
        first, last = self.merge[0], self.merge[2]
        hidden = torch.relu(linear(torch.cat([out, h_q], -1), first.weight, first.bias, half))
        return linear(hidden, last.weight, last.bias, half)


class TransformerEmbedding(_Layer):
    """``TransformerConv`` (root weight on, ``edge_dim = F + d_t``) as in PyG's TGN example.

    Parameters: ``qr`` (query and root weights ``W_q``, ``W_r`` stacked: one product per query
    row), ``kv_node`` (``W_k``, ``W_v`` stacked: one product per unique node), ``link`` (``W_e``,
    no bias, shared by keys and values as in ``TransformerConv``)."""

    time_origin = "neighbor"

    def __init__(self, node_dim: int, msg_dim: int, time_dim: int, out_dim: int, heads: int = 2,
                 dropout: float = 0.1):
        super().__init__()
        if out_dim % heads:
            raise GnnkitError(f"embedding_dim = {out_dim} must be divisible by heads = {heads}")
        self.heads, self.dropout, self.out_dim = heads, dropout, out_dim
        self.qr = nn.Linear(node_dim, 2 * out_dim)
        self.kv_node = nn.Linear(node_dim, 2 * out_dim)
        self.link = nn.Linear(msg_dim + time_dim, out_dim, bias=False)

    def dense(self, h: Tensor, q_idx: Tensor, rows: Tensor, flat: Tensor, qi: Tensor, k: int, e: Tensor, dt: Tensor,
              time_enc: nn.Module, half) -> Tensor:
        H, o = self.heads, self.out_dim
        q, root = linear(h.index_select(0, q_idx), self.qr.weight, self.qr.bias, half).view(-1, 2, o).unbind(1)
        f = linear(torch.cat([e.to(h.dtype), time_enc(dt)], -1), self.link.weight, None, half)  # [P, o]
        table = linear(h, self.kv_node.weight, self.kv_node.bias, half)  # [n, 2o]: key and value node parts
        drop = self.dropout if self.training else 0.0
        return _LinkAttention.apply(q, table, f, rows, flat, qi, k, H, drop) + root


EMBEDDINGS = {"attention": TemporalAttention, "transformer": TransformerEmbedding}
