"""The model contract every gnnkit model follows.

``layers`` (``nn.ModuleList``): the message-passing layers; layer ``l`` maps ``h`` ``[n_in, d_l]``
and an :class:`~gnnkit.sparse.Adjacency` ``[n_out, n_in]`` to ``[n_out, d_{l+1}]``.
``head`` (``nn.Linear``): the classifier on top. ``embed(x, adj)`` is the head's input,
``forward(x, adj) = head(embed(x, adj))`` and ``inference(x, adj, batch_size)`` computes the same
for the whole graph layer by layer, in row chunks, holding at most one layer's activations for all
nodes at a time. ``adj`` is one adjacency for all layers or a list with one per layer (sampled
bipartite blocks). ``adj_norm`` names the normalization the model expects (see
:class:`~gnnkit.sparse.Adjacency`), so samplers and evaluation build the right one: each family has
its own (``GCN``: ``"gcn"``, ``GraphSAGE``: ``"mean"``, ``MLP``: ``"sum"``), and the constructor's
``adj_norm=``/``diag_lambda=`` choose another when the model is built (Cluster-GCN's diagonal
enhancement: ``adj_norm="diag", diag_lambda=λ``); it never changes afterwards.
``head_input_cacheable``: whether ``head_input`` has no parameters (so ``head(head_input(h, adj))``
may reuse a cached ``head_input``); a layer that splits into a parameter-free ``aggregate(h, adj)``
and ``transform(agg)`` (``transform(aggregate(h, adj)) == layer(h, adj)``) says so by having them.

Between layers: optional normalization (``"batch"``/``"layer"``), ReLU, dropout, and an optional
residual connection (added when the widths agree). Dropout (on the input features too) is
:func:`gnnkit.models.dropout.dropout`: inverted Bernoulli dropout whose CPU mask costs a fraction
of ``torch.nn.functional.dropout``'s.

Mixed precision (:mod:`gnnkit.precision`): weights stay float32; under autocast the activations are
half and ``forward``/``inference`` return float32 logits; outside autocast half inputs are widened
to the weights' type, so a model fed a half-precision store's rows computes in float32.
"""
from __future__ import annotations

import abc
from typing import Callable, Optional, Sequence, Union

import torch
from torch import Tensor, nn

from gnnkit.errors import GnnkitError
from gnnkit.precision import as_float, match_input
from gnnkit.sparse import NORMS

from .dropout import dropout, relu_dropout

AdjArg = Union["Adjacency", Sequence["Adjacency"], None]  # noqa: F821


def _norm_layer(kind: Optional[str], dim: int) -> nn.Module:
    if kind in (None, "none"):
        return nn.Identity()
    if kind == "batch":
        return nn.BatchNorm1d(dim)
    if kind == "layer":
        return nn.LayerNorm(dim)
    raise GnnkitError(f"unknown normalization layer {kind!r}; known: none, batch, layer")


def check_sizes(in_dim: int, hidden: int, out_dim: int, num_layers: int, dropout: float) -> None:
    """Raise a :class:`GnnkitError` for sizes no model can have (``num_layers < 1``, a width below 1,
    dropout outside ``[0, 1)``)."""
    if num_layers < 1:
        raise GnnkitError(f"num_layers must be at least 1, got {num_layers}")
    if min(in_dim, hidden, out_dim) < 1:
        raise GnnkitError(f"dimensions must be positive, got in={in_dim} hidden={hidden} out={out_dim}")
    if not 0.0 <= dropout < 1.0:
        raise GnnkitError(f"dropout must be in [0, 1), got {dropout}")


class GNN(nn.Module, abc.ABC):
    """``num_layers`` graph layers, the last of which is folded into the linear head.

    The classic 2-layer GCN ``Â σ(Â X W₁) W₂ + b`` is ``layers = [conv(F -> hidden)]`` and a head
    ``nn.Linear(hidden, C)`` applied to ``embed = Â H``: since ``Â (H W₂) + b = (Â H) W₂ + b``,
    the head stays a plain ``nn.Linear`` and ``embed`` is exactly its input. So ``len(layers) ==
    num_layers - 1`` and the last graph layer is ``head(head_input(h, adj))``; a strategy that
    walks all layers (ForwardGNN) calls :meth:`apply_layer` for ``i < len(layers)`` and
    :meth:`head_input` + ``head`` for the last.

    Every graph layer takes ``(h, adj, root)``: ``h`` ``[n_in, d]``, ``adj`` ``[n_out, n_in]`` and
    ``root`` ``[n_out, d]`` the rows of the output nodes themselves (default ``h[:n_out]``, the
    convention of sampled blocks; row-chunked inference passes its own slice).
    """

    adj_norm: str = "gcn"
    diag_lambda: float = 0.0
    head_input_cacheable: bool = False

    def __init__(self, in_dim: int, hidden: int, out_dim: int, *, num_layers: int = 2, dropout: float = 0.5,
                 norm: Optional[str] = None, residual: bool = False, adj_norm: Optional[str] = None,
                 diag_lambda: float = 0.0):
        super().__init__()
        adj_norm = adj_norm or type(self).adj_norm
        if adj_norm not in NORMS:
            raise GnnkitError(f"unknown adj_norm {adj_norm!r}; known: {', '.join(NORMS)}")
        if not diag_lambda >= 0:
            raise GnnkitError(f"diag_lambda must be >= 0, got {diag_lambda}")
        if diag_lambda and adj_norm != "diag":
            raise GnnkitError(f"diag_lambda={diag_lambda} needs adj_norm='diag', got {adj_norm!r}")
        self.adj_norm, self.diag_lambda = adj_norm, float(diag_lambda)
        check_sizes(in_dim, hidden, out_dim, num_layers, dropout)
        self.in_dim, self.hidden, self.out_dim, self.num_layers = in_dim, hidden, out_dim, num_layers
        self.dropout, self.residual = dropout, residual
        dims = [in_dim] + [hidden] * (num_layers - 1)
        self.layers = nn.ModuleList([self.make_layer(dims[i], dims[i + 1]) for i in range(num_layers - 1)])
        self.norms = nn.ModuleList([_norm_layer(norm, hidden) for _ in range(num_layers - 1)])
        self.head = nn.Linear(self.head_in_dim(dims[-1]), out_dim)

    # -- defined by each family --------------------------------------------------------------------
    @abc.abstractmethod
    def make_layer(self, in_dim: int, out_dim: int) -> nn.Module:
        """One graph layer ``[n_in, in_dim] -> [n_out, out_dim]`` of this family."""

    def head_in_dim(self, dim: int) -> int:
        return dim

    def head_input(self, h: Tensor, adj, root: Optional[Tensor] = None) -> Tensor:
        """The last graph layer's propagation, whose output the head maps to classes."""
        return adj @ h

    # -- the contract -------------------------------------------------------------------------------
    @staticmethod
    def adj_at(adj: AdjArg, i: int):
        """The adjacency of layer ``i`` (``adj`` itself unless it is a per-layer list)."""
        return adj[i] if isinstance(adj, (list, tuple)) else adj

    def apply_layer(self, i: int, h: Tensor, adj, root: Optional[Tensor] = None) -> Tensor:
        """Graph layer ``i`` with its normalization, ReLU, residual and dropout (half ``h`` outside
        autocast is widened to the weights' type, :func:`~gnnkit.precision.match_input`)."""
        h = match_input(h, self.head.weight)
        root = None if root is None else match_input(root, self.head.weight)
        out = self.norms[i](self.layers[i](h, adj, root))
        if not (self.residual and out.shape[1] == h.shape[1]):
            return relu_dropout(out, self.dropout, self.training)  # dropout(relu(out)), fused
        out = torch.relu(out) + (h[: out.shape[0]] if root is None else root)
        return dropout(out, self.dropout, self.training)

    def embed(self, x: Tensor, adj: AdjArg) -> Tensor:
        """The head's input. A per-layer ``adj`` list may carry ``layer_input(model, i, h)``: it maps
        the rows computed for layer ``i``'s input to the rows layer ``i`` consumes (historical
        embeddings append out-of-batch neighbors' stored rows; see :mod:`gnnkit.history`)."""
        h = dropout(match_input(x, self.head.weight), self.dropout, self.training)
        hook = getattr(adj, "layer_input", None)
        for i in range(len(self.layers)):
            h = self.apply_layer(i, h, self.adj_at(adj, i))
            if hook is not None:
                h = hook(self, i + 1, h)
        return self.head_input(h, self.adj_at(adj, len(self.layers)))

    def forward(self, x: Tensor, adj: AdjArg, return_embedding: bool = False):
        h = self.embed(x, adj)
        out = as_float(self.head(h))  # float32 logits under autocast: the loss and metrics run in float32
        return (out, h) if return_embedding else out

    @torch.no_grad()
    def inference(self, x: Tensor, adj, batch_size: Optional[int] = None, return_embedding: bool = False,
                  rows: Optional[tuple[int, int]] = None, gather: Optional[Callable[[Tensor], Tensor]] = None):
        """``forward`` for the whole graph, layer by layer over chunks of ``batch_size`` rows.

        Only the current layer's input and output exist for all nodes at any time. To split the
        work between processes, ``rows = (start, end)`` computes only those rows of each layer and
        ``gather`` turns them into the whole layer (an all-gather across ranks).
        """
        was_training = self.training
        self.eval()
        n = adj.num_rows
        lo, hi = rows if rows is not None else (0, n)
        bs = batch_size or max(hi - lo, 1)
        chunks = [(s, min(hi, s + bs)) for s in range(lo, hi, bs)] or [(lo, hi)]
        whole = len(chunks) == 1 and (lo, hi) == (0, n)
        h = match_input(x, self.head.weight)
        for i in range(len(self.layers) + 1):
            outs = []
            for s, e in chunks:
                a = adj if whole else adj.row_slice(s, e)
                outs.append(self.apply_layer(i, h, a, h[s:e]) if i < len(self.layers)
                            else self.head_input(h, a, h[s:e]))
            h = outs[0] if len(outs) == 1 else torch.cat(outs)
            if gather is not None:
                h = gather(h)
            elif rows is not None and i < len(self.layers):
                raise ValueError("inference over a row range needs gather for the layers after the first")
            del outs
        starts = range(0, h.shape[0], bs)
        logits = as_float(torch.cat([self.head(h[s:s + bs]) for s in starts]) if h.shape[0] else self.head(h))
        self.train(was_training)
        return (logits, h) if return_embedding else logits
