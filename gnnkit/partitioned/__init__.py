"""Partitioned graphs (issue 22): each rank holds only its part; what it lacks, its owner answers.

Writing (``gnnkit partition DATASET --num-parts P --out DIR [--method metis|random]``)::

    >>> from gnnkit.partitioned import write_partition, open_part
    >>> write_partition(data_or_store_or_path, num_parts=4, out="parts/cora", method="metis", seed=0)
    >>> part = open_part("parts/cora", rank=1)        # verified, memory-mapped; opens part 1 and the book only
    >>> part.graph        # GraphStore over the part's LOCAL rows; columns are GLOBAL source ids
    >>> part.features     # FeatureStore of the owned rows (x, y, masks, ...), local row order
    >>> part.global_ids   # int64 [n_r], ascending: local row i is global node global_ids[i]
    >>> part.book.owner, part.book.local, part.book.degree   # [N] each: owner part, row there, in-degree
    >>> part.halo_ids()   # global ids of the in-neighbors of the part owned elsewhere

Layout of ``DIR``::

    DIR/partition.json  {"format": "gnnkit-partition", "version": 1, "num_parts": P, "num_nodes": N,
                         "num_edges": E, "method": "metis"|"random", "seed": s, "name", "fingerprint"
                         (the whole graph's dataset fingerprint), "edge_cut", "is_symmetric", "weighted",
                         "meta" (num_classes...), "parts": [{"dir": "part-r", "num_nodes": n_r,
                         "num_edges": E_r, "num_train": t_r, "meta_checksum"}], "book": {...}}
    DIR/book/           a store (gnnkit.stores.ondisk format) of N rows: owner int16, local int32,
                        degree int32 (+ weighted_degree float32): replicated, 10 bytes per node
    DIR/part-r/         a store of the n_r owned nodes: indptr [n_r + 1], indices [E_r] (GLOBAL source
                        ids, the whole graph's CSR rows in its order), edge_weight (weighted graphs),
                        global_ids int64 [n_r], and every node array (x, y, masks...) of those rows;
                        "extra": {"partition": {part, num_parts, num_nodes, ...}}

What is replicated, and why (measured by ``benchmarks/partitioned.py``, its ``layout`` records):
the book, 10 bytes per node (the owner and row of every node, so any rank routes any id without
asking; the in-degree, so the GCN weight ``1/sqrt((d_i+1)(d_j+1))`` of a remote neighbor costs no
round). The structure is NOT replicated: at ogbn-products' size (2.4M nodes, 62M edges) the whole
CSR is about 270 MB with int32 columns, as much as one rank's 100 float32 features at P = 4, so
replicating it would add a whole part's worth to every rank, against the per-rank memory target
of (1/P + 0.15) of one process. Nor are halo ids stored: on csbm (homophily 0.8, 25 edges per
node) METIS leaves each part a 1-hop halo of 0.9x its own node count at P = 2 and 2.2x at P = 4
(200k nodes), a random partition 1.0x and 3.0x (nearly every node it does not own), so a stored halo (or halo features) would cost more than
the part itself; :meth:`Part.halo_ids` computes it on demand (one ``unique`` over the part's
columns) for the full-batch mode. Instead, rows owned elsewhere are fetched per step: their
adjacency (sampled by the owner, a seed sent along) for the next hop and their features at the
last hop.

Training under torchrun (rank ``r`` opens part ``r``; world size must equal ``P``):
:func:`open_dataset` gives the :class:`~gnnkit.partitioned.stores.DistGraphStore` /
:class:`~gnnkit.partitioned.stores.DistFeatureStore` pair that ``gnnkit train --dataset DIR`` trains on.
They answer every global id (owned rows from the part, the others from their owners through
:mod:`~gnnkit.partitioned.exchange`: ``all_to_all_single`` rounds, one per hop and one per feature
read, never per node), so the neighbor sampler runs unchanged over them.
"""
from .layout import BOOK_DIR, INFO_FILE, Book, Part, PartGraph, is_partition, open_part, read_info
from .sampler import open_dataset
from .write import METHODS, assign_parts, write_partition

__all__ = ["write_partition", "open_part", "open_dataset", "is_partition", "read_info", "assign_parts", "Part", "PartGraph", "Book",
           "METHODS", "INFO_FILE", "BOOK_DIR"]
