"""ForwardGNN's view of a gnnkit model as ``L`` local layers, and the layers' local losses.

A gnnkit GNN (:class:`gnnkit.models.GNN`) with ``num_layers = L`` has ``L − 1`` convolutions in
``layers`` and the last graph layer folded into ``head(head_input(h, adj))``. ForwardGNN trains
every graph layer on its own, so :class:`LayerStack` exposes them as ``f_0 .. f_{L−1}``::

    f_l(z) = ReLU(layers[l](z, Â))            l < L − 1   (width: model.hidden)
    f_{L−1}(z) = ReLU(head(head_input(z, Â)))             (width: model.out_dim)

with no normalization layer, residual or dropout (the reference has none). Build the model with
``out_dim = hidden`` for the reference's network, whose every layer is ``hidden`` wide.

Label appending (FF-LA): the one-hot label block ``ℓ`` ``[n, C]`` is concatenated to the first
layer's input. The model's first layer keeps its input width ``F``; the label block's own weights
live in ``label_lin`` (``head_in_dim(C) → width_0``, no bias), applied to the same parameter-free
aggregation the model family uses (``head_input``: ``Âℓ`` for GCN, ``[mean ℓ ‖ ℓ]`` for SAGE, ``ℓ``
for MLP). For GCN, ``Â [z ‖ ℓ] [W; W_ℓ] = Â z W + Â ℓ W_ℓ``: exactly a first layer of width
``F + C``; likewise for SAGE's two weight matrices.

Cached aggregation: a layer splits into a parameter-free aggregation ``a = agg_l(z, Â)`` and a
transform ``t_l(a)`` for GCN (``a = Âz``, ``t = a W + b``), SAGE (``a = (Âz, z)``, ``t = a₀ W_l +
b + a₁ W_r``) and every family's head (``a = head_input(z, Â)``, ``t = head(a)``). When ``z`` and
``Â`` are fixed over epochs, ``a`` is computed once. Other layer types are not split
(:meth:`LayerStack.cacheable` is False) and run whole.

Losses (``rows`` ``[m]``: the rows that carry the loss; ``weight`` ``[m]`` optional, the loss is
then ``Σ w_i ℓ_i``):

* SF: logits ``[m, C] = h[rows] · h[n:n+C]ᵀ`` (the ``C`` virtual nodes are the last rows),
  cross-entropy with the rows' labels;
* FF: goodness ``g_i = Σ_j h_ij² − θ``; ``BCE(g_pos, 1) + mean_k BCE(g_neg_k, 0)``.
"""
from __future__ import annotations

from typing import List, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import GnnkitError


def _is(obj, names: Sequence[str]) -> bool:
    return type(obj).__name__ in names and type(obj).__module__.startswith("gnnkit.models")


class LayerStack(nn.Module):
    """``model``'s graph layers as local layers ``0..L−1`` plus the label weights (FF-LA)."""

    def __init__(self, model: nn.Module, label_dim: int = 0):
        super().__init__()
        for attr in ("layers", "head", "head_input"):
            if not hasattr(model, attr):
                raise GnnkitError(f"the forward strategy needs a model with `{attr}` (gnnkit's GCN, SAGE, MLP)")
        for norm in getattr(model, "norms", []):
            if not isinstance(norm, nn.Identity):
                raise GnnkitError("the forward strategy trains conv + ReLU layers: build the model with norm='none'")
        if getattr(model, "residual", False):
            raise GnnkitError("the forward strategy has no residual connections: build the model with residual=False")
        self.model = [model]  # a list, so the model is not registered as a submodule of the stack
        self.num_layers = len(model.layers) + 1
        self.widths = [getattr(model, "hidden")] * (self.num_layers - 1) + [model.head.out_features]
        self.label_lin = None
        if label_dim:
            in_dim = model.head_in_dim(label_dim) if hasattr(model, "head_in_dim") else label_dim
            self.label_lin = nn.Linear(in_dim, self.widths[0], bias=False)

    @property
    def net(self) -> nn.Module:
        return self.model[0]

    def parameters_of(self, l: int) -> List[nn.Parameter]:
        mod = self.net.layers[l] if l < self.num_layers - 1 else self.net.head
        params = list(mod.parameters())
        if l == 0 and self.label_lin is not None:
            params += list(self.label_lin.parameters())
        return params

    def layer_state(self, l: int) -> List[Tensor]:
        return [p.detach().clone() for p in self.parameters_of(l)]

    def load_layer_state(self, l: int, state: List[Tensor]) -> None:
        with torch.no_grad():
            for p, v in zip(self.parameters_of(l), state):
                p.copy_(v)

    # -- cached aggregation -----------------------------------------------------------------------
    def cacheable(self, l: int) -> bool:
        """Whether layer ``l`` splits into a parameter-free aggregation and a transform."""
        if l == self.num_layers - 1:
            return _is(self.net, ("GCN", "GraphSAGE", "MLP"))
        return _is(self.net.layers[l], ("GCNConv", "SAGEConv", "_Linear"))

    def aggregate(self, l: int, z: Tensor, adj) -> tuple:
        """The parameter-free part ``agg_l(z, Â)`` of layer ``l`` (only where :meth:`cacheable`)."""
        if l == self.num_layers - 1:
            return (self.net.head_input(z, adj),)
        conv = self.net.layers[l]
        n = adj.num_rows if adj is not None else z.shape[0]
        if _is(conv, ("GCNConv",)):
            return (adj @ z,)
        if _is(conv, ("SAGEConv",)):
            return (adj @ z, z[:n])
        return (z[:n],)  # MLP: no aggregation

    def transform(self, l: int, agg: tuple) -> Tensor:
        if l == self.num_layers - 1:
            return self.net.head(agg[0])
        conv = self.net.layers[l]
        if _is(conv, ("GCNConv",)):
            return F.linear(agg[0], conv.lin.weight, conv.bias)  # (Â z) W + b in one product
        if _is(conv, ("SAGEConv",)):
            return conv.lin_l(agg[0]) + conv.lin_r(agg[1])
        return nn.Linear.forward(conv, agg[0])

    def label_aggregate(self, zl: Tensor, adj) -> Tensor:
        return self.net.head_input(zl, adj)

    # -- one layer --------------------------------------------------------------------------------
    def forward(self, l: int, z: Optional[Tensor], adj, zl: Optional[Tensor] = None,
                agg: Optional[tuple] = None, label_agg: Optional[Tensor] = None, label_adj=None) -> Tensor:
        """``f_l`` on input ``z`` ``[n_in, d_l]`` (or its cached aggregation ``agg``) plus, on layer
        0, the label block ``zl`` ``[S·n_in, C]`` (or its aggregation ``label_agg``, with
        ``label_adj``, default ``adj``) → ``[S·n_out, width_l]``. With ``S > 1`` stacked label
        copies (see :class:`~gnnkit.strategies.forward_graph.View`) the feature term ``Â z W``,
        computed once, is repeated for every copy: ``[Â z W + Â ℓ_s W_ℓ]_s``."""
        if agg is not None:
            pre = self.transform(l, agg)
        elif l == self.num_layers - 1:
            pre = self.net.head(self.net.head_input(z, adj))
        else:
            pre = self.net.layers[l](z, adj)
        if l == 0 and self.label_lin is not None:
            if label_agg is None:
                if zl is None:
                    raise GnnkitError("label appending needs the label block of the first layer's input")
                label_agg = self.label_aggregate(zl, adj if label_adj is None else label_adj)
            lab = self.label_lin(label_agg)
            copies = lab.shape[0] // pre.shape[0]
            pre = (pre.repeat(copies, 1) if copies > 1 else pre) + lab
        return torch.relu(pre) if torch.is_grad_enabled() else pre.relu_()  # ``pre`` is always a fresh tensor


def reduce_loss(losses: Tensor, weight: Optional[Tensor]) -> Tensor:
    return losses.mean() if weight is None else (losses * weight).sum()


def sf_logits(h: Tensor, n: int, rows: Optional[Tensor] = None) -> Tensor:
    """``[m, C]`` dot products of the real rows ``h[rows]`` with the virtual rows ``h[n:]``."""
    real = h[:n] if rows is None else h[rows]
    return real @ h[n:].t()


def sf_loss(h: Tensor, n: int, rows: Optional[Tensor], y: Tensor, weight: Optional[Tensor] = None) -> Tensor:
    return reduce_loss(F.cross_entropy(sf_logits(h, n, rows), y, reduction="none"), weight)


def sf_loss_parts(h_rows: Tensor, h_vn: Tensor, y: Tensor, weight: Optional[Tensor] = None) -> Tensor:
    """:func:`sf_loss` from the loss rows' outputs ``[m, d]`` and the virtual rows' ``[C, d]``."""
    return reduce_loss(F.cross_entropy(h_rows @ h_vn.t(), y, reduction="none"), weight)


def goodness(h: Tensor, theta: float) -> Tensor:
    """``[n]``: ``Σ_j h_ij² − θ``."""
    return h.pow(2).sum(dim=1) - theta


def ff_loss(outputs: List[Tensor], rows: Optional[Tensor], theta: float, weight: Optional[Tensor] = None) -> Tensor:
    """``outputs[0]`` the true-label stream, ``outputs[1:]`` one per wrong label (``rows=None``: all rows)."""
    outputs = outputs if rows is None else [h[rows] for h in outputs]
    pos = goodness(outputs[0], theta)
    loss = reduce_loss(F.binary_cross_entropy_with_logits(pos, torch.ones_like(pos), reduction="none"), weight)
    negs = [reduce_loss(F.binary_cross_entropy_with_logits(g, torch.zeros_like(g), reduction="none"), weight)
            for g in (goodness(h, theta) for h in outputs[1:])]
    return loss + torch.stack(negs).mean()
