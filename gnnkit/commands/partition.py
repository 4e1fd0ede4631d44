"""``gnnkit partition NAME_OR_PATH --num-parts P``: METIS-partition a graph into the cache, or,
with ``--out DIR``, write a partition folder (issue 22: one store per part plus the replicated
book, see :mod:`gnnkit.partitioned`) that ``gnnkit train --dataset DIR`` trains on under torchrun
with ``P`` processes. ``--method random`` (seeded by ``--metis-seed``) deals the nodes to parts at
random, for graphs whose METIS input does not fit in memory. A store folder as NAME_OR_PATH is
read memory-mapped.

Without ``--out`` it prints the edge cut (undirected edges between parts), the imbalance (largest part over the mean
part), the seconds taken and the cache file; with ``--json`` one object with the keys
``num_parts``, ``edge_cut``, ``imbalance``, ``seconds``, ``cached``, ``path``. The partition lands
where ``--sampler cluster`` looks for it (``<root>/partitions``), so a later training run loads it.
"""
from __future__ import annotations

import argparse
import json

from ..data.csbm import add_csbm_arguments
from .options import count

NAME = "partition"
HELP = "METIS-partition a graph (cached under <root>/partitions) and print cut and balance"
ORDER = 25


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("dataset", metavar="NAME_OR_PATH", help="a known dataset name (Cora, csbm...) or a path")
    p.add_argument("--num-parts", type=count, required=True, help="number of parts P")
    p.add_argument("--root", default=None, help="dataset root; the cache is <root>/partitions")
    p.add_argument("--scope", choices=("whole", "train"), default="whole",
                   help="partition the whole graph or the training subgraph only (default whole)")
    p.add_argument("--metis-seed", type=int, default=0, help="METIS seed (default 0)")
    p.add_argument("--ufactor", type=count, default=None, help="METIS imbalance tolerance in 1/1000 (default 30)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--out", default=None, metavar="DIR",
                   help="write a partition folder (one store per part, issue 22) instead of the cache only")
    p.add_argument("--method", choices=("metis", "random"), default="metis",
                   help="with --out: METIS (default) or a seeded random partition")
    p.add_argument("--overwrite", action="store_true", help="with --out: replace an existing folder")
    p.add_argument("--feature-dtype", choices=("float32", "float16", "bfloat16"), default=None,
                   help="with --out: the parts' x dtype (default: as the source)")
    add_csbm_arguments(p)  # --num-nodes, --avg-degree, ... for NAME_OR_PATH = csbm


def run(args) -> int:
    from ..errors import GnnkitError
    from ..partition import DEFAULT_UFACTOR, check_num_parts, default_cache_dir, induced_subgraph, partition_graph
    from .factory import load_graph

    check_num_parts(args.num_parts)  # a bad count fails before the graph is loaded
    if args.ufactor is not None and args.ufactor < 1:
        raise GnnkitError(f"--ufactor must be at least 1 (imbalance in 1/1000), got {args.ufactor}")
    if args.out is not None:
        return write_folder(args)
    if args.method != "metis":
        raise GnnkitError("--method applies with --out (the cache holds METIS partitions)")
    data = load_graph(args.dataset, args)
    if args.num_parts > data.num_nodes:
        raise GnnkitError(f"--num-parts {args.num_parts} is more than the graph's {data.num_nodes} nodes")
    edge_index, n = data.edge_index, data.num_nodes
    if args.scope == "train":
        edge_index, nodes = induced_subgraph(edge_index, data.train_mask)
        n = nodes.numel()
    part = partition_graph(edge_index, n, args.num_parts, seed=args.metis_seed,
                           ufactor=DEFAULT_UFACTOR if args.ufactor is None else args.ufactor,
                           cache_dir=default_cache_dir(args.root))
    out = {"num_parts": part.num_parts, "edge_cut": part.edge_cut, "imbalance": round(part.imbalance, 4),
           "seconds": round(part.seconds, 3), "cached": part.cached, "path": part.path}
    if args.json:
        print(json.dumps(out))
    else:
        print(f"{n} nodes in {part.num_parts} parts: edge cut {part.edge_cut}, imbalance {part.imbalance:.3f}, "
              f"{part.seconds:.2f}s ({'cache hit' if part.cached else 'computed'}) -> {part.path}")
    return 0


def write_folder(args) -> int:
    """``--out DIR``: the partition folder of the whole graph, METIS through the cache under ``--root``."""
    from ..errors import GnnkitError
    from ..partition import default_cache_dir
    from ..partitioned import write_partition
    from ..stores.ondisk import is_store
    from .factory import csbm_options, load_graph

    if args.scope != "whole" or args.ufactor is not None:
        raise GnnkitError("--scope train and --ufactor apply to the cache only, not to --out")
    source = args.dataset if is_store(args.dataset) and not csbm_options(args) else load_graph(args.dataset, args)
    info = write_partition(source, args.num_parts, args.out, method=args.method, seed=args.metis_seed,
                           overwrite=args.overwrite, feature_dtype=args.feature_dtype,
                           cache_dir=default_cache_dir(args.root) if args.method == "metis" else None)
    sizes = [p["num_nodes"] for p in info["parts"]]
    out = {"num_parts": info["num_parts"], "method": info["method"], "edge_cut": info["edge_cut"],
           "part_nodes": sizes, "part_edges": [p["num_edges"] for p in info["parts"]], "out": args.out}
    if args.json:
        print(json.dumps(out))
    else:
        cut = "" if info["edge_cut"] < 0 else f", edge cut {info['edge_cut']}"
        print(f"{info['num_nodes']} nodes in {info['num_parts']} parts ({info['method']}{cut}; "
              f"nodes per part {min(sizes)}..{max(sizes)}) -> {args.out}")
    return 0
