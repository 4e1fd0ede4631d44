"""``gnnkit partition NAME_OR_PATH --num-parts P``: METIS-partition a graph into the cache.

Prints the edge cut (undirected edges between parts), the imbalance (largest part over the mean
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
    add_csbm_arguments(p)  # --num-nodes, --avg-degree, ... for NAME_OR_PATH = csbm


def run(args) -> int:
    from ..errors import GnnkitError
    from ..partition import DEFAULT_UFACTOR, check_num_parts, default_cache_dir, induced_subgraph, partition_graph
    from .factory import load_graph

    check_num_parts(args.num_parts)  # a bad count fails before the graph is loaded
    if args.ufactor is not None and args.ufactor < 1:
        raise GnnkitError(f"--ufactor must be at least 1 (imbalance in 1/1000), got {args.ufactor}")
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
