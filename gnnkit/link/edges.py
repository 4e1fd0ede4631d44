"""Edge sets as sorted int64 keys: membership tests and undirected canonical forms, vectorized.

An edge ``(u, v)`` of a graph with ``N`` nodes has the key ``u * N + v`` (``N^2 < 2^63`` is
checked). A *directed* set keeps ``(u, v)`` as given; an *undirected* one stores ``(min, max)``,
so ``(u, v)`` and ``(v, u)`` are the same member. :class:`EdgeSet` holds the sorted unique keys;
``contains`` is one ``searchsorted`` over them: ``O(Q log E)`` for ``Q`` queries.
"""
from __future__ import annotations

from typing import Tuple

import torch
from torch import Tensor

from gnnkit.errors import GnnkitError


def check_edge_index(edge_index: Tensor, num_nodes: int, what: str = "edge_index") -> Tensor:
    """``edge_index`` as int64 ``[2, E]`` with ids in ``[0, num_nodes)``, else a GnnkitError."""
    if not isinstance(edge_index, Tensor) or edge_index.dim() != 2 or edge_index.shape[0] != 2:
        shape = tuple(edge_index.shape) if isinstance(edge_index, Tensor) else type(edge_index).__name__
        raise GnnkitError(f"{what} must be a [2, E] tensor, got {shape}")
    if edge_index.dtype.is_floating_point or edge_index.dtype == torch.bool:
        raise GnnkitError(f"{what} must hold integer node ids, got {edge_index.dtype}")
    if num_nodes < 1 or num_nodes >= 3_037_000_499:  # N^2 must fit in int64
        raise GnnkitError(f"num_nodes must be in [1, 3037000499), got {num_nodes}")
    if edge_index.numel() and (int(edge_index.min()) < 0 or int(edge_index.max()) >= num_nodes):
        raise GnnkitError(f"{what}: node ids must be in [0, {num_nodes}), got "
                          f"[{int(edge_index.min())}, {int(edge_index.max())}]")
    return edge_index.long()


def canonical(u: Tensor, v: Tensor) -> Tuple[Tensor, Tensor]:
    """``(min(u, v), max(u, v))`` elementwise: the undirected form of each pair."""
    return torch.minimum(u, v), torch.maximum(u, v)


def undirected_edges(edge_index: Tensor, num_nodes: int) -> Tensor:
    """The distinct undirected edges of ``edge_index`` without self-loops, ``[2, M]`` with
    ``row < col``, sorted by key (``(u, v)`` and ``(v, u)`` count once)."""
    edge_index = check_edge_index(edge_index, num_nodes)
    u, v = canonical(edge_index[0], edge_index[1])
    keep = u != v
    keys = torch.unique(u[keep] * num_nodes + v[keep])
    return torch.stack([keys // num_nodes, keys % num_nodes])


def undirected_weights(edge_index: Tensor, edge_weight: Tensor, num_nodes: int) -> Tensor:
    """The weight ``[M]`` of each undirected edge of :func:`undirected_edges` (same order): the
    weight its occurrences share. An undirected split keeps one weight per edge, so a pair whose
    occurrences (both directions, repeats) carry different weights is refused, naming it."""
    edge_index = check_edge_index(edge_index, num_nodes)
    if edge_weight.dim() != 1 or edge_weight.numel() != edge_index.shape[1]:
        raise GnnkitError(f"edge_weight must be [E] = [{edge_index.shape[1]}], got {tuple(edge_weight.shape)}")
    u, v = canonical(edge_index[0], edge_index[1])
    keep = u != v
    keys, inv = torch.unique(u[keep] * num_nodes + v[keep], return_inverse=True)
    w = edge_weight[keep].to(torch.float32)
    lo = torch.full((keys.numel(),), float("inf")).scatter_reduce(0, inv, w, reduce="amin")
    hi = torch.full((keys.numel(),), float("-inf")).scatter_reduce(0, inv, w, reduce="amax")
    bad = (lo != hi).nonzero().view(-1)
    if bad.numel():
        i = int(bad[0])
        raise GnnkitError(f"edge ({int(keys[i]) // num_nodes}, {int(keys[i]) % num_nodes}) has weights "
                          f"{float(lo[i])} and {float(hi[i])} (its two directions or repeats): an undirected link "
                          f"split keeps one weight per edge ({bad.numel()} such edges)")
    return lo


def both_directions(pairs: Tensor) -> Tensor:
    """``[2, M]`` pairs and their reverses, ``[2, 2M]`` (the message-passing form of an
    undirected edge list)."""
    return torch.cat([pairs, pairs.flip(0)], dim=1)


class EdgeSet:
    """A set of edges over ``num_nodes`` nodes (see the module docstring).

    ``edge_index`` ``[2, E]``; ``undirected=True`` identifies ``(u, v)`` with ``(v, u)``.
    """

    def __init__(self, edge_index: Tensor, num_nodes: int, undirected: bool = True):
        edge_index = check_edge_index(edge_index, num_nodes)
        self.num_nodes, self.undirected = int(num_nodes), bool(undirected)
        self.keys = torch.unique(self.key(edge_index[0], edge_index[1]))

    def key(self, u: Tensor, v: Tensor) -> Tensor:
        """``u * N + v`` (after :func:`canonical` when undirected), int64 ``[Q]``."""
        if self.undirected:
            u, v = canonical(u, v)
        return u.long() * self.num_nodes + v.long()

    def contains(self, u: Tensor, v: Tensor) -> Tensor:
        """Bool ``[Q]``: whether each ``(u_q, v_q)`` is a member."""
        return member(self.keys, self.key(u, v).to(self.keys.device))

    def __len__(self) -> int:
        return int(self.keys.numel())


def member(sorted_keys: Tensor, q: Tensor) -> Tensor:
    """Whether each entry of ``q`` (any shape) is in the sorted 1-D ``sorted_keys``: one
    ``searchsorted``, ``O(|q| log |keys|)``."""
    if sorted_keys.numel() == 0:
        return torch.zeros_like(q, dtype=torch.bool)
    pos = torch.searchsorted(sorted_keys, q.reshape(-1)).clamp_max(sorted_keys.numel() - 1)
    return (sorted_keys[pos] == q.reshape(-1)).view(q.shape)


def first_occurrences(keys: Tensor) -> Tensor:
    """Positions of the first occurrence of each distinct value of ``keys`` ``[Q]``, in the order
    the values first appear (``unique`` that keeps draw order, so a random stream of draws stays a
    uniform sample without replacement)."""
    if keys.numel() == 0:
        return keys.new_zeros(0, dtype=torch.long)
    _, inv = torch.unique(keys, return_inverse=True)
    pos = torch.arange(keys.numel(), device=keys.device)
    first = torch.full((int(inv.max()) + 1,), keys.numel(), dtype=torch.long, device=keys.device)
    first = first.scatter_reduce(0, inv, pos, reduce="amin")
    return torch.sort(first).values
