"""Link-prediction splits with no leakage: :class:`LinkSplit` and the seeded random split.

:func:`random_link_split` follows the GAE protocol (Kipf & Welling, 2016) on the ``M`` distinct
undirected edges ``{u, v}`` (``u < v``, no self-loops) of a graph with ``N`` nodes:

* a permutation drawn from ``torch.Generator().manual_seed(seed)`` puts
  ``M_test = floor(test_frac · M)`` edges in test, the next ``M_val = floor(val_frac · M)`` in
  validation and the rest in training (85/5/10 by default);
* the message-passing graph is the training edges in both directions: no validation or test edge
  is in it, in either direction;
* validation and test each get as many negatives as positives: distinct unordered pairs
  ``{u, v}``, ``u != v``, drawn uniformly among the pairs that are an edge of *no* split (the whole
  input graph), validation and test negatives disjoint (see :func:`fixed_negatives`).

A :class:`LinkSplit` also carries OGB's splits (:mod:`gnnkit.link.ogbl`); ``val_in_test_graph``
is ogbl-collab's rule: at test time the validation edges join the message-passing graph.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, Optional, Tuple

import torch
from torch import Tensor

from gnnkit.errors import GnnkitError

from .edges import EdgeSet, both_directions, canonical, first_occurrences, undirected_edges, undirected_weights

SPLITS = ("train", "val", "test")


@dataclass
class LinkSplit:
    """Positive (and fixed negative) edges per split, ``[2, E]`` int64 each.

    ``train_pos`` are the training edges (one direction per undirected edge when
    ``undirected``); ``val_neg``/``test_neg`` ``[2, E']`` pairs or, with ``neg_per_source`` (per-source
    ranking, ogbl-citation2), ``[E, K]`` negative destinations of each positive's source. ``extra``
    keeps what the source gave besides (OGB's ``weight``/``year``). ``train_weight``/``val_weight``
    ``[E]`` (or ``None``: unweighted): the weights of ``train_pos``/``val_pos``, which the
    message-passing graph keeps with its edges (:meth:`message_weights`).
    """

    num_nodes: int
    train_pos: Tensor
    val_pos: Tensor
    test_pos: Tensor
    val_neg: Optional[Tensor] = None
    test_neg: Optional[Tensor] = None
    undirected: bool = True
    val_in_test_graph: bool = False
    neg_per_source: bool = False
    name: str = "link-split"
    extra: Dict[str, Tensor] = field(default_factory=dict)
    train_weight: Optional[Tensor] = None
    val_weight: Optional[Tensor] = None

    def message_edges(self, stage: str = "train") -> Tensor:
        """The message-passing graph ``[2, E_mp]`` for ``stage`` (``train``/``val``/``test``):
        the training edges (both directions when undirected); at ``test`` with
        ``val_in_test_graph`` the validation edges as well."""
        if stage not in SPLITS:
            raise GnnkitError(f"unknown stage {stage!r}; known: {', '.join(SPLITS)}")
        edges = self.train_pos
        if stage == "test" and self.val_in_test_graph:
            edges = torch.cat([edges, self.val_pos], dim=1)
        return both_directions(edges) if self.undirected else edges

    def message_weights(self, stage: str = "train") -> Optional[Tensor]:
        """The weights ``[E_mp]`` of :meth:`message_edges` ``(stage)``, entry for entry (``None``
        when the split is unweighted)."""
        edges = self.message_edges(stage)  # checks the stage
        if self.train_weight is None:
            return None
        w = self.train_weight
        if stage == "test" and self.val_in_test_graph:
            if self.val_weight is None:
                raise GnnkitError(f"{self.name}: weighted training edges but no validation weights")
            w = torch.cat([w, self.val_weight])
        w = torch.cat([w, w]) if self.undirected else w
        if w.numel() != edges.shape[1]:
            raise GnnkitError(f"{self.name}: {w.numel()} edge weights for {edges.shape[1]} message edges")
        return w

    def positives(self, split: str) -> Tensor:
        if split not in SPLITS:
            raise GnnkitError(f"unknown split {split!r}; known: {', '.join(SPLITS)}")
        return {"train": self.train_pos, "val": self.val_pos, "test": self.test_pos}[split]

    def negatives(self, split: str) -> Tensor:
        neg = {"val": self.val_neg, "test": self.test_neg}.get(split)
        if neg is None:
            raise GnnkitError(f"{self.name}: split {split!r} has no fixed negatives")
        return neg

    def labeled(self, split: str) -> Tuple[Tensor, Tensor]:
        """``(edge_label_index [2, P + Q], edge_label [P + Q])``: positives (1) then the fixed
        pair negatives (0) of ``val``/``test``, the form of ``Sampler.sample_from_edges``."""
        pos, neg = self.positives(split), self.negatives(split)
        if self.neg_per_source:
            raise GnnkitError(f"{self.name}: {split} negatives are per-source lists, not pairs")
        label = torch.cat([torch.ones(pos.shape[1]), torch.zeros(neg.shape[1])])
        return torch.cat([pos, neg], dim=1), label

    def all_positives(self) -> EdgeSet:
        """Every positive edge of every split, as an :class:`EdgeSet`."""
        edges = torch.cat([self.train_pos, self.val_pos, self.test_pos], dim=1)
        return EdgeSet(edges, self.num_nodes, undirected=self.undirected)


def fixed_negatives(forbidden: EdgeSet, count: int, gen: torch.Generator, max_rounds: int = 64) -> Tensor:
    """``count`` distinct unordered pairs ``{u, v}`` (``u < v``) drawn uniformly from the pairs not
    in ``forbidden`` (an undirected :class:`EdgeSet`), ``[2, count]`` in draw order.

    Rejection sampling, vectorized per round: each round draws ``2 · missing + 64`` pairs
    ``(u, v)`` uniform in ``[0, N)^2``, drops self-loops, forbidden pairs and repeats (first
    occurrence kept, so the accepted stream is a uniform sample without replacement).
    """
    n = forbidden.num_nodes
    free = n * (n - 1) // 2 - len(forbidden)
    if count > free:
        raise GnnkitError(f"cannot draw {count} negative pairs: only {free} node pairs are not edges")
    keys = torch.zeros(0, dtype=torch.long)
    for _ in range(max_rounds):  # rounds of draws, each vectorized; not a loop over edges
        missing = count - keys.numel()
        if missing <= 0:
            break
        draw = torch.randint(0, n, (2, 2 * missing + 64), generator=gen)
        u, v = canonical(draw[0], draw[1])
        ok = (u != v) & ~forbidden.contains(u, v)
        keys = torch.cat([keys, u[ok] * n + v[ok]])
        keys = keys[first_occurrences(keys)]
    if keys.numel() < count:
        raise GnnkitError(f"drew only {keys.numel()} of {count} negative pairs in {max_rounds} rounds "
                          f"(the graph is too dense for fixed negatives)")
    keys = keys[:count]
    return torch.stack([keys // n, keys % n])


def random_link_split(edge_index: Tensor, num_nodes: int, *, val_frac: float = 0.05,
                      test_frac: float = 0.10, seed: int = 0, name: str = "link-split",
                      edge_weight: Optional[Tensor] = None) -> LinkSplit:
    """The seeded GAE split of the undirected graph ``edge_index`` ``[2, E]`` (module docstring).
    With ``edge_weight`` ``[E]`` every undirected edge keeps its weight (both directions and repeats
    must agree, :func:`~gnnkit.link.edges.undirected_weights`) into whichever split it falls; the
    draws are the same as without weights."""
    if not (0.0 <= val_frac < 1.0 and 0.0 <= test_frac < 1.0 and val_frac + test_frac < 1.0):
        raise GnnkitError(f"need val_frac, test_frac >= 0 with val_frac + test_frac < 1, got {val_frac}, {test_frac}")
    pairs = undirected_edges(edge_index, num_nodes)
    m = pairs.shape[1]
    n_test, n_val = int(test_frac * m), int(val_frac * m)
    if m - n_test - n_val < 1:
        raise GnnkitError(f"{name}: {m} undirected edges leave no training edge")
    gen = torch.Generator().manual_seed(int(seed))
    perm = torch.randperm(m, generator=gen)
    test, val, train = perm[:n_test], perm[n_test:n_test + n_val], perm[n_test + n_val:]
    forbidden = EdgeSet(pairs, num_nodes, undirected=True)
    neg = fixed_negatives(forbidden, n_val + n_test, gen)
    w = None if edge_weight is None else undirected_weights(edge_index, edge_weight.cpu(), num_nodes)
    return LinkSplit(num_nodes=int(num_nodes), train_pos=pairs[:, train], val_pos=pairs[:, val],
                     test_pos=pairs[:, test], val_neg=neg[:, :n_val], test_neg=neg[:, n_val:],
                     undirected=True, name=name, train_weight=None if w is None else w[train],
                     val_weight=None if w is None else w[val], extra={} if w is None else {"test_weight": w[test]})
