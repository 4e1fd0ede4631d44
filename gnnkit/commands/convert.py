"""``gnnkit convert SOURCE DIR``: write a dataset into an on-disk store (a folder of memory-mapped arrays).

SOURCE is anything ``gnnkit.data.load`` reads (``Cora``, ``ogbn-arxiv``, ``path/graph.npz``,
``csbm:...``), an existing store folder (copied, e.g. to change ``--feature-dtype``), or ``csbm``
with its options, which is generated straight into the store chunk by chunk (never in memory, so
sizes beyond memory work)::

    gnnkit convert Cora stores/cora
    gnnkit convert csbm stores/papers --num-nodes 111059956 --avg-degree 14.5 --num-features 128 \\
        --num-classes 172 --feature-dtype float16 --labeled-nodes 1546782 --train-frac 0.7804 --val-frac 0.081

The store is written to a temporary folder and renamed when complete (see
:mod:`gnnkit.stores.ondisk`). Prints one line: the store's path, its size and how long it took.
"""
from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

from gnnkit.data.csbm import add_csbm_arguments, csbm_kwargs_from_args, csbm_options
from gnnkit.errors import GnnkitError

NAME = "convert"
HELP = "write a dataset (name, .npz, csbm, store) into an on-disk, memory-mapped store folder"
ORDER = 25


def add_arguments(parser) -> None:
    parser.add_argument("dataset", metavar="SOURCE", help="Cora, ogbn-arxiv, csbm, path/to/graph.npz, a store folder")
    parser.add_argument("out", metavar="DIR", type=Path, help="the store folder to write")
    parser.add_argument("--root", type=Path, default=None, help="data root of named datasets (as gnnkit train)")
    parser.add_argument("--normalize", action="store_true", help="remove self-loops and duplicate edges first")
    parser.add_argument("--feature-dtype", choices=("float32", "float16", "bfloat16"), default="float32",
                        help="dtype of the stored node features (default float32: exact)")
    parser.add_argument("--overwrite", action="store_true", help="replace DIR when it exists")
    parser.add_argument("--labeled-nodes", type=int, default=None,
                        help="csbm: keep the labels of this many random nodes, the rest unlabeled (-1)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    add_csbm_arguments(parser)


def _disk_bytes(path: str) -> int:
    return sum(e.stat().st_size for e in os.scandir(path) if e.is_file())


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def run(args) -> int:
    """Convert; SIGTERM stops like Ctrl-C, so the temporary folder is removed on the way out."""
    if threading.current_thread() is not threading.main_thread():
        return _convert(args)
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        return _convert(args)
    finally:
        signal.signal(signal.SIGTERM, previous)


def _convert(args) -> int:
    from gnnkit.stores import ondisk

    options = csbm_kwargs_from_args(args)
    is_csbm = args.dataset == "csbm" or args.dataset.startswith("csbm:")
    if options and not is_csbm:
        flags = ", ".join(o.flag for o in csbm_options() if o.name in options)
        raise GnnkitError(f"{flags}: csbm options, but the source is {args.dataset!r}")
    if args.labeled_nodes is not None and not is_csbm:
        raise GnnkitError(f"--labeled-nodes is a csbm option, but the source is {args.dataset!r}")
    if os.path.exists(args.out) and not args.overwrite:
        raise GnnkitError(f"{args.out} exists; pass --overwrite to replace it")
    start = time.perf_counter()
    if is_csbm:  # streamed; csbm has no self-loops or duplicate edges, so --normalize changes nothing
        from gnnkit.data.csbm import parse_csbm_spec

        path = ondisk.write_csbm(args.out, feature_dtype=args.feature_dtype, overwrite=args.overwrite,
                                 progress=not args.no_progress, labeled_nodes=args.labeled_nodes,
                                 **{**parse_csbm_spec(args.dataset), **options})
    elif ondisk.is_store(args.dataset):
        path = ondisk.copy_store(args.dataset, args.out, feature_dtype=args.feature_dtype, overwrite=args.overwrite)
    else:
        from gnnkit.data import load

        data = load(args.dataset, root=args.root, normalize=args.normalize, **options)
        path = ondisk.write_data(data, args.out, feature_dtype=args.feature_dtype, overwrite=args.overwrite)
    meta = ondisk.read_metadata(path)
    print(f"{path}: {meta['num_nodes']} nodes, {meta['num_edges']} edges, "
          f"{_disk_bytes(path) / 2**20:.1f} MiB, written in {time.perf_counter() - start:.1f} s")
    return 0
