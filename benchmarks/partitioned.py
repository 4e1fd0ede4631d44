"""Partition-parallel training (issue 22): P ranks each holding one part vs one process holding the graph.

Stages, in one run:

* ``build``: csbm at ogbn-products' shape (2,449,029 nodes, 25.26 directed edges per node, about
  62M edges, 100 float32 features, 47 classes, 8% / 2% / 90% split) written as a store
  (:func:`gnnkit.stores.ondisk.write_csbm`, streamed), once per ``--work`` folder;
* ``partition``: ``gnnkit.partitioned.write_partition`` of the store into P parts (METIS by
  default) for each P of ``--parts``; the layout figures (nodes, edges and 1-hop halo of every part,
  bytes of the whole structure vs one part's features) go into the results (``layout``);
* ``runs``: each in its own processes, 1 thread each: one process on the store (memory-mapped, the
  whole graph: ``gnnkit train --dataset STORE``'s path), then ``torchrun --nproc-per-node P`` over
  the partition (rank r opens part r only). The same GraphSAGE (hidden 64, 2 layers, dropout 0.2,
  Adam lr 0.01, seed 0), the same ``--epochs``, neighbor sampling with ``--fanouts`` and the same
  GLOBAL batch (``--batch-size`` seeds per step in all: ``batch-size / P`` per rank, so every
  configuration takes the same optimizer steps per epoch); evaluation once at the end (exact
  layer-wise inference: the whole adjacency in one process, the per-part halo exchange over parts).
  ``--modes neighbor,full`` adds full-batch training (``sampler="full"``, exact over the parts;
  ``--full-epochs`` of them). The store and the partitions are kept in ``--work`` and reused.

Per run and rank: peak resident memory (``VmHWM`` at the end and before the final evaluation, and
``VmRSS`` right after the imports), training
seconds and steps per second (evaluation excluded), bytes sent and received per step (the
exchange's counters; full batch: the halo exchange's), and validation / test accuracy.

    flock /tmp/gnnkit-heavy.lock python benchmarks/partitioned.py --work /tmp/gnnkit-part --parts 2,4
    python benchmarks/partitioned.py --work /tmp/gnnkit-part-small --num-nodes 50000 --parts 2   # trial

Results: ``--out`` (default ``benchmarks/out/partitioned.json``).
"""
from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

PRODUCTS = dict(num_nodes=2_449_029, avg_degree=25.26, num_features=100, num_classes=47, train_frac=0.08,
                val_frac=0.02, seed=0)


def vm(key: str) -> float:
    """``/proc/self/status``'s ``key`` (``VmHWM``, ``VmRSS``...) in MiB."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


# -- the worker (one rank, or the one process) -----------------------------------------------------------
def worker(args) -> None:
    import torch

    torch.set_num_threads(1)
    rss_import = vm("VmRSS")
    from gnnkit import Trainer
    from gnnkit.models import GraphSAGE

    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    if args.data_kind == "store":
        from gnnkit.stores.ondisk import open_store

        stores = open_store(args.data)
    else:
        from gnnkit.partitioned.sampler import open_dataset

        stores = open_dataset(args.data)
    features = stores[1]
    torch.manual_seed(0)
    model = GraphSAGE(features.shape("x")[1], 64, int(features.meta["num_classes"]), num_layers=2, dropout=0.2)
    clock = Clock(stores[0])
    sampler = make_sampler(args, world)
    trainer = Trainer(max_epochs=args.epochs, seed=0, progress=False, device="cpu", lr=0.01, sampler=sampler,
                      eval_every=args.epochs, callbacks=[clock], backend="gloo")
    t0 = time.perf_counter()
    result = trainer.fit(model, stores)
    steps = clock.steps
    out = {"rank": rank, "world": world, "mode": args.mode, "rss_after_import_mb": rss_import,
           "peak_rss_mb": vm("VmHWM"), "peak_rss_training_mb": clock.peak_training_mb,
           "train_seconds": clock.seconds, "steps": steps,
           "steps_per_s": steps / clock.seconds if clock.seconds else None,
           "bytes_sent_per_step": clock.sent / max(steps, 1), "bytes_received_per_step": clock.received / max(steps, 1),
           "rounds_per_step": clock.rounds / max(steps, 1), "val": result["val"], "test": result["test"],
           "total_seconds": time.perf_counter() - t0}
    Path(args.result).mkdir(parents=True, exist_ok=True)
    with open(os.path.join(args.result, f"rank{rank}.json"), "w") as f:
        json.dump(out, f)


def make_sampler(args, world: int):
    if args.mode == "full":
        return "full"
    from gnnkit.samplers.neighbor import NeighborSampler

    return NeighborSampler(fanouts=[int(v) for v in args.fanouts.split(",")], batch_size=max(args.batch_size // world, 1))


def _counters(graph):
    """``(bytes sent, bytes received, rounds)`` so far: the exchange's plus the halo exchange's (full batch)."""
    ex = getattr(graph, "exchange", None)
    if ex is None:
        return 0, 0, 0
    from gnnkit.partitioned.fullbatch import traffic

    halo = traffic(graph.part)
    return (ex.stats["bytes_sent"] + halo["bytes_sent"], ex.stats["bytes_received"] + halo["bytes_received"],
            ex.stats["rounds"] + halo["rounds"])


def _clock_class():
    from gnnkit.callbacks import Callback

    class _Clock(Callback):
        """Training time and traffic of the epochs, evaluation excluded."""

        def __init__(self, graph):
            self.graph, self.seconds, self.steps = graph, 0.0, 0
            self.sent = self.received = self.rounds = 0
            self.peak_training_mb = None

        def on_epoch_start(self, trainer, epoch):
            self._t, self._c = time.perf_counter(), _counters(self.graph)

        def on_batch_end(self, trainer, batch, outputs):
            self.steps += 1

        def on_epoch_end(self, trainer, epoch, logs):
            self.seconds += time.perf_counter() - self._t
            c = _counters(self.graph)
            self.sent += c[0] - self._c[0]
            self.received += c[1] - self._c[1]
            self.rounds += c[2] - self._c[2]
            self.peak_training_mb = vm("VmHWM")  # the peak before the evaluation of the last epoch

    return _Clock


def Clock(graph):
    return _clock_class()(graph)


# -- the driver -----------------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def graph_options(args) -> dict:
    """csbm's options: ogbn-products' shape, ``--num-nodes``, and ``--homophily``/``--feature-snr`` when given."""
    extra = {k: v for k, v in (("homophily", args.homophily), ("feature_snr", args.feature_snr)) if v is not None}
    return {**PRODUCTS, "num_nodes": args.num_nodes, **extra}


def graph_tag(args) -> str:
    return "".join(f"-{k}{v}" for k, v in (("h", args.homophily), ("s", args.feature_snr)) if v is not None)


def build(args, work: Path) -> Path:
    from gnnkit.stores.ondisk import is_store, write_csbm

    store = work / f"csbm-{args.num_nodes}{graph_tag(args)}"
    if not is_store(store):
        t = time.perf_counter()
        write_csbm(store, **graph_options(args))
        print(f"build: {store} in {time.perf_counter() - t:.0f}s", flush=True)
    return store


def partition(args, store: Path, work: Path, p: int) -> tuple:
    from gnnkit.partitioned import is_partition, open_part, read_info, write_partition

    out = work / f"parts-{args.method}-{p}-{args.num_nodes}{graph_tag(args)}"
    seconds = None
    if not is_partition(out):
        t = time.perf_counter()
        write_partition(str(store), p, out, method=args.method, seed=0, overwrite=True)
        seconds = time.perf_counter() - t
        print(f"partition: {out} in {seconds:.0f}s", flush=True)
    info = read_info(out)
    halo = [int(open_part(out, r, verify=False).halo_ids().numel()) for r in range(p)]
    x_bytes = 4 * PRODUCTS["num_features"]
    layout = {"parts": p, "method": args.method, "seconds": seconds, "edge_cut": info["edge_cut"],
              "nodes": [q["num_nodes"] for q in info["parts"]], "edges": [q["num_edges"] for q in info["parts"]],
              "halo_nodes": halo, "whole_structure_mb": (4 * info["num_edges"] + 8 * info["num_nodes"]) / 2**20,
              "part_features_mb": [q["num_nodes"] * x_bytes / 2**20 for q in info["parts"]],
              "halo_features_mb": [h * x_bytes / 2**20 for h in halo], "book_mb": 10 * info["num_nodes"] / 2**20}
    return out, layout


def launch(args, data: Path, kind: str, world: int, mode: str, result: Path) -> list:
    result = result.with_name(result.name + graph_tag(args))
    me = [os.path.abspath(__file__), "--worker", "--data", str(data), "--data-kind", kind, "--mode", mode,
          "--result", str(result), "--epochs", str(args.full_epochs or args.epochs if mode == "full" else args.epochs),
          "--fanouts", args.fanouts,
          "--batch-size", str(args.batch_size)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    if world == 1:
        cmd = [sys.executable, *me]
    else:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(world),
               "--master-addr", "127.0.0.1", "--master-port", str(free_port()), *me]
    t = time.perf_counter()
    for attempt in (1, 2):  # once more on a failure (a port taken between free_port and torchrun's bind)
        done = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if done.returncode == 0:
            break
        print(f"run: {kind} x{world} {mode} failed (attempt {attempt}):\n{done.stderr[-3000:]}", flush=True)
        if world > 1:
            cmd[cmd.index("--master-port") + 1] = str(free_port())
    done.check_returncode()
    print(f"run: {kind} x{world} {mode} in {time.perf_counter() - t:.0f}s", flush=True)
    return [json.loads((result / f"rank{r}.json").read_text()) for r in range(world)]


def summary(one: dict, ranks: list, p: int) -> dict:
    peak = max(r["peak_rss_mb"] for r in ranks)
    return {"parts": p, "max_rank_peak_rss_mb": peak, "peak_ratio": peak / one["peak_rss_mb"],
            "target_ratio": 1 / p + 0.15, "memory_ok": peak / one["peak_rss_mb"] <= 1 / p + 0.15,
            "test": ranks[0]["test"], "test_gap_points": 100 * (one["test"] - ranks[0]["test"]),
            "accuracy_ok": abs(one["test"] - ranks[0]["test"]) <= 0.005,
            "steps_per_s": min(r["steps_per_s"] for r in ranks),
            "bytes_sent_per_step": sum(r["bytes_sent_per_step"] for r in ranks) / p}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--work", default="/tmp/gnnkit-partitioned")
    ap.add_argument("--num-nodes", type=int, default=PRODUCTS["num_nodes"])
    ap.add_argument("--parts", default="2,4")
    ap.add_argument("--homophily", type=float, default=None, help="csbm homophily (default csbm's 0.8)")
    ap.add_argument("--feature-snr", type=float, default=None, help="csbm feature signal-to-noise (default 1.0)")
    ap.add_argument("--method", choices=("metis", "random"), default="metis")
    ap.add_argument("--modes", default="neighbor")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--full-epochs", type=int, default=None, help="epochs of the full-batch runs (default --epochs)")
    ap.add_argument("--fanouts", default="10,5")
    ap.add_argument("--batch-size", type=int, default=1024, help="seeds per step over all ranks")
    ap.add_argument("--out", default=str(Path(__file__).parent / "out" / "partitioned.json"))
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--data", help=argparse.SUPPRESS)
    ap.add_argument("--data-kind", choices=("store", "parts"), help=argparse.SUPPRESS)
    ap.add_argument("--mode", default="neighbor", help=argparse.SUPPRESS)
    ap.add_argument("--result", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        return worker(args)
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    store = build(args, work)
    parts = [int(p) for p in args.parts.split(",")]
    folders = {p: partition(args, store, work, p) for p in parts}
    record = {"settings": {k: v for k, v in vars(args).items() if k not in ("worker", "data", "data_kind", "mode",
                                                                          "result")},
              "graph": graph_options(args), "load_average": os.getloadavg(),
              "layout": [folders[p][1] for p in parts], "runs": {}, "summary": {}}
    for mode in args.modes.split(","):
        one = launch(args, store, "store", 1, mode, work / f"result-{mode}-1")[0]
        record["runs"][f"{mode}-1"] = [one]
        save(record, args.out)
        for p in parts:
            ranks = launch(args, folders[p][0], "parts", p, mode, work / f"result-{mode}-{p}")
            record["runs"][f"{mode}-{p}"] = ranks
            record["summary"][f"{mode}-{p}"] = summary(one, ranks, p)
            print(json.dumps(record["summary"][f"{mode}-{p}"]), flush=True)
            save(record, args.out)  # after every run: a stopped benchmark keeps what it measured
    save(record, args.out)
    print(f"-> {args.out}")


def save(record: dict, out: str) -> None:
    from gnnkit.fileio import atomic_write_json

    record["load_average_end"] = os.getloadavg()
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out, record)


if __name__ == "__main__":
    main()
