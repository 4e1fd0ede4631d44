"""Cluster-GCN at ogbn-products scale: partition overhead, cache hits, epoch memory.

One run, each measurement in its own process (``--stage``), on one csbm graph generated once:

1. ``bare``: ``pymetis.part_graph`` on the METIS CSR (built beforehand, not timed);
2. ``gnnkit``: :func:`gnnkit.partition.partition_graph` from an empty cache (CSR build, hashing,
   METIS, atomic write): ``partition_ratio = gnnkit / bare``. The METIS call inside it is timed
   too, so gnnkit's own work (total minus that call) is printed apart from METIS's run-to-run
   spread, which on a shared machine can exceed it;
3. ``cached``: the same call again, a verified cache hit: ``cache_ratio = hit / gnnkit``;
4. ``mem-cluster`` / ``mem-full``: one training epoch of the same 3-layer GCN with the cluster
   sampler (partition from the cache) or full-batch. Memory is the peak resident set during
   ``Trainer.fit``'s setup and first epoch (evaluation excluded) above the resident set once the
   graph is loaded and the model built (the graph itself is the same in both):
   ``mem_ratio = cluster / full``. Total peaks are printed too.

Every stage runs with one torch thread (the machine's cores are shared; METIS is single-threaded),
and the two partition ratios use the process's CPU time (``time.process_time``), which the other
jobs on a shared machine do not inflate; wall-clock ratios are printed beside them.

Defaults are the full scale: 2.4M nodes, ~62M directed edges (avg degree 26; 31M undirected
edges), 100 features, 47 classes, 1500 parts, 20 clusters per batch, hidden 128.

    flock /tmp/gnnkit-heavy.lock python benchmarks/cluster_scale.py [--num-nodes N --num-parts P ...]

Last line: ``partition_ratio=X cache_ratio=Y mem_ratio=Z``.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time


def status_kb(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def load_graph(workdir: str):
    import torch
    from torch_geometric.data import Data

    return Data(**torch.load(os.path.join(workdir, "graph.pt"), weights_only=True))


def stage_graph(a) -> dict:
    import torch

    from gnnkit.data.csbm import csbm

    t = time.perf_counter()
    d = csbm(num_nodes=a.num_nodes, avg_degree=a.avg_degree, num_features=100, num_classes=47, seed=0)
    keys = ("x", "y", "edge_index", "train_mask", "val_mask", "test_mask")
    torch.save({k: d[k] for k in keys}, os.path.join(a.workdir, "graph.pt"))
    return {"nodes": d.num_nodes, "edges": d.edge_index.shape[1], "seconds": time.perf_counter() - t}


def stage_bare(a) -> dict:
    import pymetis

    from gnnkit.partition import DEFAULT_UFACTOR, metis_graph

    d = load_graph(a.workdir)
    xadj, adjncy = metis_graph(d.edge_index, d.num_nodes)
    del d
    xadj, adjncy = xadj.numpy(), adjncy.numpy()
    opts = pymetis.Options()
    opts.seed, opts.ufactor = 0, DEFAULT_UFACTOR
    t, c = time.perf_counter(), time.process_time()
    cut, _ = pymetis.part_graph(a.num_parts, pymetis.CSRAdjacency(xadj, adjncy), options=opts)
    return {"seconds": time.perf_counter() - t, "cpu_seconds": time.process_time() - c, "edge_cut": int(cut)}


def stage_partition(a) -> dict:
    import pymetis

    from gnnkit.partition import partition_graph

    inner = {"metis_seconds": 0.0, "metis_cpu_seconds": 0.0}
    part_graph = pymetis.part_graph

    def timed_part_graph(*args, **kwargs):  # the METIS call inside gnnkit's, timed like the bare one
        t, c = time.perf_counter(), time.process_time()
        try:
            return part_graph(*args, **kwargs)
        finally:
            inner["metis_seconds"] += time.perf_counter() - t
            inner["metis_cpu_seconds"] += time.process_time() - c

    pymetis.part_graph = timed_part_graph
    d = load_graph(a.workdir)
    t, c = time.perf_counter(), time.process_time()
    p = partition_graph(d.edge_index, d.num_nodes, a.num_parts, cache_dir=os.path.join(a.workdir, "partitions"))
    return {"seconds": time.perf_counter() - t, "cpu_seconds": time.process_time() - c, "cached": p.cached,
            "edge_cut": p.edge_cut, "imbalance": p.imbalance, **inner}


class _EpochDone(Exception):
    pass


def stage_memory(a, sampler_name: str) -> dict:
    import torch

    from gnnkit.callbacks import Callback
    from gnnkit.models import build_model
    from gnnkit.samplers.cluster import ClusterSampler
    from gnnkit.trainer import Trainer

    d = load_graph(a.workdir)
    d.num_classes = 47
    torch.manual_seed(0)  # the same initial weights in both memory stages and across runs
    model = build_model("gcn", d.num_features, 47, hidden=a.hidden, num_layers=3, dropout=0.2)
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset the peak resident set to the current one
    base = status_kb("VmRSS")
    seen = {}

    class Peak(Callback):
        def on_epoch_end(self, trainer, epoch, logs):
            seen.update(peak=status_kb("VmHWM"), steps=logs["steps"], loss=logs.get("train_loss"))
            raise _EpochDone

    sampler = (ClusterSampler(num_parts=a.num_parts, clusters_per_batch=a.clusters_per_batch,
                              cache_dir=os.path.join(a.workdir, "partitions")) if sampler_name == "cluster" else "full")
    t = time.perf_counter()
    try:
        Trainer(sampler=sampler, max_epochs=1, progress=False, device="cpu", callbacks=[Peak()]).fit(model, d)
    except _EpochDone:
        pass
    return {"seconds": time.perf_counter() - t, "base_mb": base / 1024, "peak_mb": seen["peak"] / 1024,
            "epoch_mb": (seen["peak"] - base) / 1024, "steps": seen["steps"], "loss": seen["loss"],
            "threads": torch.get_num_threads()}


STAGES = {"graph": stage_graph, "bare": stage_bare, "gnnkit": stage_partition, "cached": stage_partition,
          "mem-cluster": lambda a: stage_memory(a, "cluster"), "mem-full": lambda a: stage_memory(a, "full")}


def run_stage(name: str, a) -> dict:
    cmd = [sys.executable, os.path.abspath(__file__), "--stage", name, "--workdir", a.workdir,
           "--num-nodes", str(a.num_nodes), "--avg-degree", str(a.avg_degree), "--num-parts", str(a.num_parts),
           "--clusters-per-batch", str(a.clusters_per_batch), "--hidden", str(a.hidden)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True)
    res = json.loads(out.stdout.strip().splitlines()[-1])
    print(f"{name:12s} {json.dumps(res)}", flush=True)
    return res


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--num-nodes", type=int, default=2_400_000)
    p.add_argument("--avg-degree", type=float, default=26.0, help="directed edges per node (default 26: ~62M edges)")
    p.add_argument("--num-parts", type=int, default=1500)
    p.add_argument("--clusters-per-batch", type=int, default=20)
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--workdir", default=None, help="scratch folder (default: a temporary one)")
    p.add_argument("--stage", choices=sorted(STAGES), default=None, help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.stage:
        import torch

        torch.set_num_threads(1)  # the 2 cores are shared; METIS itself is single-threaded
        print(json.dumps(STAGES[a.stage](a)))
        return
    with tempfile.TemporaryDirectory(prefix="cluster_scale-") as tmp:
        a.workdir = a.workdir or tmp
        print(f"# {time.strftime('%Y-%m-%d %H:%M')}  {os.cpu_count()} CPUs  nodes={a.num_nodes} "
              f"avg_degree={a.avg_degree} parts={a.num_parts} q={a.clusters_per_batch} hidden={a.hidden}", flush=True)
        r = {name: run_stage(name, a) for name in ("graph", "bare", "gnnkit", "cached", "mem-cluster", "mem-full")}
    if r["cached"]["cached"] is not True or r["gnnkit"]["cached"] is not False:
        raise SystemExit("the cache did not behave: first call must compute, second must hit")
    for k in ("seconds", "cpu_seconds"):
        print(f"{k}: gnnkit/bare {r['gnnkit'][k] / r['bare'][k]:.3f}, hit/gnnkit {r['cached'][k] / r['gnnkit'][k]:.4f}")
    g, b = r["gnnkit"], r["bare"]
    over = g["cpu_seconds"] - g["metis_cpu_seconds"]
    print(f"gnnkit's work beyond its METIS call: {over:.2f} s CPU ({over / b['cpu_seconds']:.2%} of the bare call); "
          f"METIS CPU in the two stages: bare {b['cpu_seconds']:.1f} s, inside gnnkit {g['metis_cpu_seconds']:.1f} s "
          f"(same call, same CSR: their difference is run-to-run spread)")
    pr = r["gnnkit"]["cpu_seconds"] / r["bare"]["cpu_seconds"]
    cr = r["cached"]["cpu_seconds"] / r["gnnkit"]["cpu_seconds"]
    mr = r["mem-cluster"]["epoch_mb"] / r["mem-full"]["epoch_mb"]
    print(f"total peak RSS: cluster {r['mem-cluster']['peak_mb']:.0f} MB, full {r['mem-full']['peak_mb']:.0f} MB "
          f"(ratio {r['mem-cluster']['peak_mb'] / r['mem-full']['peak_mb']:.3f}); graph alone "
          f"{r['mem-full']['base_mb']:.0f} MB")
    print(f"partition_ratio={pr:.3f} cache_ratio={cr:.4f} mem_ratio={mr:.3f}")


if __name__ == "__main__":
    main()
