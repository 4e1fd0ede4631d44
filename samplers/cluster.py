"""Cluster-GCN (Chiang et al., KDD 2019): batches of METIS clusters with every edge among them.

Setup (once). METIS (:func:`gnnkit.partition.partition_graph`, cached under
``<data root>/partitions``) splits the graph into ``P = num_parts`` clusters. The partitioned nodes
are then permuted so that cluster ``c`` is the contiguous range ``ptr[c]:ptr[c+1]`` of positions,
and the graph's edges are stored once more in CSR over positions (row = target ``i``, column =
source ``j`` of each edge ``j -> i``).

Batches. Each epoch draws a random order of the ``P`` clusters (``torch.Generator`` seeded with the
Trainer's seed and the epoch, so a resumed run draws the same batches) and cuts it into groups of
``q = clusters_per_batch``: every cluster is visited once per epoch, ``ceil(P / q)`` batches (groups
holding no training node are skipped). A batch of clusters ``c_1..c_q`` has the ``n_b`` nodes of
their ranges and *every* edge among them, the between-cluster edges included (the rows of the
batch's ranges are read from the CSR and entries whose column falls outside the chosen clusters
are dropped). Its adjacency is re-normalized with degrees counted inside the batch, in the model's
normalization (``adj_norm``: ``D^-1/2 (A+I) D^-1/2`` for GCN), or with the diagonal enhancement
``Ã + λ·diag(Ã)``, ``Ã = (D+I)^-1 (A+I)`` when ``diag_lambda = λ`` is given (then the model's
``adj_norm``/``diag_lambda`` are set to match, so full-graph evaluation uses the same operator).

A batch is a PyG ``Data`` with ``x`` ``[n_b, F]``, ``y`` ``[n_b]``, ``adj`` ``[n_b, n_b]``,
``n_id`` ``[n_b]`` (global ids), ``train_mask``/``val_mask``/``test_mask`` ``[n_b]`` restricted to
the batch and ``loss_index`` the batch rows that are training nodes (the loss is their mean).

Scope. ``partition_scope="whole"`` partitions the whole graph (PyG/DGL's choice).
``partition_scope="train"`` is the paper's inductive setting: only the training nodes and the
edges among them are partitioned and batched; validation and test nodes never enter a batch and
are scored by the full-graph, layer-by-layer inference (``model.inference``) at evaluation time,
like every other node. Evaluation always runs on the full graph; for graphs above 2^17 nodes the
sampler sets ``trainer.inference_batch_size`` (when unset) to 2^16 rows per chunk.

Several processes: every rank draws the same epoch order and takes its share of the groups with
:func:`gnnkit.distributed.shard` (equal step counts, which DistributedDataParallel needs). When
the ``G`` groups do not divide among the ``w`` ranks, the list wraps around: the first
``w - G mod w`` groups of the epoch's order are dealt once more, so no cluster is dropped and
every rank takes ``ceil(G / w)`` steps (those few clusters are visited twice that epoch). Rank 0
partitions first and writes the cache; the others then read it.
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor
from torch_geometric.data import Data

from gnnkit import distributed as dist
from gnnkit.errors import GnnkitError
from gnnkit.partition import DEFAULT_UFACTOR, Partition, check_num_parts, check_request, induced_subgraph, partition_graph
from gnnkit.sparse import Adjacency

from .base import Sampler

SCOPES = ("whole", "train")
_LARGE_GRAPH = 1 << 17
_INFERENCE_ROWS = 1 << 16


def concat_ranges(starts: Tensor, lengths: Tensor) -> Tensor:
    """``cat([arange(s, s + l) for s, l in zip(starts, lengths)])`` without a Python loop."""
    total = int(lengths.sum())
    shift = starts - (torch.cumsum(lengths, 0) - lengths)  # start minus output offset of each range
    return torch.arange(total, device=starts.device) + torch.repeat_interleave(shift, lengths, output_size=total)


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
    def setup(self, trainer, data) -> None:
        super().setup(trainer, data)
        if self.partition_scope == "train":
            edge_index, nodes = induced_subgraph(data.edge_index, data.train_mask)
        else:
            edge_index, nodes = data.edge_index, None
        n = data.num_nodes if nodes is None else nodes.numel()
        check_request(n, int(edge_index.shape[1]), self.num_parts)
        many = trainer.world_size > 1
        if many and not trainer.is_main:
            dist.barrier()  # rank 0 computes and caches first
        self.partition = partition_graph(edge_index, n, self.num_parts, seed=self.metis_seed, ufactor=self.ufactor,
                                         cache_dir=self.cache_dir)
        if many and trainer.is_main:
            dist.barrier()
        del edge_index
        device = data.edge_index.device
        parts = self.partition.parts.to(device)
        order = torch.argsort(parts, stable=True)
        self.nodes = order if nodes is None else nodes[order]  # global id of every position, [n]
        self.cluster_of = parts[order]  # cluster of every position, sorted
        self.ptr = torch.zeros(self.num_parts + 1, dtype=torch.int64, device=device)
        torch.cumsum(torch.bincount(parts, minlength=self.num_parts), 0, out=self.ptr[1:])
        del parts, order
        self._build_csr(data, n)
        self.train_per_cluster = torch.zeros(self.num_parts, dtype=torch.int64, device=device).index_add_(
            0, self.cluster_of, data.train_mask[self.nodes].long())
        self.norm = "diag" if self.diag_lambda is not None else getattr(trainer.raw_model, "adj_norm", "gcn")
        if self.diag_lambda is not None:  # evaluate with the operator the model is trained with
            trainer.raw_model.adj_norm, trainer.raw_model.diag_lambda = "diag", float(self.diag_lambda)
        if trainer.inference_batch_size is None and data.num_nodes > _LARGE_GRAPH:
            trainer.inference_batch_size = _INFERENCE_ROWS
        self.set_epoch(0)

    def _build_csr(self, data, n: int) -> None:
        """``crow`` ``[n + 1]``, ``col`` ``[nnz]``: in-edges of every position, in position ids."""
        device = data.edge_index.device
        pos_of = torch.full((data.num_nodes,), -1, dtype=torch.int64, device=device)
        pos_of[self.nodes] = torch.arange(n, device=device)
        dst, src = pos_of[data.edge_index[1]], pos_of[data.edge_index[0]]
        del pos_of
        if self.partition_scope == "train":
            keep = (dst >= 0) & (src >= 0)
            dst, src = dst[keep], src[keep]
        dst, idx = torch.sort(dst)
        col_dtype = torch.int32 if n < 2**31 else torch.int64
        self.col = src[idx].to(col_dtype)
        del src, idx
        self.crow = torch.zeros(n + 1, dtype=torch.int64, device=device)
        torch.cumsum(torch.bincount(dst, minlength=n), 0, out=self.crow[1:])

    # -- epochs -------------------------------------------------------------------------------------
    def set_epoch(self, epoch: int) -> None:
        """Draw epoch ``epoch``'s groups of clusters (the same on every rank and on resume)."""
        self.epoch = epoch
        seed = int(getattr(self.trainer, "seed", 0))
        gen = torch.Generator().manual_seed((seed * 1_000_003 + epoch) % 2**63)
        groups = torch.randperm(self.num_parts, generator=gen).split(self.clusters_per_batch)
        counts = self.train_per_cluster.cpu()
        groups = [g for g in groups if int(counts[g].sum()) > 0]
        world = self.trainer.world_size
        if world > 1 and len(groups) % world:  # wrap around: every cluster is still visited
            groups = [groups[i % len(groups)] for i in range(-(-len(groups) // world) * world)]
        self.plan = list(dist.shard(groups, self.trainer.rank, world))

    def __len__(self) -> int:
        return len(self.plan)

    def __iter__(self):
        for clusters in self.plan:
            yield self.batch(clusters)

    def batch(self, clusters: Tensor) -> Data:
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
        del ent
        # batch-local id of a position: offset of its cluster in the batch + rank inside the cluster
        offset = torch.full((self.num_parts,), -1, dtype=torch.int64, device=device)
        offset[clusters] = torch.cumsum(sizes, 0) - sizes
        c = self.cluster_of[col]
        local = offset[c]
        keep = local >= 0
        src = local[keep] + col[keep] - self.ptr[c[keep]]
        edge_index = torch.stack([src, row[keep]])
        adj = Adjacency.from_edge_index(edge_index, nb, norm=self.norm, diag_lambda=self.diag_lambda or 0.0,
                                        symmetric=bool(getattr(self.data, "is_symmetric", False)))
        n_id = self.nodes[pos]
        d = self.data
        train = d.train_mask[n_id]
        return Data(x=d.x[n_id], y=d.y[n_id], adj=adj, n_id=n_id, loss_index=train.nonzero().view(-1),
                    train_mask=train, val_mask=d.val_mask[n_id], test_mask=d.test_mask[n_id], num_nodes=nb)

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
        root = getattr(args, "root", None)
        from gnnkit.partition import default_cache_dir

        return cls(num_parts=args.num_parts, clusters_per_batch=args.clusters_per_batch, diag_lambda=args.diag_lambda,
                   partition_scope=args.partition_scope, metis_seed=getattr(args, "metis_seed", 0),
                   cache_dir=default_cache_dir(root) if root else None)
