"""Graphs bigger than memory (issue 21): build a csbm store, train GraphSAGE from it, measure.

Stages (each in its own process, so each peak memory is its own):

* ``build``: ``gnnkit.stores.ondisk.write_csbm`` (streamed): build seconds (wall and process CPU),
  disk bytes, peak ``VmRSS`` / ``RssAnon`` (sampled every 0.1 s from ``/proc/self/status``).
* ``train``: a 3-layer GraphSAGE (hidden 256), fanouts 15,10,5, batch 1024, Adam, from the store
  (memory-mapped) or from memory (the same graph read into RAM): after ``--warmup`` steps,
  ``--steps`` steps timed: steps/s, seeds/s, sampled edges/s (block non-zeros), bytes read from disk
  per step (``/proc/self/io`` ``read_bytes``) and major page faults per step; peak ``RssAnon`` and
  ``RssFile``; ``--cache-gib G`` keeps G GiB of the highest in-degree nodes' features in memory;
  with ``--full-epoch`` one whole epoch more, and the test nodes evaluated once
  on their sampled neighborhoods (same fanouts, :class:`samplers.neighbor.SampledPredictions`, the
  Trainer's evaluation of graphs too big for whole-graph inference). A store bigger than half the
  memory is read by ``--read-threads`` concurrent readers (default: the store's own choice).

Every record carries the load average (1 min) at its start and end: the machine may be shared.
The page cache is warmed before training only for a store that fits in half the memory.

Presets: ``papers`` (ogbn-papers100M's shape: 111,059,956 nodes, 14.55 directed edges per node,
128 float16 features, 172 classes, 1,546,782 labeled nodes split 1,207,179 / 125,265 / 214,338)
and ``products`` (ogbn-products' shape: 2,449,029 nodes, 25.26 edges per node, 100 float32
features, 47 classes, 8% / 2% / 90%). ``--num-nodes`` scales a preset down (labeled nodes in
proportion) for a trial run. ``--side-by-side`` trains from memory and from the store in one run
and prints the store's step rate as a ratio of memory's (page cache warmed first).

    python benchmarks/out_of_core.py --preset papers --work /data/ooc --full-epoch
    python benchmarks/out_of_core.py --preset products --side-by-side --work /data/ooc
    python benchmarks/out_of_core.py --preset papers --num-nodes 200000 --work /tmp/ooc   # trial

Results: one JSON per run in ``--out`` (default benchmarks/out/).
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import threading
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PRESETS = {
    "papers": dict(num_nodes=111_059_956, avg_degree=14.55, num_features=128, num_classes=172,
                   feature_dtype="float16", labeled=1_546_782, train=1_207_179, val=125_265),
    "products": dict(num_nodes=2_449_029, avg_degree=25.26, num_features=100, num_classes=47,
                     feature_dtype="float32", labeled=None, train=0.08, val=0.02),
}


class Meter:
    """Peaks of ``VmRSS``/``RssAnon``/``RssFile`` (kB, sampled every 0.1 s) and deltas of disk reads."""

    KEYS = ("VmRSS", "RssAnon", "RssFile")

    def __init__(self):
        self.peak = {k: 0 for k in self.KEYS}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @staticmethod
    def status() -> dict:
        out = {}
        with open("/proc/self/status") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key in Meter.KEYS:
                    out[key] = int(value.split()[0])
        return out

    @staticmethod
    def io() -> dict:
        """``read_bytes`` (from storage) and major faults so far (-1 where /proc/self/io is unreadable)."""
        read = -1
        try:
            with open("/proc/self/io") as f:
                read = int(next(line for line in f if line.startswith("read_bytes")).split()[1])
        except (OSError, StopIteration):
            pass
        return {"read_bytes": read, "majflt": resource.getrusage(resource.RUSAGE_SELF).ru_majflt}

    def _run(self):
        while not self._stop.is_set():
            for k, v in self.status().items():
                self.peak[k] = max(self.peak[k], v)
            self._stop.wait(0.1)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        for k, v in self.status().items():
            self.peak[k] = max(self.peak[k], v)

    def peaks_gib(self) -> dict:
        return {f"peak_{k}_gib": round(v / 2**20, 3) for k, v in self.peak.items()}


def preset_options(args) -> dict:
    p = dict(PRESETS[args.preset])
    n = args.num_nodes or p["num_nodes"]
    scale = n / p["num_nodes"]
    opts = dict(num_nodes=n, avg_degree=p["avg_degree"], num_features=p["num_features"],
                num_classes=p["num_classes"], seed=args.graph_seed, split="random")
    labeled = None if p["labeled"] is None else max(int(round(p["labeled"] * scale)), 10)
    if labeled is None:
        opts.update(train_frac=p["train"], val_frac=p["val"])
    else:
        opts.update(train_frac=p["train"] / p["labeled"], val_frac=p["val"] / p["labeled"])
    return dict(options=opts, labeled_nodes=labeled, feature_dtype=args.feature_dtype or p["feature_dtype"])


def cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def stage_build(args) -> dict:
    from gnnkit.stores.ondisk import write_csbm

    p = preset_options(args)
    start, load0 = time.perf_counter(), os.getloadavg()[0]
    with Meter() as meter:
        path = write_csbm(args.store, feature_dtype=p["feature_dtype"], overwrite=True, progress=args.progress,
                          labeled_nodes=p["labeled_nodes"], **p["options"])
    disk = sum(e.stat().st_size for e in os.scandir(path))
    meta = json.loads((Path(path) / "gnnkit-store.json").read_text())
    return {"stage": "build", "seconds": round(time.perf_counter() - start, 1), "cpu_seconds": round(cpu_seconds(), 1),
            "load_start_end": [load0, os.getloadavg()[0]], "disk_bytes": disk,
            "num_nodes": meta["num_nodes"], "num_edges": meta["num_edges"], **p, **meter.peaks_gib()}


def _stores(args, source: str):
    from gnnkit.stores import from_data
    from gnnkit.stores.ondisk import open_store, to_data

    if source == "store":
        graph, features = open_store(args.store, read_threads=args.read_threads)
        if args.cache_gib:  # the rows of the highest in-degree nodes kept in memory
            features.cache_rows("x", int(args.cache_gib * 2**30), graph.in_degree())
        return graph, features
    data = to_data(args.store)
    for key in list(data.keys()):
        if isinstance(data[key], torch.Tensor):
            data[key] = data[key].float().clone() if key == "x" else data[key].clone()  # into RAM
    return from_data(data)


def _setup(args, source: str):
    from gnnkit.context import RunContext
    from gnnkit.samplers.neighbor import NeighborSampler
    from models import build_model

    graph, features = _stores(args, source)
    torch.manual_seed(0)
    model = build_model("sage", features.shape("x")[1], int(features.meta["num_classes"]), hidden=256,
                        num_layers=3)
    ctx = RunContext(device=torch.device("cpu"), seed=0, graph=graph, features=features,
                     adj_norm=getattr(model, "adj_norm", "mean"))
    sampler = NeighborSampler(fanouts=[15, 10, 5], batch_size=1024)
    sampler.setup(ctx, model)
    return model, sampler, features


def _epochs(sampler, first: int = 0):
    """Batches epoch after epoch (``set_epoch`` before each), for step counts beyond one epoch."""
    epoch = first
    while True:
        sampler.set_epoch(epoch)
        yield from sampler
        epoch += 1


def _train_steps(model, batches, opt, count: int, label: str = "") -> dict:
    """``count`` training steps (or until the epoch ends); seeds and sampled edges counted. Every
    10 steps a line on stderr: steps, seconds, bytes read and ``RssAnon`` so far (a run stopped
    early still says how far it went and how fast)."""
    steps = seeds = edges = 0
    t0, io0 = time.perf_counter(), Meter.io()
    for batch in batches:
        opt.zero_grad()
        out = model(batch.x, batch.adj)
        loss = torch.nn.functional.cross_entropy(out[batch.loss_index], batch.y)
        loss.backward()
        opt.step()
        steps, seeds = steps + 1, seeds + batch.batch_size
        edges += sum(a.nnz for a in batch.adj)
        if steps % 10 == 0:
            print(f"{label} step {steps}: {time.perf_counter() - t0:.1f} s, seeds {seeds}, edges {edges}, read "
                  f"{Meter.io()['read_bytes'] - io0['read_bytes']} B, RssAnon {Meter.status()['RssAnon']} kB, "
                  f"load {os.getloadavg()[0]:.2f}", file=sys.stderr, flush=True)
        if steps == count:
            break
    return {"steps": steps, "seeds": seeds, "edges": edges}


@torch.no_grad()
def _evaluate(model, sampler, features) -> float:
    """Test accuracy on the test nodes' sampled neighborhoods (the training fanouts), as the
    Trainer evaluates a graph too big for whole-graph inference."""
    from gnnkit.samplers.neighbor import SampledPredictions

    model.eval()
    test = features.index("test_mask")
    logits = SampledPredictions(sampler.ctx, model, sampler.fanouts, batch_size=1024)[test]
    model.train()
    return float((logits.argmax(1) == features.get("y", test)).float().mean()) if test.numel() else float("nan")


def stage_train(args, source: str) -> dict:
    load0 = os.getloadavg()[0]
    with Meter() as meter:
        t0 = time.perf_counter()
        model, sampler, features = _setup(args, source)
        setup_s = time.perf_counter() - t0
        opt = torch.optim.Adam(model.parameters(), lr=0.003)
        batches = _epochs(sampler)
        _train_steps(model, batches, opt, args.warmup, f"{source} warm-up")
        io0, t1, c1 = Meter.io(), time.perf_counter(), cpu_seconds()
        timed = _train_steps(model, batches, opt, args.steps, f"{source} timed")
        secs, io1, cpu = time.perf_counter() - t1, Meter.io(), cpu_seconds() - c1
        out = {"stage": "train", "source": source, "setup_seconds": round(setup_s, 1), **timed,
               "seconds": round(secs, 2), "steps_per_s": round(timed["steps"] / secs, 3),
               "cpu_seconds_per_step": round(cpu / max(timed["steps"], 1), 4),
               "seeds_per_s": round(timed["seeds"] / secs, 1), "edges_per_s": round(timed["edges"] / secs),
               "read_bytes_per_step": None if io0["read_bytes"] < 0 else
               round((io1["read_bytes"] - io0["read_bytes"]) / max(timed["steps"], 1)),
               "majflt_per_step": round((io1["majflt"] - io0["majflt"]) / max(timed["steps"], 1), 1),
               "steps_per_epoch": len(sampler), "read_threads": getattr(getattr(features, "files", None),
                                                                         "read_threads", None)}
        if args.full_epoch:  # one whole epoch more, alone
            sampler.set_epoch(10**6)
            t2 = time.perf_counter()
            epoch = _train_steps(model, iter(sampler), opt, -1, f"{source} epoch")
            t3 = time.perf_counter()
            out["epoch_steps"], out["epoch_seconds"] = epoch["steps"], round(t3 - t2, 1)
            out["test_accuracy"] = round(_evaluate(model, sampler, features), 4)
            out["test_eval_seconds"] = round(time.perf_counter() - t3, 1)
    return {**out, **meter.peaks_gib(), "cpu_seconds": round(cpu_seconds(), 1), "load_start_end": [load0, os.getloadavg()[0]]}


def warm_page_cache(store: str) -> None:
    for entry in os.scandir(store):
        with open(entry.path, "rb") as f:
            while f.read(1 << 24):
                pass


def run_stage(args, stage: str) -> dict:
    """Run ``stage`` in a fresh process (its own peak memory); returns its JSON record."""
    cmd = [sys.executable, __file__, "--stage", stage, *args.passthrough]
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, env=env, text=True)
    if proc.returncode:
        raise SystemExit(f"stage {stage} failed (exit {proc.returncode})")
    record = json.loads(proc.stdout.strip().splitlines()[-1])
    print(json.dumps(record), flush=True)
    return record


def parse(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--preset", choices=sorted(PRESETS), default="papers")
    p.add_argument("--num-nodes", type=int, default=None, help="scale the preset down (trial runs)")
    p.add_argument("--feature-dtype", default=None, help="override the preset's feature dtype")
    p.add_argument("--graph-seed", type=int, default=0)
    p.add_argument("--work", type=Path, default=Path("/tmp/gnnkit-ooc"), help="where the store is built")
    p.add_argument("--reuse", action="store_true", help="keep an existing store instead of rebuilding")
    p.add_argument("--warmup", type=int, default=20)
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--full-epoch", action="store_true", help="train the whole epoch and evaluate the test nodes")
    p.add_argument("--side-by-side", action="store_true", help="train from memory and from the store")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--cache-gib", type=float, default=0.0,
                   help="store: keep this many GiB of the most connected nodes' features in memory")
    p.add_argument("--read-threads", type=int, default=None,
                   help="store: concurrent readers of large gathers (default: 32 for a store bigger than half the memory)")
    p.add_argument("--progress", action="store_true")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "out")
    p.add_argument("--stage", choices=("build", "train-store", "train-memory"), default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    n = args.num_nodes or PRESETS[args.preset]["num_nodes"]
    args.store = str(args.work / f"csbm-{args.preset}-{n}")
    argv = list(sys.argv[1:] if argv is None else argv)
    args.passthrough = [a for a in argv if a not in ("--side-by-side",)]
    return args


def main(argv=None) -> None:
    args = parse(argv)
    if args.stage == "build":
        print(json.dumps(stage_build(args)))
        return
    if args.stage:
        print(json.dumps(stage_train(args, args.stage.split("-")[1])))
        return
    records = {"argv": sys.argv[1:], "torch": torch.__version__, "threads": args.threads}
    if not (args.reuse and Path(args.store, "gnnkit-store.json").is_file()):
        records["build"] = run_stage(args, "build")
        (args.work / f"{Path(args.store).name}.build.json").write_text(json.dumps(records["build"]) + "\n")
    from gnnkit.data.limits import memory_limit

    store_bytes = sum(e.stat().st_size for e in os.scandir(args.store))
    if args.side_by_side or store_bytes < memory_limit() // 2:
        warm_page_cache(args.store)
    if args.reuse and (args.work / f"{Path(args.store).name}.build.json").is_file():
        records["build"] = json.loads((args.work / f"{Path(args.store).name}.build.json").read_text())
    if args.side_by_side:
        records["memory"] = run_stage(args, "train-memory")
    records["store"] = run_stage(args, "train-store")
    if args.side_by_side:
        records["store_over_memory_steps"] = round(records["store"]["steps_per_s"] / records["memory"]["steps_per_s"], 3)
        records["store_over_memory_cpu"] = round(records["memory"]["cpu_seconds_per_step"]
                                                 / records["store"]["cpu_seconds_per_step"], 3)
        print(f"store / memory step rate: {records['store_over_memory_steps']} (wall), "
              f"{records['store_over_memory_cpu']} (process CPU time per step)")
    args.out.mkdir(parents=True, exist_ok=True)
    name = f"out_of_core-{args.preset}-{Path(args.store).name.split('-')[-1]}.json"
    (args.out / name).write_text(json.dumps(records, indent=2) + "\n")
    print(f"wrote {args.out / name}")


if __name__ == "__main__":
    main()
