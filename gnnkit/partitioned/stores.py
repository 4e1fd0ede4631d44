"""A rank's part seen as the whole graph: :class:`DistGraphStore` and :class:`DistFeatureStore`.

Both answer GLOBAL node ids ``0..N-1``, as the in-memory and on-disk stores do, so the samplers
run unchanged over them; rows this rank owns come from its part (memory-mapped), the others from
their owners in one :class:`~gnnkit.partitioned.exchange.Exchange` round per call (never per node).
Each call of ``sample_edges`` / ``sample_neighbors`` / ``neighbors`` / ``get(name, ids)`` is one
collective round: every rank makes the same calls in the same order (the sampler's steps are in
lockstep: each rank walks its own training nodes, the same count on every rank).

Sampling: a call draws one 62-bit seed from the caller's generator and sends it with the fanout;
the owner of each row samples it with a generator seeded from ``(seed, owner rank)`` (the part's
rows: :meth:`~gnnkit.stores.GraphStore.sample_positions`, uniform without replacement, all when
``k = -1`` or ``d_i <= k``), so a run's draws depend on its seed alone. In-degrees (and weighted
ones) come from the replicated book, without a round.

Seeds: :meth:`DistFeatureStore.index` of ``"train_mask"`` gives this rank's own training nodes,
wrapped to the largest part's count (a seeded choice of its own nodes repeats) so that every rank
takes the same number of steps with no training node left out; ``seeds_per_rank = True`` tells the
seed loader not to shard them again. ``get(name)`` without ids (labels and masks for the task's
figures) all-gathers the whole ``[N]`` array once and keeps it; the features ``x`` are never
gathered whole.
"""
from __future__ import annotations

import copy
from typing import Any, Dict, List, Optional, Tuple

import torch
from torch import Tensor

from gnnkit.errors import GnnkitError
from gnnkit.stores.features import FeatureStore
from gnnkit.stores.graph import GraphStore
from gnnkit.stores.ondisk.features import read_rows

from .exchange import Exchange
from .layout import Part


def _seed_of(gen: Optional[torch.Generator]) -> int:
    return 0 if gen is None else int(torch.randint(0, 2**62, (1,), generator=gen, device=gen.device))


def _owner_gen(seed: int, rank: int) -> torch.Generator:
    return torch.Generator().manual_seed((int(seed) * 1_000_003 + 7919 * (rank + 1)) % 2**63)


class DistGraphStore(GraphStore):
    """The whole graph's structure over global ids, answered by the parts' owners."""

    background = False  # exchanges rows with the other ranks: never sampled in a background thread

    def __init__(self, part: Part, exchange: Exchange):
        self.part, self.exchange = part, exchange
        self._weighted = bool(part.info.get("weighted", False))

    num_nodes = property(lambda self: self.part.num_nodes)
    num_edges = property(lambda self: int(self.part.info["num_edges"]))
    is_symmetric = property(lambda self: bool(self.part.info["is_symmetric"]))
    csr_by_source = property(lambda self: self.part.graph.csr_by_source)
    device = property(lambda self: torch.device("cpu"))

    def _whole(self, what: str):
        raise GnnkitError(f"a partitioned graph holds only this rank's rows: no whole {what} (rank "
                          f"{self.part.rank} of {self.part.num_parts}; rows owned elsewhere are asked of their owners)")

    def csr(self) -> Tuple[Tensor, Tensor]:
        self._whole("CSR")

    def edge_index(self) -> Tensor:
        self._whole("edge_index")

    def adjacency(self, norm: str, diag_lambda: float = 0.0):
        self._whole("adjacency (evaluation goes through gnnkit.partitioned.fullbatch.evaluate_parts or DistGraphStore.predict)")

    def edge_weight(self) -> Optional[Tensor]:
        return self._whole("edge_weight") if self._weighted else None

    def csr_weight(self) -> Optional[Tensor]:
        return self._whole("edge_weight") if self._weighted else None

    def sample_positions(self, ids, k, gen):
        self._whole("CSR positions (a PyG-style model's subgraph sampling)")

    def in_degree(self, ids: Optional[Tensor] = None) -> Tensor:
        d = self.part.book.degree
        return (d if ids is None else d[ids.long()]).long()

    def weighted_in_degree(self, ids: Optional[Tensor] = None) -> Tensor:
        w = self.part.book.weighted_degree
        if w is None:
            return self.in_degree(ids).to(torch.float32)
        return w if ids is None else w[ids.long()]

    def _answer_rows(self, rows: Tensor, head: Tensor) -> Tuple[Tensor, List[Tensor]]:
        """The owner's side: ``k = head[1]`` sampled entries of its local ``rows`` (seed ``head[2]``)."""
        k, seed = int(head[1]), int(head[2])
        counts, pos = self.part.graph.sample_positions(rows, k, _owner_gen(seed, self.part.rank))
        values = [self.part.graph.csr()[1][pos]]
        w = self.part.graph.csr_weight()
        if w is not None:
            values.append(w[pos])
        return counts, values

    def local_edges(self, ids: Tensor, k: int, seed: int = 0):
        """:meth:`sample_edges` of ids this rank owns, without a round (layer-wise inference)."""
        counts, values = self._answer_rows(self.part.book.local[ids.long()].long(), torch.tensor([0, k, seed]))
        return counts, values[0].long(), values[1] if len(values) > 1 else None

    def sample_edges(self, ids: Tensor, k: int, gen: Optional[torch.Generator]):
        """``(counts [n], sources [Σ counts], weights or None)`` of ``k`` uniform in-neighbors of each
        of the global ``ids`` (``-1``: all, in the graph's CSR order); one exchange round."""
        counts, values = self.exchange.round(ids, self._answer_rows, header=(int(k), _seed_of(gen)))
        return counts, values[0].long(), values[1] if len(values) > 1 else None

    def sample_neighbors(self, ids: Tensor, k: int, gen: Optional[torch.Generator]) -> Tuple[Tensor, Tensor]:
        counts, src, _ = self.sample_edges(ids, k, gen)
        return counts, src

    def neighbors(self, ids: Tensor) -> Tuple[Tensor, Tensor]:
        return self.sample_neighbors(ids, -1, None)

    def induced_subgraph(self, nodes: Tensor) -> Tensor:
        self._whole("subgraph")

    def predict(self, ctx, model) -> Tensor:
        """``[N, C]`` whole-graph output of ``model``, each rank computing its own rows layer by layer
        (:func:`gnnkit.partitioned.predict.predict_parts`)."""
        from .predict import predict_parts

        return predict_parts(ctx, model, self)


class DistFeatureStore(FeatureStore):
    """The node arrays over global ids: own rows from the part, the others from their owners."""

    seeds_per_rank = True
    background = False  # exchanges rows with the other ranks: never sampled in a background thread

    def __init__(self, part: Part, exchange: Exchange, seed: int = 0):
        self.part, self.exchange, self.seed = part, exchange, int(seed)
        self._whole: Dict[str, Tensor] = {}
        self._cast: Dict[str, torch.dtype] = {}

    def with_dtype(self, name: str, dtype: torch.dtype) -> "DistFeatureStore":
        """This store with ``name`` answered in ``dtype``: the owners cast the rows before sending them
        (half precision halves the bytes exchanged); the seeds and the rest are unchanged."""
        self.check(name)
        if self.dtype(name) == dtype:
            return self
        other = copy.copy(self)
        other._cast = {**self._cast, name: dtype}
        return other

    def names(self) -> List[str]:
        return self.part.features.names()

    def shape(self, name: str) -> Tuple[int, ...]:
        return (self.part.num_nodes, *self.part.features.shape(name)[1:])

    def dtype(self, name: str) -> torch.dtype:
        return self._cast.get(name) or self.part.features.dtype(name)

    @property
    def meta(self) -> Dict[str, Any]:
        return {**self.part.features.meta, "fingerprint": self.part.info.get("fingerprint")}

    def _answer(self, name: str):
        table, cast = self.part.files.tensor(name), self._cast.get(name)
        if cast is None:
            return lambda rows, head: (torch.ones(rows.numel(), dtype=torch.long), [read_rows(table, rows)])
        return lambda rows, head: (torch.ones(rows.numel(), dtype=torch.long), [read_rows(table, rows).to(cast)])

    def get(self, name: str, ids: Optional[Tensor] = None) -> Tensor:
        """Rows ``ids`` (global) of ``name`` in their order: one exchange round; ``ids=None``: the
        whole ``[N, ...]`` array, all-gathered once (refused for ``x``)."""
        self.check(name)
        if ids is None:
            return self._gathered(name)
        _, values = self.exchange.round(ids, self._answer(name), fixed=True)
        out = values[0]
        return out if out.dtype == self.dtype(name) else out.to(self.dtype(name))

    def _gathered(self, name: str) -> Tensor:
        if name == "x":
            raise GnnkitError("a partitioned store does not gather all rows of x (it would hold the whole "
                              "feature matrix on every rank); read rows by id")
        if name not in self._whole:
            own = self.part.features.get(name)
            own = own.to(self._cast[name]) if name in self._cast else own
            parts = self.exchange.all_gather(own, self.part.sizes)
            book = self.part.book
            owner, local = book.owner.long(), book.local.long()
            whole = torch.empty((self.part.num_nodes, *own.shape[1:]), dtype=own.dtype)
            for q, rows in enumerate(parts):  # a loop over ranks
                at = (owner == q).nonzero().view(-1)
                whole[at] = rows[local[at]]
            self._whole[name] = whole
        return self._whole[name]

    def index(self, mask_name: str) -> Tensor:
        """This rank's own nodes where ``mask_name`` is set (global ids); for ``"train_mask"``
        wrapped to the largest part's training count (module docstring)."""
        own = self.part.global_ids[self.part.features.get(mask_name).nonzero().view(-1)]
        if mask_name != "train_mask":
            return own
        counts = [int(p["num_train"]) for p in self.part.info["parts"]]
        if 0 in counts and max(counts) > 0:  # every rank knows it (partition.json): all refuse together
            raise GnnkitError(f"part {counts.index(0)} of {self.part.path} has no training node, so its rank "
                              "could not take the others' steps; partition into fewer parts")
        if own.numel() == 0:
            return own
        most = max(counts)
        gen = torch.Generator().manual_seed(self.seed * 1_000_003 + self.part.rank)
        extra = torch.randperm(own.numel(), generator=gen)[torch.arange(most - own.numel()) % own.numel()]
        return torch.sort(torch.cat([own, own[extra]])).values
