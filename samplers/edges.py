"""Edge-seeded epochs for link prediction: batches of positive edges, their negatives, shuffled per
epoch (seeded) and sharded across ranks.

The link task hands the samplers its training edges through the data it prepared
(``data.link_edges``, a :class:`LinkEdges`): ``positives`` ``[2, P]`` (one direction per undirected
training edge, global ids), a negative sampler (:class:`gnnkit.link.NegativeSampler`, uniform or
degree-biased, excluding the training edges) and ``k = num_negatives``. A sampler that finds it
(:func:`edge_loader`) walks edges instead of nodes:

* each epoch the ``P`` positives are put in a random order (a ``torch.Generator`` seeded from
  ``derive_seed(derive_seed(seed, epoch), EDGE_SALT)``: a resumed run draws the same batches, and
  the stream is apart from the sampler's own neighbor draws of that epoch), this rank takes its
  equal share (:func:`samplers.loader.shard`: the tail that does not divide among the ranks is left
  out of the epoch), and the share is cut into batches of ``batch_size`` positives (the last may be
  smaller);
* each batch's ``B`` positives get ``k B`` negatives from the same generator; column ``j B + e``
  of the negatives corrupts positive ``e`` (its source kept, see :mod:`gnnkit.link.negatives`);
* the batch's edges are ``edge_label_index = [pos | neg]`` ``[2, (1 + k) B]`` with
  ``edge_label = [1]*B + [0]*(k B)``, handed to the sampler's ``sample_from_edges``, which expands
  the neighborhoods of every endpoint (negatives included) and gives the endpoints' batch rows.

:meth:`EdgeLoader.within` serves samplers whose batch is a fixed node set (Cluster-GCN):
the positives inside the set, negatives drawn among its nodes.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator, Optional, Tuple

import torch
from torch import Tensor

from gnnkit.errors import GnnkitError

from .loader import derive_seed, shard, shuffled

EDGE_SALT = 0x5EED_ED6E


@dataclass(frozen=True)
class LinkEdges:
    """What a link task trains on (module docstring): ``positives`` ``[2, P]`` int64 global ids,
    ``negatives`` an object with ``sample(pos [2, B], k, gen) -> [2, k B]`` and
    ``sample_within(pos, k, gen, nodes) -> [2, k B]``, ``num_negatives`` ``k >= 1``."""

    positives: Tensor
    negatives: Any
    num_negatives: int = 1

    def __post_init__(self):
        if self.positives.dim() != 2 or self.positives.shape[0] != 2 or self.positives.shape[1] < 1:
            raise GnnkitError(f"link edges: positives must be a non-empty [2, P] tensor, got "
                              f"{tuple(self.positives.shape)}")
        if int(self.num_negatives) < 1:
            raise GnnkitError(f"link edges: num_negatives must be >= 1, got {self.num_negatives}")


def link_edges_of(ctx) -> Optional[LinkEdges]:
    """The run's :class:`LinkEdges` (``ctx.data.link_edges``), ``None`` for a node-level run."""
    edges = getattr(getattr(ctx, "data", None), "link_edges", None)
    if edges is not None and not isinstance(edges, LinkEdges):
        raise GnnkitError(f"data.link_edges must be a samplers.edges.LinkEdges, got {type(edges).__name__}")
    return edges


def edge_generator(seed: int, epoch: int) -> torch.Generator:
    """The CPU generator of epoch ``epoch``'s edge order and negatives (module docstring)."""
    return torch.Generator().manual_seed(derive_seed(derive_seed(seed, epoch), EDGE_SALT))


def labelled(pos: Tensor, neg: Tensor) -> Tuple[Tensor, Tensor]:
    """``([pos | neg] [2, B + Q], [1]*B + [0]*Q)`` (float labels)."""
    label = torch.cat([torch.ones(pos.shape[1]), torch.zeros(neg.shape[1])])
    return torch.cat([pos, neg], dim=1), label


class EdgeLoader:
    """Positive edges in batches of ``batch_size`` with their negatives (module docstring)."""

    def __init__(self, edges: LinkEdges, batch_size: int, shuffle: bool = True):
        if batch_size < 1:
            raise GnnkitError(f"batch_size must be at least 1, got {batch_size}")
        self.edges, self.batch_size, self.shuffle = edges, int(batch_size), shuffle
        self.positives = edges.positives.cpu()

    @property
    def num_positives(self) -> int:
        return int(self.positives.shape[1])

    def steps(self, world: int) -> int:
        """Batches per epoch on each of ``world`` ranks."""
        return -(-(self.num_positives // max(world, 1)) // self.batch_size)

    def batches(self, ctx, epoch: int) -> Iterator[Tuple[Tensor, Tensor]]:
        """This rank's ``(edge_label_index [2, (1 + k) B], edge_label [(1 + k) B])`` of ``epoch``
        (global ids, on the CPU)."""
        gen = edge_generator(ctx.seed, epoch)
        order = torch.arange(self.num_positives)
        order = shard(ctx, shuffled(order, gen) if self.shuffle else order)
        for s in range(0, order.numel(), self.batch_size):
            pos = self.positives[:, order[s:s + self.batch_size]]
            yield labelled(pos, self.edges.negatives.sample(pos, self.edges.num_negatives, gen))

    def within(self, nodes: Tensor, inside: Tensor, gen: torch.Generator) -> Tuple[Tensor, Tensor]:
        """The edges of a batch made of the node set ``nodes`` ``[n_b]`` (global ids): the positives
        flagged by ``inside`` ``[P]`` and ``k`` negatives each, destinations drawn among ``nodes``."""
        pos = self.positives[:, inside.cpu()]
        neg = self.edges.negatives.sample_within(pos, self.edges.num_negatives, gen, nodes.cpu())
        return labelled(pos, neg)


def edge_loader(ctx, batch_size: int, shuffle: bool = True) -> Optional[EdgeLoader]:
    """An :class:`EdgeLoader` over the run's training edges when the task trains on edges (the data
    carries ``link_edges``), else ``None`` (node batches as usual)."""
    edges = link_edges_of(ctx)
    return None if edges is None else EdgeLoader(edges, batch_size, shuffle)

