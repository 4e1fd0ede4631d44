"""Models written the PyG way in the Trainer: :class:`PyGModel` wraps ``forward(x, edge_index)``.

A user's ``torch.nn.Module`` whose ``forward`` takes ``(x, edge_index)`` (optionally ``edge_weight``
and/or ``edge_attr``, by keyword) — ``torch_geometric.nn`` layers such as ``GATConv`` stacked by
hand, or ``torch_geometric.nn.models.GraphSAGE`` — trains through ``Trainer.fit(PyGModel(module),
data)`` (:func:`as_model` wraps only what needs it). The wrapper holds the user's module as its only
submodule, so the user's module holds the trained (selected) weights after ``fit``.

What it declares to the samplers (which read, never write, the model):

* ``wants_edge_index = True``: the full-batch, cluster and neighbor samplers hand it a
  :class:`~gnnkit.samplers.batch.PygEdges` (``edge_index`` ``[2, E]`` of the batch's subgraph in
  batch-local ids, the raw ``edge_weight`` ``[E]`` and ``edge_attr`` ``[E, D]`` when the graph has
  them and the module takes them) instead of normalized adjacencies; the module normalizes itself
  (``GCNConv``'s ``gcn_norm``, ``GATConv``'s attention). The loss rows are the batch's
  ``loss_index`` (the seeds first for the neighbor sampler, as PyG's ``NeighborLoader``);
* ``adj_norm = "sum"``: the whole-graph operator of evaluation is the raw weighted adjacency, from
  which :meth:`PyGModel.inference` reads the edges back (full-graph forward, no layer-wise chunks);
* ``num_layers``: the module's own ``num_layers``, else its count of ``MessagePassing`` layers (the
  neighbor sampler wants one fanout per layer);
* ``takes_edge_weight`` / ``takes_edge_attr``: from PyG's ``supports_edge_weight`` /
  ``supports_edge_attr`` when the module has them (``BasicGNN`` models), else from ``forward``'s
  parameters.

MVS (per-layer historical embeddings) and ForwardGNN (layer-local training) need gnnkit's
``layers``/``head`` contract and refuse a wrapped module with an error naming it.
"""
from __future__ import annotations

import inspect
from typing import Callable, Optional

import torch
from torch import Tensor, nn

from gnnkit.errors import GnnkitError
from gnnkit.samplers.batch import PygEdges
from gnnkit.sparse.build import rows_of


def _forward_params(module: nn.Module) -> dict:
    try:
        return dict(inspect.signature(module.forward).parameters)
    except (TypeError, ValueError):
        return {}


def is_pyg_model(module) -> bool:
    """Whether ``module`` is a ``torch.nn.Module`` whose ``forward`` takes ``edge_index`` as its second
    argument (PyG's convention) rather than gnnkit's ``adj``."""
    if not isinstance(module, nn.Module) or isinstance(module, PyGModel):
        return False
    names = list(_forward_params(module))
    return len(names) >= 2 and names[1] == "edge_index"


def as_model(module: nn.Module) -> nn.Module:
    """``PyGModel(module)`` for a PyG-style module (:func:`is_pyg_model`), ``module`` itself otherwise."""
    return PyGModel(module) if is_pyg_model(module) else module


def _count_layers(module: nn.Module) -> Optional[int]:
    if isinstance(getattr(module, "num_layers", None), int):
        return module.num_layers
    from torch_geometric.nn import MessagePassing

    n = sum(isinstance(m, MessagePassing) for m in module.modules())
    return n or None


class PyGModel(nn.Module):
    """``module(x, edge_index[, edge_weight=][, edge_attr=])`` behind gnnkit's model interface.

    Args:
        module: the user's PyG-style module (``forward(x, edge_index, ...) -> [n, C]``).
        num_layers: its message-passing depth, when it cannot be read from the module.
    """

    wants_edge_index = True
    adj_norm = "sum"
    diag_lambda = 0.0

    def __init__(self, module: nn.Module, num_layers: Optional[int] = None):
        super().__init__()
        if not isinstance(module, nn.Module):
            raise GnnkitError(f"PyGModel wraps a torch.nn.Module, got {type(module).__name__}")
        params = _forward_params(module)
        if "edge_index" not in params:
            raise GnnkitError(f"{type(module).__name__}.forward takes no edge_index: a PyG-style model is "
                              "forward(x, edge_index[, edge_weight][, edge_attr])")
        self.module = module
        self.takes_edge_weight = bool(getattr(module, "supports_edge_weight", "edge_weight" in params))
        self.takes_edge_attr = bool(getattr(module, "supports_edge_attr", "edge_attr" in params))
        layers = num_layers or _count_layers(module)
        if layers is not None:
            self.num_layers = int(layers)

    def call(self, x: Tensor, edges: PygEdges) -> Tensor:
        """The module on ``x`` ``[n, F]`` and the subgraph ``edges``: ``[n, C]``."""
        kw = {}
        if self.takes_edge_weight and edges.edge_weight is not None:
            kw["edge_weight"] = edges.edge_weight
        if self.takes_edge_attr and edges.edge_attr is not None:
            kw["edge_attr"] = edges.edge_attr
        return self.module(x, edges.edge_index, **kw)

    def forward(self, x: Tensor, adj, return_embedding: bool = False):
        """``adj``: a :class:`PygEdges` (from a sampler) or a whole-graph ``"sum"``
        :class:`~gnnkit.sparse.Adjacency`. The module's output doubles as the embedding."""
        out = self.call(x, adj if isinstance(adj, PygEdges) else edges_of(adj))
        return (out, out) if return_embedding else out

    def whole_graph(self, ctx):
        """Evaluation's input (``Strategy.predict`` asks for it): the graph's own edges
        (:func:`whole_graph_edges`: original order, ``edge_attr``), or the ``"sum"`` adjacency when
        ``ctx.inference_batch_size`` asks for row chunks of a larger graph, the depth ``num_layers`` is
        known and no edge features are needed (:meth:`inference` chunks an adjacency)."""
        size, n = ctx.inference_batch_size, ctx.graph.num_nodes
        attr = self.takes_edge_attr and getattr(ctx.data, "edge_attr", None) is not None
        if size and size < n and hasattr(self, "num_layers") and not attr:
            return ctx.graph.adjacency("sum")
        return whole_graph_edges(ctx, self)

    @torch.no_grad()
    def inference(self, x: Tensor, adj, batch_size: Optional[int] = None, return_embedding: bool = False,
                  rows: Optional[tuple] = None, gather: Optional[Callable[[Tensor], Tensor]] = None):
        """The whole graph's output ``[N, C]`` (eval mode). ``adj``: a :class:`PygEdges` or a ``"sum"``
        :class:`~gnnkit.sparse.Adjacency`. One forward over the whole graph, or, when ``batch_size``
        is smaller than the row range, ``adj`` is an adjacency and ``num_layers`` is known, chunks of ``batch_size`` rows each
        run on its exact ``num_layers``-hop in-neighborhood (:func:`hop_subgraph`: the same numbers up
        to rounding, memory bounded by a chunk's neighborhood). ``rows``/``gather``: this rank's rows,
        then the all-gather."""
        was_training = self.training
        self.eval()
        n = x.shape[0]
        lo, hi = rows if rows is not None else (0, n)
        if batch_size and batch_size < hi - lo and hasattr(self, "num_layers") and not isinstance(adj, PygEdges):
            lid = torch.full((n,), -1, dtype=torch.long, device=x.device)
            outs = []
            for s in range(lo, hi, batch_size):
                seeds = torch.arange(s, min(hi, s + batch_size), device=x.device)
                n_id, edges = hop_subgraph(adj, seeds, getattr(self, "num_layers", 1), lid)
                outs.append(self.forward(x[n_id], edges)[:seeds.numel()])
            out = torch.cat(outs)
        else:
            out = self.forward(x, adj)[lo:hi]
        self.train(was_training)
        if gather is not None:
            out = gather(out)
        return (out, out) if return_embedding else out


def hop_subgraph(adj, seeds: Tensor, hops: int, lid: Tensor):
    """``(n_id, edges)``: the ``hops``-hop in-neighborhood of ``seeds`` in the ``"sum"`` adjacency
    ``adj`` (``A[i, j] = a_ij`` of ``j -> i``), every in-edge of each node reached before the last hop,
    in local ids (``n_id`` positions, seeds first): a model with ``hops`` layers gives the seeds
    their whole-graph output on it. ``lid``: a ``[N]`` buffer of ``-1`` (restored)."""
    from gnnkit.sparse.segments import concat_ranges
    from gnnkit.sparse.subgraph import relabel

    crow, col, val = adj.csr.crow_indices(), adj.csr.col_indices(), adj.csr.values()
    n_id, frontier, parts = seeds, seeds, []
    for _ in range(hops):
        start = crow[frontier].long()
        counts = crow[frontier + 1].long() - start
        pos = concat_ranges(start, counts)
        local, new = relabel(lid, n_id, col[pos].long())
        first = n_id.numel() - frontier.numel()
        parts.append((local, torch.repeat_interleave(torch.arange(first, n_id.numel(), device=seeds.device), counts),
                      val[pos]))
        n_id, frontier = torch.cat([n_id, new]), new
    src, dst, w = (torch.cat(t) for t in zip(*parts))
    return n_id, PygEdges(torch.stack([src, dst]), w)


def edges_of(adj) -> PygEdges:
    """The edges ``j -> i`` of a ``"sum"`` :class:`~gnnkit.sparse.Adjacency` (``A[i, j] = a_ij``):
    ``edge_index = [j; i]`` ``[2, nnz]`` by target, ``edge_weight`` the entries ``[nnz]``."""
    if not hasattr(adj, "csr"):
        raise GnnkitError(f"a PyG-style model needs edges, got {type(adj).__name__} (its sampler builds blocks "
                          "only a gnnkit model can read)")
    crow, col = adj.csr.crow_indices(), adj.csr.col_indices()
    edge_index = torch.stack([col.long(), rows_of(crow).long()])
    return PygEdges(edge_index, adj.csr.values())


def refuse(model, who: str, needs: str) -> None:
    """A :class:`GnnkitError` when ``model`` is a wrapped PyG module: ``who`` needs ``needs``."""
    if getattr(model, "wants_edge_index", False):
        inner = type(getattr(model, "module", model)).__name__
        raise GnnkitError(f"{who} needs {needs}; {inner} is a PyG-style module (forward(x, edge_index)): "
                          "train it with the full, cluster or neighbor sampler")


def whole_graph_edges(ctx, model) -> PygEdges:
    """The whole graph for a PyG-style model's evaluation: the graph's own ``edge_index`` ``[2, E]``,
    ``edge_weight`` ``[E]`` and (for a model that takes them) ``data.edge_attr`` ``[E, D]``."""
    attr = getattr(ctx.data, "edge_attr", None) if getattr(model, "takes_edge_attr", False) else None
    return PygEdges(ctx.graph.edge_index(), ctx.graph.edge_weight(), attr)
