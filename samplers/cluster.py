"""Cluster-GCN (Chiang et al., KDD 2019): batches of METIS clusters with every edge among them.

Setup (once). METIS (:func:`gnnkit.partition.partition_graph`, cached under
``<data root>/partitions``) splits the graph into ``P = num_parts`` clusters. The partitioned nodes
are then permuted so that cluster ``c`` is the contiguous range ``ptr[c]:ptr[c+1]`` of positions,
and the graph's edges are stored once more in CSR over positions (row = target ``i``, column =
source ``j`` of each edge ``j -> i``).

Batches. Each epoch draws a random order of the ``P`` clusters (the epoch's generator of
:mod:`samplers.loader`, from the run's seed and the epoch, so a resumed run draws the same batches) and cuts it into groups of
``q = clusters_per_batch``: every cluster is visited once per epoch, ``ceil(P / q)`` batches (groups
holding no training node are skipped). A batch of clusters ``c_1..c_q`` has the ``n_b`` nodes of
their ranges and *every* edge among them, the between-cluster edges included (the rows of the
batch's ranges are read from the CSR and entries whose column falls outside the chosen clusters
are dropped). Its adjacency is re-normalized with degrees counted inside the batch, in the model's
normalization (``adj_norm``: ``D^-1/2 (A+I) D^-1/2`` for GCN), or with the diagonal enhancement
``Ã + λ·diag(Ã)``, ``Ã = (D+I)^-1 (A+I)`` when ``diag_lambda = λ`` is given. On a weighted graph
(``graph.edge_weight()``) every kept edge keeps its weight ``a_ij`` and ``D`` holds the weighted
in-degrees inside the batch (self-loops of weight 1, as PyG's ``gcn_norm``). The model must
have been built with that operator (``build_model(..., adj_norm="diag", diag_lambda=λ)``), so
full-graph evaluation uses it too: setup checks ``ctx.adj_norm``/``ctx.diag_lambda`` and raises
otherwise.

A PyG-style model (``wants_edge_index``) gets the batch's ``edge_index`` (local ids), raw
``edge_weight`` and ``edge_attr`` as a :class:`~samplers.batch.PygEdges` and normalizes itself.

A batch (:class:`~samplers.batch.Batch`) has ``x`` ``[n_b, F]``, ``y`` ``[n_b]``, ``adj``
``[n_b, n_b]``, ``n_id`` ``[n_b]`` (global ids), ``loss_index`` the batch rows that are training
nodes (the loss is their mean) and ``extra`` ``train_mask``/``val_mask``/``test_mask`` ``[n_b]``
restricted to the batch; all node data come through ``ctx.features.get``.

Scope. ``partition_scope="whole"`` partitions the whole graph (PyG/DGL's choice).
``partition_scope="train"`` is the paper's inductive setting: only the training nodes and the
edges among them are partitioned and batched; validation and test nodes never enter a batch and
are scored by the full-graph, layer-by-layer inference (``model.inference``) at evaluation time,
like every other node. Evaluation always runs on the full graph (in the loop's row chunks).

Link prediction (the run's data carries ``link_edges``, :mod:`samplers.edges`): the same epoch of
cluster groups, and a batch's positives are the training edges with *both* endpoints inside its
clusters (between-cluster edges of the batch included), each with ``k`` negatives whose
destinations are drawn among the batch's nodes (uniform or degree-biased as the task says, never a
training edge), from a generator seeded by ``(seed, epoch)``; groups holding no training edge are
skipped. ``edge_label_index`` holds batch rows, ``edge_label`` 1/0, ``loss_index = arange(E)``.

Several processes: every rank draws the same epoch order and takes its share of the groups with
:func:`samplers.loader.shard` (equal step counts, which DistributedDataParallel needs). When
the ``G`` groups do not divide among the ``w`` ranks, the list wraps around: the first
``w - G mod w`` groups of the epoch's order are dealt once more, so no cluster is dropped and
every rank takes ``ceil(G / w)`` steps (those few clusters are visited twice that epoch). Rank 0
partitions first and writes the cache; the others then read it (``ctx.main_first``).
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from gnnkit.errors import GnnkitError
from gnnkit.partition import (DEFAULT_UFACTOR, Partition, check_metis_memory, check_num_parts, check_request,
                              partition_graph)
from gnnkit.sparse import Adjacency
from gnnkit.sparse.segments import concat_ranges

from .base import Sampler, edge_attr_of, wants_edges
from .batch import Batch, PygEdges
from .edges import edge_generator, edge_loader
from .loader import epoch_generator, seed_nodes, shard

SCOPES = ("whole", "train")


class ClusterSampler(Sampler):
    """Cluster-GCN batches: ``clusters_per_batch`` random METIS clusters per step.

    Args:
        num_parts: number of METIS clusters ``P``.
        clusters_per_batch: clusters joined in one batch ``q`` (``1 <= q <= P``).
        diag_lambda: ``λ`` of the diagonal enhancement (``None``: the model's own normalization).
        partition_scope: ``"whole"`` graph or ``"train"`` (training subgraph only, the paper's choice).
        cache_dir: where partitions are cached (``None``: ``<data root>/partitions``).
        metis_seed, ufactor: METIS's seed and imbalance tolerance (thousandths).
    """

    name = "cluster"
    edges = None  # the EdgeLoader of a link run (samplers.edges), set in setup

    def __init__(self, num_parts: int = 100, clusters_per_batch: int = 10, diag_lambda: Optional[float] = None,
                 partition_scope: str = "whole", cache_dir: Optional[str] = None, metis_seed: int = 0,
                 ufactor: int = DEFAULT_UFACTOR):
        if partition_scope not in SCOPES:
            raise GnnkitError(f"partition scope must be one of {', '.join(SCOPES)}, got {partition_scope!r}")
        if not isinstance(clusters_per_batch, int) or clusters_per_batch < 1:
            raise GnnkitError(f"clusters per batch must be a positive integer, got {clusters_per_batch!r}")
        if diag_lambda is not None and not diag_lambda >= 0:
            raise GnnkitError(f"diag_lambda must be >= 0, got {diag_lambda}")
        check_num_parts(num_parts)  # against the node count at setup
        if clusters_per_batch > num_parts:
            raise GnnkitError(f"clusters per batch ({clusters_per_batch}) cannot exceed the number of "
                              f"parts ({num_parts})")
        self.num_parts, self.clusters_per_batch, self.diag_lambda = num_parts, clusters_per_batch, diag_lambda
        self.partition_scope, self.cache_dir, self.metis_seed, self.ufactor = partition_scope, cache_dir, metis_seed, ufactor
        self.partition: Optional[Partition] = None
        self.epoch, self.plan = 0, []

    # -- setup: partition, permutation, permuted CSR ------------------------------------------------
    def setup(self, ctx, model) -> None:
        super().setup(ctx, model)
        self.check_operator(ctx)
        graph = ctx.graph
        if self.partition_scope != "train":  # METIS's memory, before the whole edge_index is built
            check_metis_memory(graph.num_nodes, graph.num_edges)
        if self.partition_scope == "train":
            nodes = seed_nodes(ctx.features, who="cluster")
            edge_index = graph.induced_subgraph(nodes)
        else:
            edge_index, nodes = graph.edge_index(), None
        n = graph.num_nodes if nodes is None else nodes.numel()
        check_request(n, int(edge_index.shape[1]), self.num_parts)
        with ctx.main_first():  # rank 0 computes and caches first, the others then read the cache
            self.partition = partition_graph(edge_index, n, self.num_parts, seed=self.metis_seed,
                                             ufactor=self.ufactor, cache_dir=self.cache_dir)
        del edge_index
        device = graph.device
        parts = self.partition.parts.to(device)
        order = torch.argsort(parts, stable=True)
        self.nodes = order if nodes is None else nodes[order]  # global id of every position, [n]
        self.cluster_of = parts[order]  # cluster of every position, sorted
        self.ptr = torch.zeros(self.num_parts + 1, dtype=torch.int64, device=device)
        torch.cumsum(torch.bincount(parts, minlength=self.num_parts), 0, out=self.ptr[1:])
        del parts, order
        self._build_csr(graph, n)
        self.train_per_cluster = torch.zeros(self.num_parts, dtype=torch.int64, device=device).index_add_(
            0, self.cluster_of, ctx.features.get("train_mask", self.nodes).long())
        self.norm = ctx.adj_norm
        self._setup_edges(ctx)
        self.set_epoch(0)

    def _setup_edges(self, ctx) -> None:
        """Link prediction: the cluster ``[2, P]`` of both endpoints of every training edge."""
        self.local_of = torch.full_like(self.pos_of, -1)  # batch row of a global id (reset after each batch)
        self.edges = edge_loader(ctx, batch_size=1)
        if self.edges is None:
            return
        pos = self.pos_of[self.edges.positives.to(self.pos_of.device)]
        if bool((pos < 0).any()):
            raise GnnkitError("cluster: some training edges have an endpoint outside the partition")
        self.edge_clusters = self.cluster_of[pos]

    def check_operator(self, ctx) -> None:
        """The model's operator (``ctx.adj_norm``/``ctx.diag_lambda``, fixed when it was built) must
        be the one this sampler normalizes batches with."""
        if self.diag_lambda is None:
            if ctx.adj_norm == "diag":
                raise GnnkitError(f"the model uses the diagonal enhancement (λ={ctx.diag_lambda}) but the cluster "
                                  "sampler was given no diag_lambda; pass the same λ to both")
            return
        if ctx.adj_norm != "diag" or float(ctx.diag_lambda) != float(self.diag_lambda):
            raise GnnkitError(f"the cluster sampler's diag_lambda={self.diag_lambda} needs a model built with "
                              f"adj_norm='diag', diag_lambda={self.diag_lambda}; the model has adj_norm="
                              f"{ctx.adj_norm!r}, diag_lambda={ctx.diag_lambda} (build_model(..., adj_norm='diag', "
                              "diag_lambda=λ))")

    def _build_csr(self, graph, n: int) -> None:
        """``crow`` ``[n + 1]``, ``col`` ``[nnz]`` (``weight`` ``[nnz]`` or ``None``): in-edges of every
        position, in position ids."""
        edge_index = graph.edge_index()
        device = edge_index.device
        self.pos_of = torch.full((graph.num_nodes,), -1, dtype=torch.int64, device=device)  # position of every id
        self.pos_of[self.nodes] = torch.arange(n, device=device)
        dst, src = self.pos_of[edge_index[1]], self.pos_of[edge_index[0]]
        if self.partition_scope == "train":
            keep = (dst >= 0) & (src >= 0)
            dst, src = dst[keep], src[keep]
        weight = graph.edge_weight()
        eid = torch.arange(edge_index.shape[1], device=device) if getattr(self.model, "takes_edge_attr", False) else None
        if self.partition_scope == "train":
            weight, eid = (None if t is None else t[keep] for t in (weight, eid))
        dst, idx = torch.sort(dst)
        col_dtype = torch.int32 if n < 2**31 else torch.int64
        self.col = src[idx].to(col_dtype)
        self.weight = None if weight is None else weight[idx]  # [nnz] a_ij of every CSR entry, or None
        self.eid = None if eid is None else eid[idx]  # [nnz] edge_index position (a model taking edge_attr)
        del src, idx
        self.crow = torch.zeros(n + 1, dtype=torch.int64, device=device)
        torch.cumsum(torch.bincount(dst, minlength=n), 0, out=self.crow[1:])

    # -- epochs -------------------------------------------------------------------------------------
    def set_epoch(self, epoch: int) -> None:
        """Draw epoch ``epoch``'s groups of clusters (the same on every rank and on resume)."""
        self.epoch = epoch
        gen = epoch_generator(self.ctx.seed, epoch)
        groups = torch.randperm(self.num_parts, generator=gen).split(self.clusters_per_batch)
        if self.edges is None:
            counts = self.train_per_cluster.cpu()
            groups = [g for g in groups if int(counts[g].sum()) > 0]
        else:
            groups = [groups[i] for i in self._edges_per_group(groups).nonzero().view(-1).tolist()]
        self.plan = list(shard(self.ctx, groups, wrap=True))  # wrap: every cluster is still visited

    def _edges_per_group(self, groups) -> Tensor:
        """Training edges with both endpoints in each group ``[G]`` (link prediction)."""
        gid = torch.empty(self.num_parts, dtype=torch.long)
        gid[torch.cat(groups)] = torch.repeat_interleave(torch.arange(len(groups)),
                                                         torch.tensor([g.numel() for g in groups]))
        gu, gv = gid[self.edge_clusters.cpu()]
        return torch.bincount(gu[gu == gv], minlength=len(groups))

    def __len__(self) -> int:
        return len(self.plan)

    def __iter__(self):
        gen = None if self.edges is None else edge_generator(self.ctx.seed, self.epoch)
        for clusters in self.plan:
            yield self.batch(clusters) if gen is None else self.edge_batch(clusters, gen)

    def edge_batch(self, clusters: Tensor, gen: torch.Generator, edges=None) -> Batch:
        """The batch of ``clusters`` scoring the training edges inside them and their negatives drawn
        among the batch's nodes, or the given ``edges = (edge_label_index [2, E], edge_label [E])``."""
        batch = self.batch(clusters)
        if edges is None:
            chosen = torch.zeros(self.num_parts, dtype=torch.bool, device=self.ptr.device)
            chosen[clusters.to(self.ptr.device)] = True
            edges = self.edges.within(batch.n_id, chosen[self.edge_clusters].all(0), gen)
        eli, label = (t.to(self.ptr.device) for t in edges)
        self.local_of[batch.n_id] = torch.arange(batch.n_id.numel(), device=self.ptr.device)
        rows = self.local_of[eli]
        self.local_of[batch.n_id] = -1
        batch.edge_label_index, batch.edge_label, batch.y = rows, label, label
        batch.loss_index = torch.arange(label.numel(), device=self.ptr.device)
        return batch

    def sample_from_edges(self, edge_label_index: Tensor, edge_label: Optional[Tensor] = None) -> Batch:
        """The batch of the clusters holding both endpoints of every edge ``[2, E]`` (global ids; every
        edge among those clusters), scoring those edges (labels ``[E]``, ones when ``None``)."""
        pos = self.pos_of[edge_label_index.to(self.ptr.device)]
        if bool((pos < 0).any()):
            raise GnnkitError("cluster: some endpoints were not partitioned (partition_scope='train')")
        label = torch.ones(edge_label_index.shape[1]) if edge_label is None else edge_label
        return self.edge_batch(torch.unique(self.cluster_of[pos]), None, (edge_label_index, label))

    def batch(self, clusters: Tensor) -> Batch:
        """The batch of the given clusters (ids in ``[0, P)``): nodes, every edge among them."""
        device = self.ptr.device
        clusters = torch.sort(clusters.to(device)).values  # ascending positions: rows come in order
        starts = self.ptr[clusters]
        sizes = self.ptr[clusters + 1] - starts
        pos = concat_ranges(starts, sizes)  # [n_b] positions of the batch's nodes
        nb = pos.numel()
        # the in-edges of the batch rows: one contiguous CSR range per cluster
        e_start = self.crow[starts]
        ent = concat_ranges(e_start, self.crow[starts + sizes] - e_start)
        col = self.col[ent].long()
        row = torch.repeat_interleave(torch.arange(nb, device=device), self.crow[pos + 1] - self.crow[pos],
                                      output_size=ent.numel())
        # batch-local id of a position: offset of its cluster in the batch + rank inside the cluster
        offset = torch.full((self.num_parts,), -1, dtype=torch.int64, device=device)
        offset[clusters] = torch.cumsum(sizes, 0) - sizes
        c = self.cluster_of[col]
        local = offset[c]
        keep = local >= 0
        src = local[keep] + col[keep] - self.ptr[c[keep]]
        edge_index = torch.stack([src, row[keep]])
        weight = None if self.weight is None else self.weight[ent][keep]
        if wants_edges(self.model):  # a PyG-style model: the batch's edges, raw weights and edge features
            attr = None if self.eid is None else edge_attr_of(self.ctx, self.model, self.eid[ent][keep])
            adj = PygEdges(edge_index, weight, attr)
        else:
            adj = Adjacency.from_edge_index(edge_index, nb, norm=self.norm, diag_lambda=self.diag_lambda or 0.0,
                                            edge_weight=weight, symmetric=self.ctx.graph.symmetric_adjacency)
        n_id = self.nodes[pos]
        get = self.ctx.features.get
        train = get("train_mask", n_id)
        masks = {"train_mask": train, "val_mask": get("val_mask", n_id), "test_mask": get("test_mask", n_id)}
        return Batch(x=get("x", n_id), y=get("y", n_id), adj=adj, n_id=n_id, loss_index=train.nonzero().view(-1),
                     num_nodes=nb, extra=masks)

    def sample_from_nodes(self, seeds: Tensor) -> Batch:
        """The batch of the clusters that hold ``seeds`` ``[B]`` (every edge among them), with the
        loss on the seeds' rows only."""
        pos = self.pos_of[seeds.to(self.ptr.device)]
        if bool((pos < 0).any()):
            raise GnnkitError("cluster: some seeds were not partitioned (partition_scope='train' holds the "
                              "training nodes only)")
        c = self.cluster_of[pos]
        clusters = torch.unique(c)
        batch = self.batch(clusters)
        sizes = self.ptr[clusters + 1] - self.ptr[clusters]
        offset = torch.cumsum(sizes, 0) - sizes  # where each chosen cluster starts in the batch
        batch.loss_index = offset[torch.searchsorted(clusters, c)] + pos - self.ptr[c]
        return batch

    # -- checkpoints --------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        """Batches depend only on (seed, epoch) and the partition: the partition's key pins the latter."""
        return {"epoch": self.epoch, "partition_key": self.partition.key if self.partition else None,
                "num_parts": self.num_parts, "clusters_per_batch": self.clusters_per_batch}

    def load_state_dict(self, state: dict) -> None:
        key = state.get("partition_key")
        if self.partition is not None and key is not None and key != self.partition.key:
            raise GnnkitError("the checkpoint was trained on another partition (graph, parts or METIS options "
                              "differ): resuming would draw other batches")
        if state.get("clusters_per_batch", self.clusters_per_batch) != self.clusters_per_batch:
            raise GnnkitError(f"the checkpoint used {state['clusters_per_batch']} clusters per batch, "
                              f"this run {self.clusters_per_batch}")
        self.epoch = int(state.get("epoch", 0))

    # -- command line -------------------------------------------------------------------------------
    @classmethod
    def add_args(cls, parser) -> None:
        from gnnkit.plugins import add_option

        add_option(parser, "--num-parts", type=int, default=100, help="cluster: METIS parts (default 100)")
        add_option(parser, "--clusters-per-batch", type=int, default=10,
                   help="cluster: clusters joined in one batch (default 10)")
        add_option(parser, "--diag-lambda", type=float, default=None,
                   help="cluster: diagonal enhancement λ (default: the model's own normalization)")
        add_option(parser, "--partition-scope", choices=SCOPES, default="whole",
                   help="cluster: partition the whole graph or the training subgraph only (default whole)")
        add_option(parser, "--metis-seed", type=int, default=0, help="cluster: METIS seed (default 0)")

    @classmethod
    def from_args(cls, args) -> "ClusterSampler":
        from gnnkit.partition import default_cache_dir

        return cls(num_parts=args.num_parts, clusters_per_batch=args.clusters_per_batch, diag_lambda=args.diag_lambda,
                   partition_scope=args.partition_scope, metis_seed=getattr(args, "metis_seed", 0),
                   cache_dir=default_cache_dir(getattr(args, "root", None)))
