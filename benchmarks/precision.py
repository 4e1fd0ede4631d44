"""Each training precision (``32``, ``bf16-mixed``, ``16-mixed``) on Cora and on a 1M-node csbm:
test accuracy, seconds per epoch, peak memory of training and bytes of features gathered per batch.

    flock /tmp/gnnkit-heavy.lock python benchmarks/precision.py [--root DIR_WITH_Cora/raw] [--seeds 10]
        [--csbm-nodes 1000000] [--csbm-epochs 3] [--only cora|csbm] [--json FILE]

* Cora: Kipf & Welling's GCN (2 layers, 16 hidden, dropout 0.5, Adam lr 0.01, weight decay 5e-4,
  200 epochs, row-normalized features, model selected on validation accuracy), full batch, seeds
  ``0..S-1``; the same seeds in every precision.
* csbm: ``num_nodes`` nodes (default 1M), 100 features, 10 classes, average degree 10, 5% of the
  nodes for training; GraphSAGE (2 layers, 128 hidden), neighbor sampling (fanouts 10,5, batch
  1024), ``--csbm-epochs`` epochs, seed 0, evaluated on the whole graph under the same precision.

Under a half precision the graph is handed to ``fit`` with ``x`` already in the half type (the
Trainer never changes the caller's graph, so a float32 ``x`` would stay in memory beside the half
copy the run reads). Every (dataset, precision) runs in its own process: its peak memory is the resident high-water
mark of training alone (``VmHWM`` reset through ``/proc/self/clear_refs`` after the data is
loaded, so loading or generating the graph does not count). Bytes gathered per batch: the mean of
``batch.x.nbytes`` over the training batches (the features the sampler gathered). The goal: each
half precision within 0.3 points of float32's mean test accuracy. Without ``--root`` Cora is read
from a temporary copy of ``../shared/data/Planetoid`` (Planetoid writes ``processed/`` under its root).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PRECISIONS = ("32", "bf16-mixed", "16-mixed")

_CHILD = r"""
import json, os, statistics, sys, time, warnings
warnings.filterwarnings("ignore")
import torch
from gnnkit.callbacks import Callback
from gnnkit.trainer import Trainer

cfg = json.loads(sys.argv[1])

def hwm_mib():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024.0

def reset_hwm():
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")

class Gathered(Callback):
    def __init__(self):
        self.sizes = []
    def on_batch_end(self, trainer, batch, outputs):
        self.sizes.append(batch.x.nbytes)

if cfg["dataset"] == "cora":
    from gnnkit.data import load
    from gnnkit.models import GCN
    base = load("Cora", root=cfg["root"], transform="NormalizeFeatures")
    def make(seed):
        torch.manual_seed(seed)
        return GCN(base.num_features, 16, int(base.y.max()) + 1, dropout=0.5), base.clone()
    trainer_kw = dict(max_epochs=200, lr=0.01, weight_decay=5e-4)
    sampler = lambda: None
else:
    from gnnkit.data.csbm import csbm
    from gnnkit.models import GraphSAGE
    from gnnkit.samplers.neighbor import NeighborSampler
    base = csbm(num_nodes=cfg["nodes"], num_classes=10, avg_degree=10.0, num_features=100,
                train_frac=0.05, val_frac=0.05, seed=0)
    def make(seed):
        torch.manual_seed(seed)
        return GraphSAGE(100, 128, 10, dropout=0.2), base
    trainer_kw = dict(max_epochs=cfg["epochs"], lr=0.01)
    sampler = lambda: NeighborSampler((10, 5), batch_size=1024)

half = {"bf16-mixed": torch.bfloat16, "16-mixed": torch.float16}.get(cfg["precision"])
if half is not None:  # handed to fit in the half type: no float32 copy beside the store's
    base.x = base.x.to(half)
reset_hwm()
rows = []
for seed in cfg["seeds"]:
    model, data = make(seed)
    cb = Gathered()
    t = Trainer(sampler=sampler(), seed=seed, progress=False, device="cpu", precision=cfg["precision"],
                callbacks=[cb], **trainer_kw)
    t0 = time.perf_counter()
    res = t.fit(model, data)
    wall = time.perf_counter() - t0
    epochs = res["epochs"]
    rows.append({"seed": seed, "test": res["test"], "val": res["val"], "epochs": epochs,
                 "seconds_per_epoch": res["seconds"] / max(epochs, 1), "wall": wall,
                 "bytes_per_batch": statistics.mean(cb.sizes) if cb.sizes else 0.0,
                 "batches_per_epoch": len(cb.sizes) / max(epochs, 1),
                 "x_dtype": str(t.ctx.features.dtype("x")).replace("torch.", "")})
print(json.dumps({"rows": rows, "peak_mib": hwm_mib(), "threads": torch.get_num_threads(),
                  "load": os.getloadavg()[0]}))
"""


def run_child(cfg: dict) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"))
    out = subprocess.run([sys.executable, "-c", _CHILD, json.dumps(cfg)], capture_output=True, text=True, env=env,
                         check=False)
    if out.returncode != 0:
        raise SystemExit(f"run failed ({cfg['dataset']}, {cfg['precision']}):\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def summarize(dataset: str, precision: str, res: dict) -> dict:
    import statistics

    tests = [r["test"] for r in res["rows"]]
    return {"dataset": dataset, "precision": precision, "seeds": len(tests),
            "test_mean": statistics.mean(tests), "test_std": statistics.pstdev(tests),
            "seconds_per_epoch": statistics.mean(r["seconds_per_epoch"] for r in res["rows"]),
            "peak_mib": res["peak_mib"], "bytes_per_batch": statistics.mean(r["bytes_per_batch"] for r in res["rows"]),
            "batches_per_epoch": res["rows"][0]["batches_per_epoch"], "x_dtype": res["rows"][0]["x_dtype"],
            "per_seed": tests, "threads": res["threads"], "load": res["load"]}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--root", default=None, help="a folder holding Cora/raw (default: a copy of the shared one)")
    p.add_argument("--seeds", type=int, default=10)
    p.add_argument("--csbm-nodes", type=int, default=1_000_000)
    p.add_argument("--csbm-epochs", type=int, default=3)
    p.add_argument("--only", choices=("cora", "csbm"), default=None)
    p.add_argument("--precisions", default=",".join(PRECISIONS),
                   help="comma-separated subset to run (each locked command stays short; deltas need 32 in the run "
                        "or --base-json)")
    p.add_argument("--json", default=None, help="also write the rows here")
    args = p.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from _shared import planetoid_root

    precisions = [q for q in PRECISIONS if q in args.precisions.split(",")]
    print(f"machine: {platform.machine()}, {os.cpu_count()} cpus, python {platform.python_version()}, "
          f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}, load {os.getloadavg()[0]:.2f}")
    jobs = []
    if args.only in (None, "cora"):
        root = planetoid_root(args.root, Path(tempfile.mkdtemp(prefix="precision-")))
        jobs += [{"dataset": "cora", "precision": pr, "root": root, "seeds": list(range(args.seeds))}
                 for pr in precisions]
    if args.only in (None, "csbm"):
        jobs += [{"dataset": "csbm", "precision": pr, "nodes": args.csbm_nodes, "epochs": args.csbm_epochs,
                  "seeds": [0]} for pr in precisions]
    rows, ok = [], True
    print(f"{'dataset':8} {'precision':11} {'x':9} {'test acc':>15} {'Δ vs 32':>8} {'s/epoch':>8} "
          f"{'peak MiB':>9} {'bytes/batch':>12}")
    base = {}
    for job in jobs:
        t0 = time.perf_counter()
        row = summarize(job["dataset"], job["precision"], run_child(job))
        row["wall"] = time.perf_counter() - t0
        rows.append(row)
        if job["precision"] == "32":
            base[job["dataset"]] = row["test_mean"]
        delta = 100 * (row["test_mean"] - base.get(job["dataset"], row["test_mean"]))
        row["delta_points"] = delta
        ok = ok and abs(delta) <= 0.3
        print(f"{row['dataset']:8} {row['precision']:11} {row['x_dtype']:9} "
              f"{100 * row['test_mean']:7.2f} ± {100 * row['test_std']:4.2f} {delta:+8.2f} "
              f"{row['seconds_per_epoch']:8.3f} {row['peak_mib']:9.0f} {row['bytes_per_batch']:12.0f}", flush=True)
    print(f"goal (every half precision within 0.3 points of 32): {'met' if ok else 'NOT met'}")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
