"""csbm at ogbn-products scale: seconds and peak memory of generating the graph.

    flock /tmp/gnnkit-heavy.lock python benchmarks/csbm_scale.py [--num-nodes N] [--avg-degree D] ...

Each configuration runs in a fresh Python process, so its peak resident memory
(``getrusage(RUSAGE_SELF).ru_maxrss``, which counts torch's and numpy's allocations, unlike
tracemalloc) belongs to that generation alone. It reports the generation time, the time of
``gnnkit.data.validate`` on the result, the graph's size, and checks the issue's budget
(60 s, 8 GiB) on wall time. Exits 1 when a run is over budget. It also prints the CPU time
(user + sys) and the load average around the run: on a shared machine the wall time grows with
the other processes, the CPU time much less.
"""
from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys

_CHILD = r"""
import json, os, resource, sys, time, torch
from gnnkit.data.csbm import csbm
from gnnkit.data.validate import validate
kw = json.loads(sys.argv[1])
load0 = os.getloadavg()[0]
t0, c0 = time.perf_counter(), time.process_time()
data = csbm(**kw)
t1, c1 = time.perf_counter(), time.process_time()
validate(data)
t2 = time.perf_counter()
print(json.dumps({"seconds": t1 - t0, "cpu_seconds": c1 - c0, "validate_seconds": t2 - t1,
                  "load": [load0, os.getloadavg()[0]], "nodes": data.num_nodes,
                  "edges": data.edge_index.size(1), "features": data.x.size(1),
                  "peak_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
                  "threads": torch.get_num_threads()}))
"""


def run_one(kwargs: dict) -> dict:
    out = subprocess.run([sys.executable, "-c", _CHILD, json.dumps(kwargs)], capture_output=True, text=True,
                         check=False)
    if out.returncode != 0:
        raise SystemExit(f"csbm run failed ({kwargs}):\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--num-nodes", type=int, default=2_449_029, help="ogbn-products has 2,449,029")
    p.add_argument("--avg-degree", type=float, default=25.26, help="ogbn-products: 61,859,140 / 2,449,029")
    p.add_argument("--num-features", type=int, default=100)
    p.add_argument("--num-classes", type=int, default=47)
    p.add_argument("--degree-exponent", type=lambda s: None if s.lower() == "none" else float(s), nargs="+",
                   default=[None, 2.5],
                   help="one run per value; 'none' = Poisson degrees (default: none and 2.5)")
    p.add_argument("--max-seconds", type=float, default=60.0)
    p.add_argument("--max-gib", type=float, default=8.0)
    args = p.parse_args()
    print(f"machine: {platform.machine()}, {platform.python_implementation()} {platform.python_version()}")
    over = False
    for exponent in args.degree_exponent:
        kw = dict(num_nodes=args.num_nodes, avg_degree=args.avg_degree, num_features=args.num_features,
                  num_classes=args.num_classes, degree_exponent=exponent, seed=0)
        r = run_one(kw)
        ok = r["seconds"] <= args.max_seconds and r["peak_gib"] <= args.max_gib
        over |= not ok
        print(f"degree_exponent={exponent}: {r['nodes']:,} nodes, {r['edges']:,} directed edges, "
              f"{r['features']} features | generate {r['seconds']:.1f} s wall ({r['cpu_seconds']:.1f} s CPU), "
              f"validate {r['validate_seconds']:.1f} s, "
              f"peak RSS {r['peak_gib']:.2f} GiB, {r['threads']} threads | "
              f"load average {r['load'][0]:.1f} -> {r['load'][1]:.1f} | "
              f"{'within' if ok else 'OVER'} budget ({args.max_seconds:.0f} s, {args.max_gib:.0f} GiB)")
    return 1 if over else 0


if __name__ == "__main__":
    sys.exit(main())
