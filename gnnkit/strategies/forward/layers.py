"""ForwardGNN's view of a gnnkit model as ``L`` local layers ``f_0 .. f_{L−1}``.

A gnnkit GNN (:class:`gnnkit.models.GNN`) with ``num_layers = L`` has ``L − 1`` convolutions in
``layers`` and the last graph layer folded into ``head(head_input(h, adj))``. ForwardGNN trains
every graph layer on its own, so :class:`LayerStack` exposes them as::

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

Cached aggregation: a layer that splits into a parameter-free aggregation ``a = agg_l(z, Â)`` and
a transform ``t_l(a)`` says so through the model's contract: a convolution that defines
``aggregate(h, adj) -> tuple`` and ``transform(agg) -> Tensor``, and for the last layer a model
whose ``head_input_cacheable`` is true (``a = head_input(z, Â)``, ``t = head(a)``). When ``z`` and
``Â`` are fixed over epochs, ``a`` is computed once. Other layers are not split
(:meth:`LayerStack.cacheable` is False) and run whole.
"""
from __future__ import annotations

from typing import List, Optional

import torch
from torch import Tensor, nn

from ...errors import GnnkitError

#: the model attribute that declares ``head_input`` parameter-free (the head's layer may be cached)
HEAD_FLAG = "head_input_cacheable"


class LayerStack(nn.Module):
    """``model``'s graph layers as local layers ``0..L−1`` plus the label weights (FF-LA).

    The model is held, not registered as a submodule: the stack never assigns to it; its own
    parameters are the label weights alone."""

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

    def is_head(self, l: int) -> bool:
        return l == self.num_layers - 1

    def parameters_of(self, l: int) -> List[nn.Parameter]:
        """Layer ``l``'s parameters (layer 0: with the label weights)."""
        mod = self.net.head if self.is_head(l) else self.net.layers[l]
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
        """Whether layer ``l`` splits into a parameter-free aggregation and a transform (as the
        model declares: see the module docstring)."""
        if self.is_head(l):
            return bool(getattr(self.net, HEAD_FLAG, False))
        conv = self.net.layers[l]
        return callable(getattr(conv, "aggregate", None)) and callable(getattr(conv, "transform", None))

    def aggregate(self, l: int, z: Tensor, adj) -> tuple:
        """The parameter-free part ``agg_l(z, Â)`` of layer ``l`` (only where :meth:`cacheable`)."""
        if self.is_head(l):
            return (self.net.head_input(z, adj),)
        return self.net.layers[l].aggregate(z, adj)

    def transform(self, l: int, agg: tuple) -> Tensor:
        """``t_l(agg)``, the layer's parameters applied to its aggregation (before the ReLU)."""
        if self.is_head(l):
            return self.net.head(agg[0])
        return self.net.layers[l].transform(agg)

    def label_aggregate(self, zl: Tensor, adj) -> Tensor:
        return self.net.head_input(zl, adj)

    # -- one layer --------------------------------------------------------------------------------
    def forward(self, l: int, z: Optional[Tensor], adj, zl: Optional[Tensor] = None,
                agg: Optional[tuple] = None, label_agg: Optional[Tensor] = None, label_adj=None) -> Tensor:
        """``f_l`` on input ``z`` ``[n_in, d_l]`` (or its cached aggregation ``agg``) plus, on layer
        0, the label block ``zl`` ``[S·n_in, C]`` (or its aggregation ``label_agg``, with
        ``label_adj``, default ``adj``) → ``[S·n_out, width_l]``. With ``S > 1`` stacked label
        copies (see :class:`~gnnkit.strategies.forward.graphs.View`) the feature term ``Â z W``,
        computed once, is repeated for every copy: ``[Â z W + Â ℓ_s W_ℓ]_s``."""
        if agg is not None:
            pre = self.transform(l, agg)
        elif self.is_head(l):
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
