"""``gnnkit bench``: datasets × methods × seeds, each run a ``gnnkit train`` process; tables and plots.

    gnnkit bench --datasets Cora,csbm:num_nodes=100000 --methods full,cluster,neighbor \\
                 --seeds 3 --out runs/bench [--config my.toml] [--root DATA] [--epochs N] [--jobs 1]

Writes ``OUT/results.csv``, ``OUT/summary.md``, ``OUT/val_vs_time.png`` and ``OUT/memory.png``
(see :mod:`gnnkit.bench.report`; the plots are skipped with a note without matplotlib). Rerunning
the same command resumes: finished runs are kept, the others run (see :mod:`gnnkit.bench.grid`). A dataset absent offline is listed as skipped. Exit status:
0 when every run finished, 1 when some run failed (each is recorded with its error), 130 when
interrupted (finished runs are kept), 2 on bad input.
"""
from __future__ import annotations

import os
import platform
import shlex
import sys
import time
from pathlib import Path

NAME = "bench"
HELP = "run datasets × methods × seeds (one train process per run) and report tables and plots"
ORDER = 60


def add_arguments(p) -> None:
    p.add_argument("--datasets", required=True,
                   help="comma-separated: Cora, ogbn-arxiv, csbm:num_nodes=100000,avg_degree=5, a .npz path ...")
    p.add_argument("--methods", default=None,
                   help="comma-separated methods of the config (default: all of them; shipped: full, cluster, "
                        "neighbor, mvs, forward, escape)")
    p.add_argument("--seeds", type=int, default=3, help="runs with seeds 0..S-1 per cell (default 3)")
    p.add_argument("--config", default=None, help="TOML file merged over the shipped gnnkit/configs/bench.toml")
    p.add_argument("--root", default=None, help="dataset root (default: $GNNKIT_DATA or the project's data/)")
    p.add_argument("--out", default=os.path.join("runs", "bench"), help="output folder (default runs/bench)")
    p.add_argument("--epochs", type=int, default=None, help="epochs of every run (overrides the config)")
    p.add_argument("--jobs", type=int, default=1, help="runs at a time (default 1)")
    p.add_argument("--retry-failed", action="store_true", help="run again the runs that failed before")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args) -> int:
    from .. import bench
    from ..bench import report
    from ..data import default_root
    from ..errors import GnnkitError
    from .outputs import check_path

    if args.jobs < 1:
        raise GnnkitError(f"--jobs must be at least 1, got {args.jobs}")
    check_path("--out", args.out)
    config = bench.load_config(args.config)
    methods = [m.strip() for m in args.methods.split(",") if m.strip()] if args.methods else list(config["methods"])
    root = (Path(args.root).expanduser() if args.root else default_root()).resolve()
    out = Path(args.out).expanduser().resolve()
    grid = bench.build_grid(bench.split_specs(args.datasets), methods, args.seeds, config, root, out, args.epochs)
    bench.check_state(grid, out)
    if report.matplotlib_pyplot() is None:
        print(f"gnnkit bench: {report.NO_PLOTS}", file=sys.stderr)
    for ds in grid.datasets:
        if ds.skipped:
            print(f"gnnkit bench: skipping {ds.label}: {ds.skipped}", file=sys.stderr)
    records, interrupted = bench.run_grid(grid.runs, out, jobs=args.jobs, progress=not args.no_progress,
                                    retry_failed=args.retry_failed)
    command = ["--datasets", args.datasets, "--methods", ",".join(methods), "--seeds", str(args.seeds)]
    for flag, value in (("--config", args.config), ("--root", args.root), ("--epochs", args.epochs)):
        command += [flag, str(value)] if value is not None else []
    header = (f"`gnnkit bench {' '.join(shlex.quote(a) for a in command)}`  \n"
              f"{time.strftime('%Y-%m-%d %H:%M')}, {platform.machine()} {platform.system()}, "
              f"{os.cpu_count()} cores, Python {platform.python_version()}")
    text = bench.write_outputs(out, grid, records, header)
    print(text)
    plots = [out / p for p in report.PLOTS] if report.matplotlib_pyplot() is not None else []
    print("-> " + ", ".join(str(p) for p in [out / "results.csv", out / "summary.md", *plots]))
    if interrupted:
        done = sum(1 for r in grid.runs if r.key in records)
        print(f"gnnkit bench: interrupted; {done}/{len(grid.runs)} runs kept; rerun the same command to resume",
              file=sys.stderr)
        return 130
    failed = [r for r in records.values() if r.get("status") == "failed"]
    if failed:
        print(f"gnnkit bench: {len(failed)} run(s) failed (see summary.md; --retry-failed runs them again)",
              file=sys.stderr)
        return 1
    return 0
