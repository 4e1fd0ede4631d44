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
from torch import Tensor, nn
from torch_geometric.utils import scatter

from ..errors import GnnkitError
from ..precision import no_autocast
from .memory import TemporalMemory
from .mixed import autocast_dtype, padded

AGGREGATORS = ("last", "mean")


class GRUStep(torch.autograd.Function):
    """``torch.nn.GRUCell`` (gate order r, z, n) on ``[x ‖ phi]`` ``[M, a + d_t]`` and ``h`` ``[M, d]``::

        r, z = σ(W_i{r,z} [x ‖ phi] + b_i{r,z} + W_h{r,z} h + b_h{r,z})
        n = tanh(W_in [x ‖ phi] + b_in + r ⊙ (W_hn h + b_hn));   h' = n + z ⊙ (h − n)

    with a hand-written backward: with ``δn = ∂L/∂h' ⊙ (1 − z) ⊙ (1 − n²)``, ``δr = δn ⊙ (W_hn h +
    b_hn) ⊙ r(1 − r)``, ``δz = ∂L/∂h' ⊙ (h − n) ⊙ z(1 − z)``, the input gates' gradient is
    ``G_i = [δr ‖ δz ‖ δn]`` and the hidden ones' ``G_h = [δr ‖ δz ‖ δn ⊙ r]``; ``∂L/∂W_ih = G_iᵀ [x ‖ phi]``,
    ``∂L/∂W_hh = G_hᵀ h``, biases the column sums, ``∂L/∂[x ‖ phi] = G_i W_ih``, ``∂L/∂h = G_h W_hh +
    ∂L/∂h' ⊙ z``, each formed only when needed. One autograd node instead of ~30 small ones.

    ``h_leads``: ``x[:, :d]`` is ``h`` itself (TGN's identity message ``[s_i ‖ s_j ‖ e]`` with
    ``h = s_i``) and neither needs a gradient. Then ``W_h{r,z}`` is folded into the ``x[:, :d]``
    columns of ``W_i{r,z}`` (one product fewer forward), and ``∂L/∂W_h{r,z} = G_{r,z}ᵀ h`` is the
    ``[:2d, :d]`` block of ``∂L/∂W_ih`` (one product fewer backward).

    ``half`` (``bfloat16``/``float16``, the autocast type of a mixed-precision run, or ``None``): the
    products forward and backward take their operands in that type (``[x ‖ phi]`` is cast once and
    kept for ``∂L/∂W_ih``), the biases, gates and ``h'`` stay float32 (``h`` is the float32 memory);
    the weights' gradients come back float32."""

    @staticmethod
    def forward(ctx, x, phi, h, w_ih, b_ih, w_hh, b_hh, h_leads=False, half=None):
        with no_autocast(x.device.type):  # the products' type is chosen here (``half``), not by autocast
            return GRUStep._forward(ctx, x, phi, h, w_ih, b_ih, w_hh, b_hh, h_leads, half)

    @staticmethod
    def _forward(ctx, x, phi, h, w_ih, b_ih, w_hh, b_hh, h_leads, half):
        lo = half or h.dtype  # the type of the products' operands
        xp = x if phi is None else torch.cat([x, phi], 1)
        m, d = h.shape
        xp = padded(xp, half) if half else xp  # rows padded: see gnnkit.temporal.mixed
        fold = h_leads and not (ctx.needs_input_grad[0] or ctx.needs_input_grad[2])
        if fold:
            w = w_ih.clone()
            w[: 2 * d, :d] += w_hh[: 2 * d]
            w_h = w_hh[2 * d:]
        else:
            w, w_h = w_ih, w_hh
        if half:  # products in the half type, cast back to float32 in one pass each, biases in float32
            gi = torch.mm(xp, w.t().to(half))[:m].float().add_(b_ih)
            gh = torch.mm(padded(h, half), w_h.t().to(half))[:m].float().add_(b_hh[2 * d:] if fold else b_hh)
        else:
            gi = torch.addmm(b_ih, xp, w.t())
            gh = torch.addmm(b_hh[2 * d:] if fold else b_hh, h, w_h.t())
        if fold:
            rz = torch.sigmoid(gi[:, : 2 * d] + b_hh[: 2 * d])
            hn = gh
        else:
            rz = torch.sigmoid(gi[:, : 2 * d] + gh[:, : 2 * d])
            hn = gh[:, 2 * d:]
        n = torch.tanh(torch.addcmul(gi[:, 2 * d:], rz[:, :d], hn))
        ctx.save_for_backward(xp, h, w_ih, w_hh, rz, n, hn)
        ctx.split, ctx.has_phi, ctx.fold, ctx.half = x.size(1), phi is not None, fold, half
        return torch.lerp(n, h, rz[:, d:])

    @staticmethod
    def backward(ctx, g):
        xp, h, w_ih, w_hh, rz, n, hn = ctx.saved_tensors
        d, a, lo = h.size(1), ctx.split, ctx.half or h.dtype
        r, z = rz[:, :d], rz[:, d:]
        dn = (g - g * z).mul_(1 - n * n)
        drz = torch.cat([dn * hn, g * (h - n)], 1).mul_(rz * (1 - rz))
        gi, dhn = torch.cat([drz, dn], 1), dn * r
        gl = padded(gi, lo) if ctx.half else gi  # products in the forward's type, results cast to float32
        need = ctx.needs_input_grad
        dx = dphi = dh = dw_ih = dw_hh = None
        if need[0] or need[2]:
            gh = torch.cat([drz, dhn], 1)
            dx = gl.mm(w_ih[:, :a].to(lo))[: h.size(0)].float() if need[0] else None
            dh = torch.addcmul(gh.mm(w_hh), g, z) if need[2] else None
        if ctx.has_phi and need[1]:
            dphi = gl.mm(w_ih[:, a:].to(lo))[: h.size(0)].float()
        if need[3] or need[5]:
            dw_ih = gl.t().mm(xp).to(w_ih.dtype)
        if need[5]:
            if ctx.fold:
                dw_hh = torch.cat([dw_ih[: 2 * d, :d], dhn.t().mm(h)], 0)
            else:
                dw_hh = torch.cat([drz, dhn], 1).t().mm(h)
        db_hh = torch.cat([drz.sum(0), dhn.sum(0)]) if need[6] else None
        return (dx, dphi, dh, dw_ih if need[3] else None, gi.sum(0) if need[4] else None, dw_hh, db_hh, None, None)


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
        other = mem.log_other.index_select(0, pos)
        const = torch.cat([s.index_select(0, local), mem.memory.index_select(0, other),
                           mem.log_msg.index_select(0, pos)], dim=-1)
        phi = time_enc(mem.log_t.index_select(0, pos) - last.index_select(0, local))
        if self.message_mlp is None:
            return const, phi
        return self.message_mlp(torch.cat([const, phi], -1)), None

    def gru(self, x: Tensor, phi, h: Tensor) -> Tensor:
        """``GRUCell([x ‖ phi], h)`` (``phi`` may be ``None``) in one autograd node (:class:`GRUStep`);
        with the identity message ``x[:, :d]`` is ``h`` (for ``mean`` too: the mean of ``s_i``)."""
        c = self.cell
        return GRUStep.apply(x, phi, h, c.weight_ih, c.bias_ih, c.weight_hh, c.bias_hh, self.message_mlp is None,
                             autocast_dtype(h.device.type))

    def forward(self, mem: TemporalMemory, n_id: Tensor, time_enc: nn.Module) -> tuple[Tensor, Tensor]:
        """Updated ``memory`` ``[n, d]`` and ``last_update`` ``[n]`` of the unique nodes ``n_id``;
        the state itself is not changed (see :meth:`TemporalMemory.write`)."""
        s, last = mem.memory.index_select(0, n_id), mem.last_update.index_select(0, n_id)
        cnt = mem.cnt.index_select(0, n_id)
        has = (cnt > 0).nonzero().view(-1)
        if has.numel() == 0:
            return s, last
        if self.aggregator == "last":
            # a node's pending entries are contiguous and chronological: the latest is the last one
            pos = mem.ptr.index_select(0, n_id.index_select(0, has)) + cnt.index_select(0, has) - 1
            x, phi = self.messages(mem, s, last, has, pos, time_enc)
            t_new = mem.log_t.index_select(0, pos)
        else:
            local, pos = mem.pending(n_id)
            x, phi = self.messages(mem, s, last, local, pos, time_enc)
            x = scatter(x, local, dim=0, dim_size=n_id.numel(), reduce="mean")[has]
            phi = None if phi is None else scatter(phi, local, dim=0, dim_size=n_id.numel(), reduce="mean")[has]
            t_new = scatter(mem.log_t[pos], local, dim=0, dim_size=n_id.numel(), reduce="max")[has]
        new = self.gru(x, phi, s.index_select(0, has))
        # in place: s and last are fresh gathers whose values no backward reads
        return s.index_copy_(0, has, new), last.index_copy_(0, has, t_new)
