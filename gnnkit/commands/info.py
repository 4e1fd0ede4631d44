"""``gnnkit info NAME_OR_PATH [--root DIR] [--json] [csbm options]``: what a graph is, in figures.

Nodes, directed edges, features, classes, split sizes, degree min/mean/max, isolated nodes,
self-loops, duplicate edges, edge homophily and memory (see :mod:`gnnkit.data.info`). A dataset of many
graphs (a TU name found under the root, ``ogbg-*``): graphs, average nodes and edges, classes; an
``ogbl-*`` link dataset: nodes, edges, split sizes (:mod:`gnnkit.commands.graph_runs`).
``gnnkit info csbm --num-nodes N --avg-degree D ...`` generates the synthetic graph first.
"""
from __future__ import annotations

import json
from pathlib import Path

from gnnkit.data.csbm import add_csbm_arguments

NAME = "info"
HELP = "print the statistics of a dataset (name, .npz path, or csbm with its options)"
ORDER = 20


def add_arguments(parser) -> None:
    parser.add_argument("dataset", metavar="NAME_OR_PATH", help="Cora, ogbn-arxiv, csbm, path/to/graph.npz, ...")
    parser.add_argument("--root", type=Path, default=None,
                        help="data root (default: $GNNKIT_DATA, else the checkout's data/, else ~/.gnnkit/data)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    parser.add_argument("--normalize", action="store_true", help="remove self-loops and duplicate edges first")
    add_csbm_arguments(parser)


def run(args) -> int:
    from gnnkit.commands import graph_runs

    kind = graph_runs.info_kind(args.dataset, args.root)
    if kind:  # many small graphs (TU, ogbg-*) or a link dataset (ogbl-*)
        info = (graph_runs.describe_graphs if kind == "graphs" else graph_runs.describe_links)(args.dataset, args.root)
        print(json.dumps(info, indent=2) if args.json else graph_runs.format_info(info))
        return 0
    from gnnkit.commands.factory import load_graph
    from gnnkit.data.info import describe, format_info

    data = load_graph(args.dataset, args, normalize=args.normalize)
    info = describe(data)
    print(json.dumps(info, indent=2) if args.json else format_info(info))
    return 0
