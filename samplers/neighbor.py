"""Uniform neighbor sampling (GraphSAGE-style), vectorized over a CSR of in-neighbors.

A batch of ``B`` seed (training) nodes is expanded hop by hop: at hop ``h`` every node of the
current frontier keeps ``k_h = fanouts[h]`` of its in-neighbors, drawn uniformly *without
replacement* (all of them when its degree is at most ``k_h``; ``-1`` means all). ``fanouts[0]``
belongs to the seeds, as in PyG's ``num_neighbors``, so a model with ``L`` graph layers (head
included) takes ``L`` fanouts.

The batch (see :class:`~samplers.batch.Batch`):

* ``n_id`` ``[n_L]``: global ids, the ``B`` seeds first, then each hop's new nodes;
* ``x = features.get("x", n_id)``, ``y = features.get("y", seeds)``, ``loss_index = arange(B)``,
  ``batch_size = B``;
* ``adj``: ``L`` bipartite :class:`~gnnkit.sparse.Adjacency` blocks in *layer* order: the block
  of model layer ``l`` is ``[n_{L-l-1}, n_{L-l}]`` (its rows are the first rows of its columns).

Block weights, by the model's ``adj_norm`` (``d_i`` the full-graph in-degree, ``s_i`` the number
of neighbors kept for row ``i``; every row is an unbiased estimate of the full-graph row):

* ``"mean"``: ``1 / s_i`` (the in-sample mean, GraphSAGE);
* ``"sum"``: ``d_i / s_i``;
* ``"gcn"``: the full-graph ``D^-1/2 (A + I) D^-1/2`` weights, neighbors scaled by ``d_i / s_i``:
  ``(d_i / s_i) / sqrt((d_i + 1)(d_j + 1))`` for a kept neighbor ``j`` and the exact self-loop
  ``1 / (d_i + 1)``. With all neighbors kept this is exactly ``Â`` restricted to the block.

Weighted graphs (``graph.edge_weight()`` not ``None``, ``a_ij`` the weight of ``j -> i``,
``δ_i = Σ_j a_ij`` the full-graph weighted in-degree): the full-graph row ``Σ_j â_ij h_j`` is
estimated by the Horvitz-Thompson sum over the kept set ``S_i`` (each neighbor kept with probability
``s_i / d_i``): ``Σ_{j ∈ S_i} (d_i / s_i) â_ij h_j``, with the weighted ``â_ij``:

* ``"mean"``: ``(d_i / s_i) · a_ij / δ_i`` (``0`` when ``δ_i = 0``);
* ``"sum"``: ``(d_i / s_i) · a_ij``;
* ``"gcn"``: ``(d_i / s_i) · a_ij / sqrt((δ_i + 1)(δ_j + 1))`` and the exact self-loop
  ``1 / (δ_i + 1)`` (self-loops of weight 1, as PyG's ``gcn_norm``).

Unbiased for every row, and exactly the weighted ``Â`` row when all neighbors are kept. An
unweighted graph takes the formulas above (the same numbers, computed as before).

Sampling without replacement: rows with ``d_i <= k`` take all; the others draw ``k`` distinct
offsets by Floyd's algorithm, vectorized over rows (a loop over the ``k`` positions, ``O(n k²)``
comparisons, independent of the degree, so hubs cost no more than other rows).

Seeds are the training nodes, shuffled per epoch with a generator seeded from ``(seed, epoch)``
and dealt to ranks with equal step counts under several processes (:mod:`samplers.loader`); the
neighbor draws use the same generator, so a resumed run draws the same batches. The neighbor draws
come from the graph store (:meth:`~gnnkit.stores.GraphStore.sample_neighbors`).

A PyG-style model (``wants_edge_index``, :mod:`gnnkit.models.pyg`) gets PyG's ``NeighborLoader``
batch instead (:func:`sample_subgraph`): one ``edge_index`` of the sampled subgraph in local ids
with the raw ``edge_weight`` (and ``edge_attr``), each node's in-neighbors sampled once, at the hop
that first reaches it; the model normalizes (and scales) as it does in PyG.

Evaluation of graphs too big for whole-graph inference: :class:`SampledPredictions` computes the
rows asked for on their nodes' sampled neighborhoods (:data:`EVAL_FANOUTS` unless given).

Edges (link prediction): :meth:`NeighborSampler.sample_from_edges` expands from both endpoints of
every given edge (negatives are given as edges labelled 0): the seeds are the distinct endpoints
(ascending), and ``edge_label_index`` holds each endpoint's row in the batch. With a link task
(``ctx.data.link_edges``) an epoch walks batches of ``batch_size`` positive edges, shuffled and sharded
by :mod:`samplers.edges`, each with its negatives, through ``sample_from_edges``.
"""
from __future__ import annotations

from typing import List, Optional, Sequence, Tuple

import torch
from torch import Tensor

from gnnkit.errors import GnnkitError
from gnnkit.sparse import Adjacency
from gnnkit.sparse.blocks import expand
from gnnkit.sparse.build import make_csr
from gnnkit.sparse.subgraph import local_id_buffer, relabel

from .base import Sampler, edge_attr_of, wants_edges
from .batch import Batch, PygEdges
from .loader import SeedLoader, epoch_generator, seed_nodes

NORMS = ("gcn", "mean", "sum")


def sample_block(graph, targets: Tensor, k: int, norm: str, gen: Optional[torch.Generator],
                 lid: Tensor) -> Tuple[Adjacency, Tensor]:
    """One hop: the block ``[n_t, n_t + n_new]`` of ``targets`` and the ``new`` global ids.

    Row ``i`` holds (for ``"gcn"``) the self-loop first, then the ``s_i`` neighbors kept by
    :meth:`~gnnkit.stores.GraphStore.sample_edges`, weighted as the module docstring says."""
    d = graph.in_degree(targets)
    keep, nbrs, w = graph.sample_edges(targets, k, gen)
    self_loop = int(norm == "gcn")
    cnt = keep + self_loop
    crow_b = torch.zeros(targets.numel() + 1, dtype=torch.long, device=d.device)
    torch.cumsum(cnt, 0, out=crow_b[1:])
    rows = torch.repeat_interleave(torch.arange(targets.numel(), device=d.device), cnt)
    is_self = torch.zeros(rows.numel(), dtype=torch.bool, device=d.device)
    if self_loop:
        is_self[crow_b[:-1]] = True
    glob = targets[rows]  # the self-loops' column; the kept neighbors' below
    glob[~is_self] = nbrs
    local, new = relabel(lid, targets, glob)
    di, si = d[rows].to(torch.float32), keep[rows].to(torch.float32)
    if w is not None:
        val = weighted_values(graph, targets, rows, glob, is_self, di, si, w, norm)
    elif norm == "mean":
        val = si.reciprocal()
    elif norm == "sum":
        val = di / si
    else:
        dj = graph.in_degree(glob).to(torch.float32)
        val = torch.where(is_self, (di + 1).reciprocal(), (di / si.clamp(min=1)) * ((di + 1) * (dj + 1)).rsqrt())
    return Adjacency(make_csr(crow_b, local, val, (targets.numel(), targets.numel() + new.numel()))), new


def weighted_values(graph, targets: Tensor, rows: Tensor, glob: Tensor, is_self: Tensor, di: Tensor, si: Tensor,
                    w: Tensor, norm: str) -> Tensor:
    """The block entries ``[nnz]`` of a weighted graph (module docstring): entry ``e`` of row
    ``rows[e]`` with global column ``glob[e]``; ``w`` ``[Σ s_i]`` the kept edges' weights in row order
    (the self-loops, flagged by ``is_self``, take none)."""
    a = torch.zeros(rows.numel(), dtype=w.dtype, device=w.device)
    a[~is_self] = w
    scale = (di / si.clamp(min=1)) * a  # (d_i / s_i) a_ij
    delta_i = graph.weighted_in_degree(targets)[rows].to(w.dtype)
    if norm == "sum":
        return scale
    if norm == "mean":
        return scale * delta_i.reciprocal().masked_fill_(delta_i == 0, 0.0)
    delta_j = graph.weighted_in_degree(glob).to(w.dtype)
    return torch.where(is_self, (delta_i + 1).reciprocal(), scale * ((delta_i + 1) * (delta_j + 1)).rsqrt())


def sample_blocks(graph, seeds: Tensor, fanouts: Sequence[int], norm: str, gen: Optional[torch.Generator],
                  lid: Tensor) -> Tuple[Tensor, List[Adjacency]]:
    """``(n_id, blocks)`` for ``seeds``; ``blocks[l]`` is model layer ``l``'s adjacency."""
    return expand(seeds, fanouts, lambda targets, k: sample_block(graph, targets, k, norm, gen, lid))


def sample_subgraph(graph, seeds: Tensor, fanouts: Sequence[int], gen: Optional[torch.Generator], lid: Tensor,
                    edge_ids: bool = False) -> Tuple[Tensor, PygEdges, Optional[Tensor]]:
    """PyG's ``NeighborLoader`` subgraph of ``seeds``: hop ``h`` samples ``fanouts[h]`` in-neighbors of
    the nodes *first reached* at hop ``h - 1`` (the seeds at hop 0), so every node is sampled once.
    Returns ``(n_id [n], edges, eid)``: ``edges.edge_index`` ``[2, E]`` ``(source, target)`` in local
    ids (positions in ``n_id``, seeds first), ``edges.edge_weight`` the raw weights (``None`` when
    unweighted) and ``eid`` ``[E]`` the edges' positions in ``graph.edge_index()`` (with ``edge_ids``)."""
    n_id, frontier, parts = seeds, seeds, []
    indices, weight = graph.csr()[1], graph.csr_weight()
    for k in fanouts:
        counts, pos = graph.sample_positions(frontier, k, gen)
        src = indices[pos].long()
        local, new = relabel(lid, n_id, src)
        start = n_id.numel() - frontier.numel()  # the frontier is n_id's tail
        dst = torch.repeat_interleave(torch.arange(start, n_id.numel(), device=seeds.device), counts)
        parts.append((local, dst, pos))
        n_id, frontier = torch.cat([n_id, new]), new
    src, dst, pos = (torch.cat(t) for t in zip(*parts))
    w = None if weight is None else weight[pos]
    eid = graph.csr_edge_ids()[pos] if edge_ids else None
    return n_id, PygEdges(torch.stack([src, dst]), w), eid


def parse_fanouts(spec) -> List[int]:
    try:
        out = [int(v) for v in (spec.split(",") if isinstance(spec, str) else spec)]
    except (TypeError, ValueError):
        raise GnnkitError(f"--fanouts must be comma-separated integers like 15,10, got {spec!r}") from None
    if not out or any(v == 0 or v < -1 for v in out):
        raise GnnkitError(f"fanouts must be positive integers or -1 (all), got {spec!r}")
    return out


class NeighborSampler(Sampler):
    """Mini-batches of ``batch_size`` training nodes with ``fanouts`` neighbors per hop.

    Args:
        fanouts: neighbors kept per node at each hop, seeds' hop first (``-1``: all).
        batch_size: seed nodes per batch (the last batch of an epoch may be smaller).
        shuffle: shuffle the training nodes each epoch.
    """

    name = "neighbor"
    edges = None  # the EdgeLoader of a link run (samplers.edges), set in setup

    def __init__(self, fanouts: Sequence[int] = (15, 10), batch_size: int = 512, shuffle: bool = True):
        self.fanouts = parse_fanouts(fanouts)
        if batch_size < 1:
            raise GnnkitError(f"batch_size must be at least 1, got {batch_size}")
        self.batch_size, self.shuffle = int(batch_size), shuffle

    def setup(self, ctx, model) -> None:
        super().setup(ctx, model)
        self.norm = ctx.adj_norm
        if self.norm not in NORMS and not wants_edges(model):
            raise GnnkitError(f"the neighbor sampler builds {', '.join(NORMS)} blocks; the model wants {self.norm!r}")
        layers = getattr(model, "num_layers", len(self.fanouts))
        if layers != len(self.fanouts):
            raise GnnkitError(f"the model has {layers} graph layers but {len(self.fanouts)} fanouts were given "
                              f"({','.join(map(str, self.fanouts))}); give one fanout per layer")
        self.loader = SeedLoader(seed_nodes(ctx.features, who="neighbor"), self.batch_size, self.shuffle)
        self.train = self.loader.seeds
        self.lid = local_id_buffer(ctx.graph.num_nodes, self.train.device)
        from .edges import edge_loader

        self.edges = edge_loader(ctx, self.batch_size, self.shuffle)  # link prediction: batches of edges

    def __len__(self) -> int:
        if self.edges is not None:
            return self.edges.steps(self.ctx.world_size)
        return self.loader.steps(self.ctx.world_size)

    def generator(self, epoch: int) -> torch.Generator:
        """The generator of epoch ``epoch``'s shuffles and neighbor draws."""
        return epoch_generator(self.ctx.seed, epoch, self.train.device)

    def sample_from_nodes(self, seeds: Tensor, gen: Optional[torch.Generator] = None) -> Batch:
        """The sampled ``L``-hop neighborhood of ``seeds`` ``[B]`` (draws from ``gen``, default
        the current epoch's generator, fresh)."""
        gen = self.generator(self.epoch) if gen is None else gen
        if wants_edges(self.model):  # a PyG-style model: one subgraph, NeighborLoader's semantics
            attr = getattr(self.model, "takes_edge_attr", False)
            n_id, blocks, eid = sample_subgraph(self.ctx.graph, seeds, self.fanouts, gen, self.lid, edge_ids=attr)
            blocks.edge_attr = None if eid is None else edge_attr_of(self.ctx, self.model, eid)
        else:
            n_id, blocks = sample_blocks(self.ctx.graph, seeds, self.fanouts, self.norm, gen, self.lid)
        b = seeds.numel()
        return Batch(x=self.ctx.features.get("x", n_id), y=self.ctx.features.get("y", seeds), adj=blocks, n_id=n_id,
                     batch_size=b, loss_index=torch.arange(b, device=seeds.device), num_nodes=n_id.numel())

    def sample_from_edges(self, edge_label_index: Tensor, edge_label: Optional[Tensor] = None,
                          gen: Optional[torch.Generator] = None) -> Batch:
        """The sampled neighborhood of both endpoints of the ``E`` edges ``edge_label_index``
        ``[2, E]`` (global ids; negatives are edges with label 0). The batch's seeds are the
        distinct endpoints ``u`` ascending (``batch_size = len(u)``), its ``edge_label_index`` the
        endpoints' rows, ``y = edge_label`` (ones when ``None``) and ``loss_index = arange(E)``."""
        seeds, rows = torch.unique(edge_label_index.reshape(-1), return_inverse=True)
        batch = self.sample_from_nodes(seeds, gen)
        e = edge_label_index.shape[1]
        label = torch.ones(e, device=seeds.device) if edge_label is None else edge_label
        batch.edge_label_index, batch.edge_label, batch.y = rows.view(2, e), label, label
        batch.loss_index = torch.arange(e, device=seeds.device)
        return batch

    def __iter__(self):
        gen = self.generator(self.epoch)
        if self.edges is not None:  # link: positives + their negatives; both endpoints' neighborhoods
            for eli, label in self.edges.batches(self.ctx, self.epoch):
                yield self.sample_from_edges(eli.to(self.train.device), label.to(self.train.device), gen)
            return
        for seeds in self.loader.batches(self.ctx, gen):
            yield self.sample_from_nodes(seeds, gen)

    def sample(self, gen: torch.Generator) -> Batch:
        """One batch of ``batch_size`` seeds drawn uniformly without replacement (diagnostics)."""
        seeds = self.train[torch.randperm(self.train.numel(), generator=gen, device=self.train.device)[:self.batch_size]]
        return self.sample_from_nodes(seeds, gen)

    @classmethod
    def add_args(cls, parser) -> None:
        from gnnkit.plugins import add_option

        add_option(parser, "--fanouts", default="15,10", help="neighbors per hop, seeds' hop first, -1 = all (default 15,10)")

    @classmethod
    def from_args(cls, args) -> "NeighborSampler":
        size = getattr(args, "batch_size", None)
        return cls(fanouts=args.fanouts, batch_size=512 if size is None else size)


EVAL_FANOUTS = (15, 10, 5)  # per hop, seeds' hop first; deeper models repeat the last
EVAL_SEED = 0x5EED_E7A1  # mixed with the run's seed: every evaluation draws the same neighborhoods


def eval_fanouts(num_layers: int, fanouts: Optional[Sequence[int]] = None) -> List[int]:
    """``fanouts`` (checked against ``num_layers``), or :data:`EVAL_FANOUTS` cut or extended (the
    last repeated) to ``num_layers`` hops."""
    if fanouts is not None:
        out = parse_fanouts(fanouts)
        if len(out) != num_layers:
            raise GnnkitError(f"the model has {num_layers} graph layers but {len(out)} inference fanouts were given")
        return out
    return [EVAL_FANOUTS[min(i, len(EVAL_FANOUTS) - 1)] for i in range(num_layers)]


class SampledPredictions:
    """The model's output ``[N, C]`` for the rows asked for only, each row computed on its node's
    sampled ``L``-hop neighborhood (the evaluation of PyG's and DGL's ogbn-papers100M examples),
    for graphs whose whole-graph layer-by-layer inference would not fit in memory.

    ``pred[index]`` (``index`` a bool ``[N]`` mask or int ids ``[k]``) returns ``[k, C]`` float32
    in the order of the ids: the distinct ids, ascending, go through a :class:`NeighborSampler`
    with ``fanouts`` (``batch_size`` seeds at a time; a repeated id gets the same row), each batch's output rows are
    ``model(x[n_id], blocks)[:b]``. Row ``i`` is an unbiased estimate of the exact row when the
    model is linear in the aggregation (one layer), and a sampled approximation otherwise.
    Every lookup draws from a fresh generator seeded from ``(seed, EVAL_SEED)``, so the same
    ids get the same neighborhoods at every evaluation (same seed, same figures).
    Called in eval mode without gradient (the Trainer's evaluation does both).
    """

    def __init__(self, ctx, model, fanouts: Optional[Sequence[int]] = None, batch_size: int = 1024):
        layers = getattr(model, "num_layers", None)
        if layers is None:
            raise GnnkitError(f"{type(model).__name__} has no num_layers: sampled inference needs a gnnkit model")
        self.sampler = NeighborSampler(eval_fanouts(layers, fanouts), batch_size, shuffle=False)
        self.sampler.setup(ctx, model)
        self.ctx, self.model = ctx, model
        self.num_nodes, self.num_classes = ctx.graph.num_nodes, int(getattr(model, "out_dim", 0) or 0)

    @property
    def shape(self) -> torch.Size:
        return torch.Size((self.num_nodes, self.num_classes))

    def __len__(self) -> int:
        return self.num_nodes

    def size(self, dim: Optional[int] = None):
        return self.shape if dim is None else self.shape[dim]

    def generator(self) -> torch.Generator:
        return torch.Generator(device=self.sampler.train.device).manual_seed((self.ctx.seed * 1_000_003 + EVAL_SEED)
                                                                            % 2**63)

    def __getitem__(self, index) -> Tensor:
        if not isinstance(index, Tensor) or index.dim() != 1:
            raise GnnkitError("sampled predictions are read by a bool node mask [N] or node ids [k]")
        if index.dtype == torch.bool:
            if index.numel() != self.num_nodes:
                raise GnnkitError(f"a node mask of {index.numel()} entries for {self.num_nodes} nodes")
            index = index.nonzero().view(-1)
        ids = index.long().to(self.sampler.train.device)
        if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= self.num_nodes):
            raise GnnkitError(f"node ids outside [0, {self.num_nodes})")
        ids, back = torch.unique(ids, return_inverse=True)  # each node once, ascending
        gen, bs = self.generator(), self.sampler.batch_size
        batches = (self.sampler.sample_from_nodes(ids[b:b + bs], gen) for b in range(0, ids.numel(), bs))
        from .scan import ScanFeatures, scan_ahead

        features = self.ctx.features
        if isinstance(features, ScanFeatures) and features.group:  # rows of `group` batches in one pass
            batches = scan_ahead(batches, features, features.group)
        outs = [torch.empty(0, self.num_classes)]
        for batch in batches:
            outs.append(self.model(batch.x, batch.adj)[:batch.batch_size].float())
            self.num_classes = outs[-1].shape[1]
        return (torch.cat(outs) if len(outs) > 1 else outs[0])[back]
