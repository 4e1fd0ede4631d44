"""The graphs ForwardGNN's layers run on: virtual class nodes, stacked label copies, :class:`View`.

* :func:`augment_edges`: the graph with ``C`` virtual class nodes ``n, ..., n + C − 1`` appended;
  every node ``i`` with ``link[i]`` gets the two edges ``i → n + label[i]`` and
  ``n + label[i] → i``; no other node touches a virtual node.
* :func:`stack_copies`: ``S`` disjoint copies of a graph (block-diagonal), so that ``S`` label
  streams on one graph (FF-LA's true and wrong labels, or its ``C`` candidate labels at
  prediction) run as one stacked ``[S·n, d]`` pass instead of ``S`` passes.
* :class:`GraphViews`: builds the :class:`View` of the whole graph (read through the run
  context's stores), of a subgraph batch and of the prediction passes, and the first layer's input.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, NamedTuple, Optional

import torch
from torch import Tensor

from ...errors import GnnkitError
from ...sparse import Adjacency
from .inputs import l2_normalize, label_rows, row_normalize


def augment_edges(edge_index: Tensor, num_nodes: int, labels: Tensor, link: Tensor) -> Tensor:
    """``edge_index`` ``[2, E]`` plus the virtual-node edges, ``[2, E + 2·Σ link]``.

    ``labels`` ``[n]`` (class of each node's virtual node, read only where ``link``), ``link``
    ``[n]`` bool. Virtual node of class ``c`` has id ``num_nodes + c``.
    """
    nodes = link.nonzero().view(-1)
    if nodes.numel() and int(labels[nodes].min()) < 0:
        raise GnnkitError("a node linked to a virtual class node has no label (y = -1)")
    vn = labels[nodes] + num_nodes
    extra = torch.stack([torch.cat([nodes, vn]), torch.cat([vn, nodes])]).to(edge_index.dtype)
    return torch.cat([edge_index, extra], dim=1)


def stack_copies(edge_index: Tensor, num_nodes: int, copies: int) -> Tensor:
    """``[2, S·E]``: ``edge_index`` repeated ``S = copies`` times, copy ``s`` on nodes ``s·n .. s·n + n − 1``.

    Its normalized adjacency is ``diag(Â, …, Â)``: normalization is per node, and the copies
    share no edge, so every copy is normalized exactly as the graph itself.
    """
    offsets = (torch.arange(copies, device=edge_index.device, dtype=edge_index.dtype) * num_nodes).repeat_interleave(
        edge_index.shape[1])
    return edge_index.repeat(1, copies) + offsets


class View(NamedTuple):
    """A graph as the layers see it: ``n`` real nodes (virtual nodes, if any, are rows ``n..``),
    ``x`` ``[rows, F]`` row-normalized features, one adjacency per stream (or one shared), the
    appended label block per stream (FF-LA) and whether streams share the first stream's input.

    Stacked label streams (FF-LA): ``labels[0]`` is ``[S·n, C]``, ``S = copies`` label blocks of
    the same ``n`` nodes, and ``stacked`` the block-diagonal adjacency of ``S`` copies of the
    graph (:func:`stack_copies`). Layer 0's feature part ``x`` ``[n, F]`` is the same in every
    copy and is aggregated once on ``adjs[0]``; the label part and every layer above run on the
    stacked ``[S·n, ·]`` rows with ``stacked``."""
    n: int
    x: Tensor
    adjs: List[Adjacency]
    labels: List[Optional[Tensor]]
    shared_input: bool = False
    copies: int = 1
    stacked: Optional[Adjacency] = None

    @property
    def streams(self) -> int:
        return max(len(self.adjs), len(self.labels))

    def adj(self, k: int) -> Adjacency:
        return self.adjs[k if len(self.adjs) > 1 else 0]

    def label(self, k: int) -> Optional[Tensor]:
        return self.labels[k if len(self.labels) > 1 else 0]

    def graph(self, k: int, l: int) -> Adjacency:
        """The adjacency layer ``l`` of stream ``k`` aggregates its (feature) input with."""
        return self.stacked if self.stacked is not None and l > 0 else self.adj(k)

    def label_graph(self, k: int) -> Adjacency:
        """The adjacency of the appended label block (layer 0)."""
        return self.stacked if self.stacked is not None else self.adj(k)


@dataclass(frozen=True)
class LabelSetup:
    """What the views need of the variant, fixed at ``configure``: ``variant`` (``sf``, ``ff-la``,
    ``ff-vn``), ``C`` classes, ``k`` wrong labels per training node (``None`` for ``sf``), the
    virtual nodes' features ``vn`` ``[C, F]`` (``sf``, ``ff-vn``), the wrong labels ``neg``
    ``[N, k]`` and the global feature ``shift`` of :func:`~.inputs.row_normalize`."""
    variant: str
    C: int
    k: Optional[int]
    vn: Optional[Tensor]
    neg: Optional[Tensor]
    shift: Optional[float]


class GraphViews:
    """Builds the :class:`View` objects of one run: the whole graph (built once), subgraph batches
    and the prediction passes. Reads structure through ``ctx.graph`` and node tensors through
    ``ctx.features``; normalizes with the model's operator ``ctx.adj_norm`` / ``ctx.diag_lambda``."""

    def __init__(self, ctx, setup: LabelSetup):
        self.ctx, self.setup = ctx, setup
        self._full: Optional[View] = None
        self._memo: dict = {}

    def node(self, name: str, ids: Optional[Tensor] = None) -> Tensor:
        return self.ctx.features.get(name, ids).to(self.ctx.device)

    def adjacency(self, edge_index: Tensor, num_nodes: int) -> Adjacency:
        return Adjacency.from_edge_index(edge_index, num_nodes, norm=self.ctx.adj_norm,
                                         diag_lambda=float(self.ctx.diag_lambda or 0.0))

    def _whole(self, key, build):
        """``build()`` for the whole graph, built once per ``key``."""
        if key not in self._memo:
            self._memo[key] = build()
        return self._memo[key]

    def _stacked(self, edge_index: Tensor, n: int, copies: int, whole: bool) -> Adjacency:
        """``diag(Â, …, Â)`` over ``copies`` copies; built once for the whole graph."""
        build = lambda: self.adjacency(stack_copies(edge_index, n, copies), copies * n)  # noqa: E731
        return self._whole(("stacked", copies), build) if whole else build()

    def train_view(self, x: Tensor, edge_index: Tensor, y: Tensor, train: Tensor, neg: Optional[Tensor],
                   whole: bool = False) -> View:
        """The training view of a graph (``whole``: the run's whole graph, whose stacked adjacency is kept)."""
        s, n = self.setup, y.numel()
        xn = row_normalize(x, s.shift)
        if s.variant == "ff-la":  # the true label and the k wrong ones as S = 1 + k stacked copies
            labels = torch.cat([label_rows(y, train, s.C)] + [label_rows(neg[:, i], train, s.C) for i in range(s.k)])
            adj, copies = self.adjacency(edge_index, n), 1 + s.k
            return View(n, xn, [adj], [labels], copies=copies, stacked=self._stacked(edge_index, n, copies, whole))
        xa = torch.cat([xn, s.vn])
        targets = [y] + ([neg[:, i] for i in range(s.k)] if s.variant == "ff-vn" else [])
        adjs = [self.adjacency(augment_edges(edge_index, n, t, train), n + s.C) for t in targets]
        return View(n, xa, adjs, [None], shared_input=True)

    def full(self) -> View:
        """The whole graph's training view (built once)."""
        if self._full is None:
            self._full = self.train_view(self.node("x"), self.ctx.graph.edge_index(), self.node("y"),
                                         self.node("train_mask"), self.setup.neg, whole=True)
        return self._full

    def is_full(self, view: View) -> bool:
        """Whether ``view`` is the whole graph's training view (once built)."""
        return self._full is not None and view is self._full

    def batch(self, batch) -> View:
        """The training view of a subgraph batch (``batch.n_id`` ``[k]``, ``batch.x`` ``[k, F]``)."""
        if isinstance(batch.adj, (list, tuple)) or batch.adj.num_rows != batch.x.shape[0]:
            raise GnnkitError("the forward strategy needs batches that are whole subgraphs (full, cluster), "
                              "not per-layer sampled blocks")
        n_id = batch.n_id
        neg = self.setup.neg[n_id] if self.setup.neg is not None else None
        return self.train_view(batch.x, self.ctx.graph.induced_subgraph(n_id), self.node("y", n_id),
                               self.node("train_mask", n_id), neg)

    def candidate_vn(self, c: int, known: Tensor, evaluated: Tensor) -> View:
        """FF-VN pass for candidate class ``c``: ``evaluated`` nodes carry ``c``, ``known`` their label."""
        y, n = self.node("y"), self.ctx.graph.num_nodes
        lab = torch.where(evaluated, torch.full_like(y, c), y)
        aug = augment_edges(self.ctx.graph.edge_index(), n, lab, known | evaluated)
        xa = torch.cat([row_normalize(self.node("x"), self.setup.shift), self.setup.vn])
        return View(n, xa, [self.adjacency(aug, n + self.setup.C)], [None])

    def candidates_la(self, p: int, known: Tensor, evaluated: Tensor) -> View:
        """FF-LA's ``C`` candidate passes as one view of ``C`` stacked copies: in copy ``c`` the
        ``evaluated`` nodes carry ``c`` and the ``known`` nodes their label. Fixed per pass ``p``,
        so built once."""
        def build() -> View:
            y, ei, n, C = self.node("y"), self.ctx.graph.edge_index(), self.ctx.graph.num_nodes, self.setup.C
            cand = torch.arange(C, device=y.device).repeat_interleave(n)  # [C·n]: c of copy c
            lab = torch.where(evaluated.repeat(C), cand, y.repeat(C))
            labels = label_rows(lab, (known | evaluated).repeat(C), C)
            return View(n, row_normalize(self.node("x"), self.setup.shift), [self.adjacency(ei, n)], [labels],
                        copies=C, stacked=self._stacked(ei, n, C, True))

        return self._whole(("la", p), build)

    @staticmethod
    def first_input(view: View, k: int):
        """``z_0`` of stream ``k``: ``[x ‖ ℓ] / ‖[x ‖ ℓ]‖`` split into ``(z, zℓ)``; ``z`` ``[n, F]``
        is shared by the stacked label copies, whose rows have equal norms (one-hot or ``1/C``
        rows on the same nodes), so one scale serves every copy."""
        lab = view.label(k)
        if lab is None:
            return l2_normalize(view.x), None
        sq = lab.pow(2).sum(1, keepdim=True).view(view.copies, -1, 1)
        if view.copies > 1 and not torch.equal(sq, sq[:1].expand_as(sq)):
            raise GnnkitError("stacked label copies must have equal row norms (one-hot or uniform rows alike)")
        scale = 1.0 / (torch.sqrt(view.x.pow(2).sum(1, keepdim=True) + sq[0]) + 1e-8)
        return view.x * scale, lab * (scale.repeat(view.copies, 1) if view.copies > 1 else scale)
