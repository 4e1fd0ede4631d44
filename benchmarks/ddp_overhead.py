"""DDP overhead: Cluster-GCN epochs on 1 process × 2 threads against 2 processes × 1 thread.

Both configurations use the same two cores, so with no overhead a 2-process epoch (each rank
trains half of the epoch's batches, gradients all-reduced by DistributedDataParallel over gloo)
takes as long as a 1-process epoch. Prints both epoch times (median over the timed epochs, the
first epoch excluded as warm-up) and, last, ``ddp_efficiency=X`` = (1-process epoch time) /
(2-process epoch time), the throughput of 2 processes over 1.

    python benchmarks/ddp_overhead.py                      # csbm 1M nodes (the issue's setting)
    python benchmarks/ddp_overhead.py --num-nodes 50000    # a quick check
    python benchmarks/ddp_overhead.py --device cuda        # every GPU present, one process each

The partition is computed once (cached under --workdir) before either run is timed.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time


def parse():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--num-nodes", type=int, default=1_000_000)
    p.add_argument("--avg-degree", type=float, default=10.0)
    p.add_argument("--num-features", type=int, default=100)
    p.add_argument("--num-parts", type=int, default=200)
    p.add_argument("--clusters-per-batch", type=int, default=10)
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--layers", type=int, default=3)
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--device", default="cpu")
    p.add_argument("--nproc", type=int, default=None, help="processes of the multi-process run (default 2, or #GPUs)")
    p.add_argument("--workdir", default=None)
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--out", default=None, help=argparse.SUPPRESS)
    return p.parse_args()


def worker(args) -> None:
    """One training run (under torchrun when WORLD_SIZE > 1); rank 0 writes its epoch times."""
    import torch

    from gnnkit import Trainer
    from gnnkit import distributed as dist
    from gnnkit.callbacks import Callback
    from gnnkit.data.csbm import csbm
    from gnnkit.models import GCN
    from gnnkit.samplers.cluster import ClusterSampler

    class EpochTimer(Callback):
        def __init__(self):
            self.times, self.steps = [], []

        def on_epoch_start(self, trainer, epoch):
            dist.barrier()
            self.t0 = time.perf_counter()

        def on_epoch_end(self, trainer, epoch, logs):
            dist.barrier()
            self.times.append(time.perf_counter() - self.t0)
            self.steps.append(logs["steps"])

    data = csbm(num_nodes=args.num_nodes, avg_degree=args.avg_degree, num_features=args.num_features, seed=0)
    timer = EpochTimer()
    sampler = ClusterSampler(num_parts=args.num_parts, clusters_per_batch=args.clusters_per_batch,
                             cache_dir=os.path.join(args.workdir, "partitions"))
    torch.manual_seed(0)
    model = GCN(data.num_features, args.hidden, data.num_classes, num_layers=args.layers, dropout=0.2)
    trainer = Trainer(sampler=sampler, max_epochs=args.epochs, eval_every=10**9, device=args.device,
                      progress=False, callbacks=[timer], inference_batch_size=100_000, lr=0.01)
    trainer.fit(model, data)
    if dist.is_main():
        with open(args.out, "w") as f:
            json.dump({"times": timer.times, "steps": timer.steps, "world": max(1, int(os.environ.get("WORLD_SIZE", 1)))}, f)


def run(args, nproc: int, threads: int) -> dict:
    out = os.path.join(args.workdir, f"times-{nproc}.json")
    me = [os.path.abspath(__file__), "--worker", "--out", out, "--workdir", args.workdir,
          "--num-nodes", str(args.num_nodes), "--avg-degree", str(args.avg_degree),
          "--num-features", str(args.num_features), "--num-parts", str(args.num_parts),
          "--clusters-per-batch", str(args.clusters_per_batch), "--hidden", str(args.hidden),
          "--layers", str(args.layers), "--epochs", str(args.epochs), "--device", args.device]
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    if nproc == 1:
        cmd = [sys.executable, *me]
    else:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(nproc), *me]
    subprocess.run(cmd, env=env, check=True)
    with open(out) as f:
        return json.load(f)


def main() -> None:
    args = parse()
    if args.worker:
        worker(args)
        return
    args.workdir = args.workdir or tempfile.mkdtemp(prefix="ddp_overhead-")
    if args.device == "cuda":
        import torch

        nproc = args.nproc or max(1, torch.cuda.device_count())
        threads = 1
    else:
        nproc, threads = args.nproc or 2, 1
    print(f"csbm {args.num_nodes} nodes, GCN {args.layers} layers x {args.hidden}, Cluster-GCN "
          f"{args.num_parts} parts / {args.clusters_per_batch} per batch, {args.epochs} epochs, device {args.device}")
    one = run(args, 1, nproc * threads if args.device == "cpu" else 1)  # also partitions and caches
    many = run(args, nproc, threads)
    t1 = statistics.median(one["times"][1:] or one["times"])
    tn = statistics.median(many["times"][1:] or many["times"])
    print(f"1 process x {nproc * threads} threads: epoch {t1:.2f}s ({one['steps'][0]} steps)")
    print(f"{nproc} processes x {threads} thread(s): epoch {tn:.2f}s ({many['steps'][0]} steps per rank)")
    print(f"ddp_efficiency={t1 / tn:.3f}")


if __name__ == "__main__":
    main()
