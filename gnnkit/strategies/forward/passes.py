"""Layer passes of ForwardGNN: each layer's input, output and local loss on a :class:`~.graphs.View`.

Layer ``l``'s input is ``z_l = ‖f_{l−1}(z_{l−1})‖``-normalized and detached (``z_0``: the
row-normalized features, see :meth:`~.graphs.GraphViews.first_input`); no gradient crosses layers.

Cached aggregation (``cache=``): with a fixed layer input (sequential schedule, full batch, layers
that split, :meth:`~.layers.LayerStack.cacheable`) ``agg(z, Â)`` is computed once per layer;
``"auto"`` uses it where valid, ``"on"`` raises where it is not, ``"off"`` never caches. From the
cache a layer is row-wise, so :meth:`LayerPasses.cached_loss` computes the outputs of the rows the
loss reads only (validation and test rows hold no activation or gradient).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional

import torch
from torch import Tensor

from ...errors import GnnkitError
from .graphs import GraphViews, View
from .inputs import l2_normalize, l2_normalize_
from .layers import LayerStack
from .losses import ff_loss, sf_loss, sf_loss_parts

CACHE = ("auto", "on", "off")


@dataclass
class FixedInput:
    """The fixed input of layer ``layer`` on the whole graph during the sequential schedule:
    ``inputs`` (per stream ``(z, zℓ)``, ``None`` once aggregated) or its cached ``aggregations``
    (per stream ``(feature aggregation tuple, label aggregation)``)."""
    layer: int
    inputs: Optional[list]
    aggregations: Optional[list] = None


class LayerPasses:
    """The layer computations shared by training and prediction; holds no training state."""

    def __init__(self, stack: LayerStack, views: GraphViews, theta: float, cache: str):
        if cache not in CACHE:
            raise GnnkitError(f"--forward-cache must be one of {', '.join(CACHE)}, got {cache!r}")
        self.stack, self.views, self.theta, self.cache = stack, views, theta, cache
        self.variant, self.C = views.setup.variant, views.setup.C

    @torch.no_grad()
    def layer_inputs(self, view: View, l: int) -> list:
        """Inputs ``(z_l, zℓ)`` of layer ``l`` per stream (one when shared), without autograd history.

        Memory: a cacheable frozen layer aggregates, then drops its input before the transform,
        and ReLU and normalization run in place, so at most two ``[rows, width]`` tensors per
        stream are alive at once (input + aggregation, then aggregation + output)."""
        ins = [self.views.first_input(view, k) for k in range(1 if view.shared_input else view.streams)]
        for i in range(l):
            for k in range(len(ins)):
                (z, zl), ins[k] = ins[k], None
                if self.cache != "off" and self.stack.cacheable(i):
                    agg = self.stack.aggregate(i, z, view.graph(k, i))
                    lagg = self.stack.label_aggregate(zl, view.label_graph(k)) if zl is not None else None
                    z = zl = None
                    h = self.stack(i, None, None, agg=agg, label_agg=lagg)
                    agg = lagg = None
                else:
                    h = self.stack(i, z, view.graph(k, i), zl, label_adj=view.label_graph(k))
                ins[k] = (l2_normalize_(h), None)
        return ins

    def layer_outputs(self, view: View, l: int, ins: Optional[list], aggs: Optional[list] = None) -> List[Tensor]:
        """``f_l`` of every stream, with autograd (from cached aggregations when ``aggs``)."""
        outs = []
        for k in range(view.streams):
            z, zl = (None, None) if aggs is not None else (ins[0] if view.shared_input else ins[k])
            agg, lagg = aggs[k] if aggs is not None else (None, None)
            outs.append(self.stack(l, z, view.graph(k, l), zl, agg=agg, label_agg=lagg, label_adj=view.label_graph(k)))
        return outs

    def local_loss(self, view: View, outs: List[Tensor], rows: Optional[Tensor], y: Tensor, weight=None) -> Tensor:
        """The variant's loss (:mod:`.losses`) of the outputs ``outs`` on ``rows`` with labels ``y``."""
        if self.variant == "sf":
            return sf_loss(outs[0], view.n, rows, y, weight)
        if view.copies > 1:  # stacked copies: copy 0 carries the true label, copies 1.. the wrong ones
            outs = list(outs[0].view(view.copies, view.n, -1).unbind(0))
        return ff_loss(outs, rows, self.theta, weight)

    @torch.no_grad()
    def aggregations(self, view: View, l: int, ins: list) -> list:
        """Layer ``l``'s aggregation per stream: ``(feature aggregation tuple, label aggregation)``."""
        out, seen = [], {}
        for k in range(view.streams):
            z, zl = ins[0] if view.shared_input else ins[k]
            la = self.stack.label_aggregate(zl, view.label_graph(k)) if zl is not None else None
            key = (id(z), id(view.graph(k, l)))
            if key not in seen:  # one aggregation per distinct (input, graph)
                seen[key] = self.stack.aggregate(l, z, view.graph(k, l))
            out.append((seen[key], la))
        return out

    def caching(self, sequential: bool, full: bool, l: int) -> bool:
        """Whether layer ``l``'s training step may use the cached aggregation (``cache="on"``
        raises where it would be wrong)."""
        if self.cache == "off":
            return False
        valid = sequential and full and self.stack.cacheable(l)
        if self.cache == "on" and not valid:
            why = ("the top2loss schedule changes every layer's input each step" if not sequential else
                   "each batch is a different subgraph" if not full else
                   f"layer {l} does not split into aggregation and transform")
            raise GnnkitError(f"--forward-cache on: cached aggregation would be wrong here ({why})")
        return valid

    def cached_loss(self, view: View, l: int, aggs: list, rows: Tensor, y: Tensor, weight) -> Tensor:
        """Layer ``l``'s local loss from its cached aggregations, computing only the rows it reads.

        From a cached aggregation a layer is row-wise (``h_i = ReLU(t(a_i))``), so SF needs the
        outputs of the loss rows and of the ``C`` virtual rows (two separate products: logits
        ``h_rows · h_vnᵀ``), FF-LA those of the loss rows in every stacked copy (``[S·m]``), FF-VN
        those of the loss rows of each stream. The loss and its gradients are those of the full pass.
        """
        n, S = view.n, view.copies
        if self.variant == "sf":
            h = self.layer_outputs(view, l, None, cut_rows(aggs, {n + self.C: rows}))[0]
            vn = torch.arange(n, n + self.C, device=rows.device)
            return sf_loss_parts(h, self.layer_outputs(view, l, None, cut_rows(aggs, {n + self.C: vn}))[0], y, weight)
        if S > 1:
            pick = {n: rows, S * n: (rows + n * torch.arange(S, device=rows.device)[:, None]).reshape(-1)}
        else:
            pick = {n + (self.C if self.views.setup.vn is not None else 0): rows}
        sub = view._replace(n=rows.numel())
        return self.local_loss(sub, self.layer_outputs(sub, l, None, cut_rows(aggs, pick)), None, y, weight)

    @torch.no_grad()
    def bottom_up(self, view: View) -> List[Tensor]:
        """``[z_0, s_1, …, s_L]``: ``s_{l+1} = ‖f_l(s_l)‖``-normalized, one fresh pass (top2loss)."""
        states = [l2_normalize(view.x)]
        for l in range(self.stack.num_layers):
            states.append(l2_normalize(self.stack(l, states[-1], view.adj(0))))
        return states


def cut_rows(aggs: list, pick: dict) -> list:
    """``aggs`` (per stream: ``(feature aggregation tuple, label aggregation)``) at the rows
    ``pick[number of rows]`` (a cached tensor's rows say which graph or copies it lives on)."""
    def cut(t):
        if t is None:
            return None
        if t.shape[0] not in pick:
            raise GnnkitError(f"internal: no loss rows for a cached aggregation of {t.shape[0]} rows")
        return t.index_select(0, pick[t.shape[0]])

    return [(tuple(cut(a) for a in agg), cut(la)) for agg, la in aggs]
