"""``gnnkit datasets [--root DIR]``: the dataset names gnnkit knows, and which are present."""
from __future__ import annotations

from pathlib import Path

NAME = "datasets"
HELP = "list the datasets gnnkit knows and whether each is present under the data root"
ORDER = 10


def add_arguments(parser) -> None:
    parser.add_argument("--root", type=Path, default=None,
                        help="data root (default: $GNNKIT_DATA, else the checkout's data/, else ~/.gnnkit/data)")


def run(args) -> int:
    from gnnkit.data import default_root, is_present, known_datasets

    root = default_root() if args.root is None else args.root
    names = known_datasets()
    width = max(len(n) for n in names)
    print(f"data root: {root}")
    for name in names:
        state = "generated" if name == "csbm" else ("present" if is_present(name, root) else "absent")
        print(f"  {name:<{width}}  {state}")
    print("also: any .npz graph path (gnn-benchmark or dotted CSR layout)")
    return 0
