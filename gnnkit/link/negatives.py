"""Negative edges for training: each positive ``(u, v)`` gets ``k`` corrupted edges ``(u, w)``.

The source is kept and the destination ``w`` redrawn (the head-kept corruption of TransE/TGB, so
every positive's negatives share its source):

* ``method="uniform"`` (default): ``w`` uniform over the ``N`` nodes;
* ``method="degree"``: ``P(w) ∝ (deg(w) + 1)^power`` over the message-passing degrees (``power=0.75``,
  word2vec's unigram exponent; ``1`` = proportional to degree + 1), so popular nodes appear as
  negatives about as often as they appear in positives: harder negatives.

With ``exclude`` (an :class:`~gnnkit.link.edges.EdgeSet`, by default the training positives), draws
that hit an excluded edge or a self-loop are redrawn, vectorized over the rejected entries, for at
most ``max_redraws`` rounds; an entry still rejected after them (possible only in a graph denser
than ``1 - 2^-max_redraws``-ish) is kept. Draws come from the ``torch.Generator`` passed in, so a
seeded generator gives the same negatives on every run.
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from gnnkit.errors import GnnkitError

from .edges import EdgeSet, check_edge_index

METHODS = ("uniform", "degree")


class NegativeSampler:
    """Draws ``[2, k E]`` negatives for ``E`` positives (see the module docstring).

    ``num_nodes``: ``N``; ``edge_index`` ``[2, E_mp]``: the message-passing graph (degrees for
    ``"degree"``, and the excluded edges unless ``exclude`` is given; ``exclude=False`` turns the
    rejection off).
    """

    def __init__(self, num_nodes: int, edge_index: Tensor, *, method: str = "uniform", power: float = 0.75,
                 exclude=None, max_redraws: int = 10):
        if method not in METHODS:
            raise GnnkitError(f"unknown negative sampling method {method!r}; known: {', '.join(METHODS)}")
        if not power >= 0:
            raise GnnkitError(f"power must be >= 0, got {power}")
        edge_index = check_edge_index(edge_index, num_nodes)
        self.num_nodes, self.method, self.max_redraws = int(num_nodes), method, int(max_redraws)
        self.weights: Optional[Tensor] = None
        if method == "degree":
            deg = torch.bincount(edge_index[1], minlength=num_nodes).double()
            self.weights = (deg + 1.0) ** float(power)  # [N], unnormalized P(w)
        if exclude is None:
            exclude = EdgeSet(edge_index, num_nodes, undirected=False)
        self.exclude: Optional[EdgeSet] = exclude or None

    def _draw(self, n: int, gen: Optional[torch.Generator]) -> Tensor:
        if self.weights is None:
            return torch.randint(0, self.num_nodes, (n,), generator=gen)
        return torch.multinomial(self.weights, n, replacement=True, generator=gen)

    def _draw_within(self, nodes: Tensor, n: int, gen: Optional[torch.Generator]) -> Tensor:
        """``n`` destinations among the global ids ``nodes`` ``[m]``: uniform, or ``∝ weights[nodes]``."""
        if self.weights is None:
            return nodes[torch.randint(0, nodes.numel(), (n,), generator=gen)]
        return nodes[torch.multinomial(self.weights[nodes], n, replacement=True, generator=gen)]

    def sample(self, pos: Tensor, k: int = 1, generator: Optional[torch.Generator] = None) -> Tensor:
        """``[2, k E]`` negatives for positives ``pos`` ``[2, E]``: column ``j E + e`` corrupts
        positive ``e`` (its source kept, a new destination drawn)."""
        return self._corrupt(pos, k, lambda n: self._draw(n, generator))

    def sample_within(self, pos: Tensor, k: int, generator: Optional[torch.Generator], nodes: Tensor) -> Tensor:
        """As :meth:`sample`, the new destinations drawn among the global ids ``nodes`` ``[m]`` only
        (uniformly, or with the degree weights restricted to them): the negatives of a batch that
        holds a fixed node set (Cluster-GCN)."""
        nodes = check_edge_index(nodes.view(1, -1).expand(2, -1), self.num_nodes, "batch nodes")[0]
        if nodes.numel() == 0:
            raise GnnkitError("cannot draw negatives among an empty node set")
        return self._corrupt(pos, k, lambda n: self._draw_within(nodes, n, generator))

    def _corrupt(self, pos: Tensor, k: int, draw) -> Tensor:
        """``[2, k E]``: sources ``pos[0]`` repeated ``k`` times, destinations from ``draw(n)``,
        rejected entries (self-loops, excluded edges) redrawn in rounds."""
        if k < 1:
            raise GnnkitError(f"negatives per positive must be >= 1, got {k}")
        pos = check_edge_index(pos, self.num_nodes, "positive edges").cpu()
        src = pos[0].repeat(k)
        dst = draw(src.numel())
        for _ in range(self.max_redraws):  # rounds over the rejected entries, not a loop over edges
            bad = src == dst
            if self.exclude is not None:
                bad |= self.exclude.contains(src, dst)
            idx = bad.nonzero().view(-1)
            if idx.numel() == 0:
                break
            dst[idx] = draw(idx.numel())
        return torch.stack([src, dst])
