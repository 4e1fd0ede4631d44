"""Inputs of ForwardGNN's layers: normalizations, virtual class nodes, appended labels, negatives.

All functions are tensor operations over whole node or edge sets (no Python loops over nodes).

* :func:`row_normalize`: the reference's feature preprocessing (PyG ``NormalizeFeatures``):
  ``x ← x − min(x)`` (one global shift, passed in so that a batch gets the whole graph's), then
  each row divided by ``max(1, Σ_j x_ij)``; signed features are divided by ``max(1, Σ_j |x_ij|)``.
* :func:`l2_normalize`: ``h_i / (‖h_i‖₂ + 1e-8)``, applied to every layer's input.
* :func:`augment_edges`: the graph with ``C`` virtual class nodes ``n, ..., n + C − 1`` appended;
  every node ``i`` with ``link[i]`` gets the two edges ``i → n + label[i]`` and
  ``n + label[i] → i``; no other node touches a virtual node.
* :func:`label_rows`: the appended label block ``[n, C]``: one-hot rows for the known nodes,
  ``1/C`` everywhere else.
* :func:`wrong_labels`: ``k`` distinct wrong classes per node, drawn once with a seeded generator.
* :func:`stack_copies`: ``S`` disjoint copies of a graph (block-diagonal), so that ``S`` label
  streams on one graph (FF-LA's true and wrong labels, or its ``C`` candidate labels at
  prediction) run as one stacked ``[S·n, d]`` pass instead of ``S`` passes.
"""
from __future__ import annotations

from typing import List, NamedTuple, Optional

import torch
from torch import Tensor

from ..errors import GnnkitError
from ..sparse import Adjacency


def feature_shift(x: Tensor) -> Optional[float]:
    """The global minimum that :func:`row_normalize` subtracts (the whole graph's, fixed once),
    or ``None`` for features that take negative values (see :func:`row_normalize`)."""
    lo = float(x.min()) if x.numel() else 0.0
    return None if lo < 0 else lo


def row_normalize(x: Tensor, shift: Optional[float]) -> Tensor:
    """``(x − shift)`` with every row divided by ``max(1, row sum)``: ``[n, F] → [n, F]``.

    For signed features (``shift is None``, e.g. Gaussian features) the reference's global shift
    would add a constant far larger than the signal to every entry and wash it out; there each row
    is divided by ``max(1, Σ_j |x_ij|)`` instead, which equals the reference on non-negative rows.
    """
    x = x.float()
    if shift is None:
        return x / x.abs().sum(dim=1, keepdim=True).clamp(min=1.0)
    x = x - shift
    return x / x.sum(dim=1, keepdim=True).clamp(min=1.0)


def l2_normalize(h: Tensor) -> Tensor:
    """Rows scaled to unit length: ``h_i / (‖h_i‖₂ + 1e-8)``, ``[n, d] → [n, d]``."""
    return h / (h.norm(dim=1, keepdim=True) + 1e-8)


def l2_normalize_(h: Tensor) -> Tensor:
    """:func:`l2_normalize` in place (no autograd; for a fresh tensor nobody else reads)."""
    return h.div_(h.norm(dim=1, keepdim=True).add_(1e-8))


def virtual_node_features(num_classes: int, dim: int, seed: int) -> Tensor:
    """``[C, dim]`` fixed features of the virtual class nodes, ``N(0, 1)`` from ``seed`` (CPU)."""
    gen = torch.Generator().manual_seed(int(seed))
    return torch.randn(num_classes, dim, generator=gen)


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


def label_rows(labels: Tensor, known: Tensor, num_classes: int) -> Tensor:
    """``[n, C]``: ``onehot(labels[i])`` where ``known[i]``, ``1/C`` in every other row."""
    out = torch.full((labels.numel(), num_classes), 1.0 / num_classes, device=labels.device)
    idx = known.nonzero().view(-1)
    out[idx] = torch.nn.functional.one_hot(labels[idx].clamp(min=0), num_classes).float()
    return out


def wrong_labels(y: Tensor, num_classes: int, k: int, seed: int) -> Tensor:
    """``[n, k]`` int64: for every node ``k`` distinct classes other than ``y[i]``, random order.

    Nodes without a label (``y = −1``) get any ``k`` distinct classes (they are never trained on).
    """
    if not 1 <= k <= num_classes - 1:
        raise GnnkitError(f"the number of negative labels must lie in [1, {num_classes - 1}], got {k}")
    gen = torch.Generator().manual_seed(int(seed))
    r = torch.rand(y.numel(), num_classes, generator=gen)
    lab = y.cpu()
    has = lab >= 0
    r[has.nonzero().view(-1), lab[has]] = 2.0  # the true class sorts last
    return r.argsort(dim=1)[:, :k].to(y.device)


def stack_copies(edge_index: Tensor, num_nodes: int, copies: int) -> Tensor:
    """``[2, S·E]``: ``edge_index`` repeated ``S = copies`` times, copy ``s`` on nodes ``s·n .. s·n + n − 1``.

    Its normalized adjacency is ``diag(Â, …, Â)``: normalization is per node, and the copies
    share no edge, so every copy is normalized exactly as the graph itself.
    """
    offsets = (torch.arange(copies, device=edge_index.device, dtype=edge_index.dtype) * num_nodes).repeat_interleave(
        edge_index.shape[1])
    return edge_index.repeat(1, copies) + offsets


def induced_edges(edge_index: Tensor, n_id: Tensor, num_nodes: int) -> Tensor:
    """Edges of ``edge_index`` between the nodes ``n_id``, renumbered ``0..len(n_id)-1``."""
    local = torch.full((num_nodes,), -1, dtype=torch.long, device=edge_index.device)
    local[n_id] = torch.arange(n_id.numel(), device=edge_index.device)
    src, dst = local[edge_index[0]], local[edge_index[1]]
    keep = (src >= 0) & (dst >= 0)
    return torch.stack([src[keep], dst[keep]])


def check_labels(y: Tensor, num_classes: Optional[int]) -> int:
    """The number of classes of a single-label graph; raises on multi-label targets."""
    if y.dim() != 1:
        raise GnnkitError("the forward strategy handles single-label node classification only (y must be [N])")
    c = int(num_classes) if num_classes is not None else int(y.max()) + 1
    if c < 2:
        raise GnnkitError(f"the forward strategy needs at least 2 classes, got {c}")
    return c


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


class ForwardViews:
    """How the strategy (:class:`~gnnkit.strategies.forward.ForwardLearning`, which mixes this in)
    builds its :class:`View` of a graph and the first layer's input; needs its ``stack``,
    ``variant``, ``C``, ``k``, ``vn``, ``neg``, ``shift`` and the memo ``_graphs``."""

    # -- graphs ---------------------------------------------------------------------------------------
    def _adj(self, edge_index: Tensor, num_nodes: int) -> Adjacency:
        net = self.stack.net  # read now: a sampler may set the model's normalization at its setup
        return Adjacency.from_edge_index(edge_index, num_nodes, norm=getattr(net, "adj_norm", "gcn"),
                                         diag_lambda=float(getattr(net, "diag_lambda", 0.0) or 0.0))

    def _memo_graph(self, owner, key, build):
        """``build()`` memoized per graph object ``owner`` (compared by identity, not by ``id``)."""
        hit = self._graphs.get((id(owner), key))
        if hit is None or hit[0] is not owner:
            hit = (owner, build())
            self._graphs[(id(owner), key)] = hit
        return hit[1]

    def _stacked_adj(self, edge_index: Tensor, n: int, copies: int, owner=None) -> Adjacency:
        """``diag(Â, …, Â)`` over ``copies`` copies; memoized for a whole graph ``owner``."""
        build = lambda: self._adj(stack_copies(edge_index, n, copies), copies * n)  # noqa: E731
        return build() if owner is None else self._memo_graph(owner, ("stacked", copies), build)

    def _train_view(self, x, edge_index, y, train, neg, owner=None) -> View:
        n = y.numel()
        xn = row_normalize(x, self.shift)
        if self.variant == "ff-la":  # the true label and the k wrong ones as S = 1 + k stacked copies
            labels = torch.cat([label_rows(y, train, self.C)] +
                               [label_rows(neg[:, i], train, self.C) for i in range(self.k)])
            adj, copies = self._adj(edge_index, n), 1 + self.k
            big = self._stacked_adj(edge_index, n, copies, owner)
            return View(n, xn, [adj], [labels], copies=copies, stacked=big)
        xa = torch.cat([xn, self.vn])
        targets = [y] + ([neg[:, i] for i in range(self.k)] if self.variant == "ff-vn" else [])
        adjs = [self._adj(augment_edges(edge_index, n, t, train), n + self.C) for t in targets]
        return View(n, xa, adjs, [None], shared_input=True)

    def _eval_view(self, data, c: int, known: Tensor, evaluated: Tensor) -> View:
        """FF-VN pass for candidate class ``c``: ``evaluated`` nodes carry ``c``, ``known`` their label."""
        lab = torch.where(evaluated, torch.full_like(data.y, c), data.y)
        n = data.num_nodes
        aug = augment_edges(data.edge_index, n, lab, known | evaluated)
        return View(n, torch.cat([row_normalize(data.x, self.shift), self.vn]), [self._adj(aug, n + self.C)], [None])

    def _eval_view_la(self, data, p: int, known: Tensor, evaluated: Tensor) -> View:
        """FF-LA's ``C`` candidate passes as one view of ``C`` stacked copies: in copy ``c`` the
        ``evaluated`` nodes carry ``c`` and the ``known`` nodes their label. Fixed per graph and
        pass ``p``, so built once."""
        def build() -> View:
            n, C = data.num_nodes, self.C
            cand = torch.arange(C, device=data.y.device).repeat_interleave(n)  # [C·n]: c of copy c
            lab = torch.where(evaluated.repeat(C), cand, data.y.repeat(C))
            labels = label_rows(lab, (known | evaluated).repeat(C), C)
            return View(n, row_normalize(data.x, self.shift), [self._adj(data.edge_index, n)], [labels],
                        copies=C, stacked=self._stacked_adj(data.edge_index, n, C, data))

        return self._memo_graph(data, ("la", p), build)

    def _full_view(self, trainer) -> View:
        if self._full is None:
            d = trainer.data
            self._full = self._train_view(d.x, d.edge_index, d.y, d.train_mask, self.neg, owner=d)
        return self._full

    def _batch_view(self, trainer, batch) -> View:
        if isinstance(batch.adj, (list, tuple)) or batch.adj.num_rows != batch.x.shape[0]:
            raise GnnkitError("the forward strategy needs batches that are whole subgraphs (full, cluster), "
                              "not per-layer sampled blocks")
        d, n_id = trainer.data, batch.n_id
        ei = getattr(batch, "edge_index", None)
        if ei is None:
            ei = induced_edges(d.edge_index, n_id, d.num_nodes)
        neg = self.neg[n_id] if self.neg is not None else None
        return self._train_view(batch.x, ei, d.y[n_id], d.train_mask[n_id], neg)

    def _first_input(self, view: View, k: int):
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
