"""Each training precision (``32``, ``bf16-mixed``, ``16-mixed``) on Cora and on a 1M-node csbm:
test accuracy, seconds per epoch, peak memory of training and bytes of features gathered per batch.

    flock /tmp/gnnkit-heavy.lock python benchmarks/precision.py [--root DIR_WITH_Cora/raw] [--seeds 10]
        [--csbm-nodes 1000000] [--csbm-epochs 3] [--only cora|csbm|matrix] [--configs C,...]
        [--seed-list 3,4] [--precisions 32,bf16-mixed,16-mixed] [--cap-epochs N] [--json FILE]

* Cora: Kipf & Welling's GCN (2 layers, 16 hidden, dropout 0.5, Adam lr 0.01, weight decay 5e-4,
  200 epochs, row-normalized features, model selected on validation accuracy), full batch, seeds
  ``0..S-1``; the same seeds in every precision.
* csbm: ``num_nodes`` nodes (default 1M), 100 features, 10 classes, average degree 10, 5% of the
  nodes for training; GraphSAGE (2 layers, 128 hidden), neighbor sampling (fanouts 10,5, batch
  1024), ``--csbm-epochs`` epochs, seed 0, evaluated on the whole graph under the same precision.
* matrix (``--only matrix``): each sampler x strategy configuration of :data:`MATRIX` on Cora (neighbor,
  cluster, mvs, the MILP escape with backprop; ForwardGNN sf and ff-la full batch and sf on Cluster-GCN
  batches; settings in ``CONFIGS`` in the child), the seeds ``0..S-1`` or ``--seed-list``, with the
  per-seed differences to float32 (mean, std, standard error) to tell seed noise from a loss of
  precision; ``<config>-xbf16`` is a control: the features rounded through bfloat16, trained in float32.
  Run one configuration per locked command (each < 10 minutes on the 2-core machine).

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
        self.sizes, self.dtypes = [], set()
    def on_batch_end(self, trainer, batch, outputs):
        self.sizes.append(batch.x.nbytes)
        self.dtypes.add(str(batch.x.dtype).replace("torch.", ""))

if cfg["dataset"] == "cora":
    from gnnkit.data import load
    from gnnkit.models import GCN
    base = load("Cora", root=cfg["root"], transform="NormalizeFeatures")
    def make(seed):
        torch.manual_seed(seed)
        return GCN(base.num_features, 16, int(base.y.max()) + 1, dropout=0.5), base.clone()
    trainer_kw = dict(max_epochs=200, lr=0.01, weight_decay=5e-4)
    sampler = lambda: None
elif cfg["dataset"] == "csbm":
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

if cfg["dataset"] == "matrix":  # one sampler x strategy configuration on Cora (MATRIX in the parent)
    from gnnkit.data import load
    from gnnkit.escape.milp import MILPEscape
    from gnnkit.models import GCN
    from gnnkit.samplers.cluster import ClusterSampler
    from gnnkit.samplers.mvs import MVSSampler
    from gnnkit.samplers.neighbor import NeighborSampler
    from gnnkit.strategies.forward import ForwardLearning
    base = load("Cora", root=cfg["root"], transform="NormalizeFeatures")
    F_, C_ = base.num_features, int(base.y.max()) + 1
    cache = os.path.join(cfg["root"], "partitions")
    kipf = dict(lr=0.01, weight_decay=5e-4)
    fwd = dict(lr=1e-3, weight_decay=5e-4, eval_every=10**9, max_epochs=4 * 50)
    cluster = lambda: ClusterSampler(num_parts=10, clusters_per_batch=2, cache_dir=cache)
    CONFIGS = {  # name: (sampler, strategy, escape, trainer settings, forward model?)
        "full": (lambda: None, lambda: "backprop", lambda: None, dict(kipf, max_epochs=200), False),
        "neighbor": (lambda: NeighborSampler((10, 10), batch_size=64), lambda: "backprop", lambda: None,
                     dict(kipf, max_epochs=100), False),
        "cluster": (cluster, lambda: "backprop", lambda: None, dict(kipf, max_epochs=100), False),
        "mvs": (lambda: MVSSampler(batch_size=32, refresh=10, candidates=1.0), lambda: "backprop", lambda: None,
                dict(lr=1e-3, weight_decay=5e-4, max_epochs=100, eval_every=2), False),
        "escape": (lambda: None, lambda: "backprop", lambda: MILPEscape(time_limit=5, max_calls=3), dict(kipf, max_epochs=100),
                   False),
        "sf": (lambda: None, lambda: ForwardLearning("sf", patience=25, val_every=2, layer_epochs=50), lambda: None,
               fwd, True),
        "ff-la": (lambda: None, lambda: ForwardLearning("ff-la", patience=25, val_every=2, layer_epochs=50),
                  lambda: None, fwd, True),
        "sf-cluster": (cluster, lambda: ForwardLearning("sf", patience=25, val_every=2, layer_epochs=50),
                       lambda: None, fwd, True),
    }
    smp, strat, esc, trainer_kw, forward = CONFIGS[cfg["config"].removesuffix("-xbf16")]
    if cfg["config"].endswith("-xbf16"):  # the control: features rounded through bfloat16, then trained as given
        base.x = base.x.to(torch.bfloat16).float()
    if cfg.get("cap"):  # a smoke run: every configuration's epochs capped
        trainer_kw = dict(trainer_kw, max_epochs=min(trainer_kw["max_epochs"], cfg["cap"]))
    def make(seed):
        torch.manual_seed(seed)
        if forward:  # the forward runs' network: 4 layers of 128, no dropout, no classifier (forward_accuracy.py)
            return GCN(F_, 128, 128, num_layers=4, dropout=0.0), base.clone()
        return GCN(F_, 16, C_, dropout=0.5), base.clone()
    sampler = smp
    trainer_kw = dict(trainer_kw, strategy=strat(), escape=esc())

half = {"bf16-mixed": torch.bfloat16, "16-mixed": torch.float16}.get(cfg["precision"])
if half is not None:  # handed to fit in the half type: no float32 copy beside the store's
    base.x = base.x.to(half)
reset_hwm()
rows = []
for seed in cfg["seeds"]:
    model, data = make(seed)
    cb = Gathered()
    kw = dict(trainer_kw)
    if cfg["dataset"] == "matrix":  # a fresh strategy / escape per seed
        kw.update(strategy=strat(), escape=esc())
    t = Trainer(sampler=sampler(), seed=seed, progress=False, device="cpu", precision=cfg["precision"],
                callbacks=[cb], **kw)
    t0 = time.perf_counter()
    res = t.fit(model, data)
    wall = time.perf_counter() - t0
    epochs = res["epochs"]
    rows.append({"seed": seed, "test": res["test"], "val": res["val"], "epochs": epochs,
                 "seconds_per_epoch": res["seconds"] / max(epochs, 1), "wall": wall,
                 "bytes_per_batch": statistics.mean(cb.sizes) if cb.sizes else 0.0,
                 "batches_per_epoch": len(cb.sizes) / max(epochs, 1), "batch_x_dtypes": sorted(cb.dtypes),
                 "escape_calls": len(res.get("escape") or []),
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


MATRIX = ("full", "neighbor", "cluster", "mvs", "escape", "sf", "ff-la", "sf-cluster")
# controls (run with --precisions 32): a configuration on features rounded through bfloat16, to tell
# what the rounding of the inputs alone does from what half-precision compute does
CONTROLS = tuple(f"{c}-xbf16" for c in MATRIX)


def summarize(job: dict, res: dict) -> dict:
    import statistics

    tests = [r["test"] for r in res["rows"]]
    name = job["dataset"] if job["dataset"] != "matrix" else job["config"]
    return {"dataset": job["dataset"], "config": name, "precision": job["precision"], "seeds": len(tests),
            "test_mean": statistics.mean(tests), "test_std": statistics.pstdev(tests),
            "seconds_per_epoch": statistics.mean(r["seconds_per_epoch"] for r in res["rows"]),
            "peak_mib": res["peak_mib"], "bytes_per_batch": statistics.mean(r["bytes_per_batch"] for r in res["rows"]),
            "batches_per_epoch": res["rows"][0]["batches_per_epoch"], "x_dtype": res["rows"][0]["x_dtype"],
            "batch_x_dtypes": sorted({d for r in res["rows"] for d in r["batch_x_dtypes"]}),
            "epochs": [r["epochs"] for r in res["rows"]], "escape_calls": [r["escape_calls"] for r in res["rows"]],
            "per_seed": tests, "threads": res["threads"], "load": res["load"]}


def paired(row: dict, ref: dict) -> str:
    """Per-seed differences (points) of ``row`` against the float32 ``ref`` on the same seeds:
    mean ± std and the standard error of the mean, to tell seed noise from a loss of precision."""
    import statistics

    d = [100 * (a - b) for a, b in zip(row["per_seed"], ref["per_seed"])]
    sd = statistics.stdev(d) if len(d) > 1 else 0.0
    row["paired"] = {"diffs": d, "mean": statistics.mean(d), "std": sd, "sem": sd / len(d) ** 0.5}
    return (f"paired diff {statistics.mean(d):+.2f} ± {sd:.2f} (sem {sd / len(d) ** 0.5:.2f}); per seed "
            + " ".join(f"{v:+.1f}" for v in d))


def make_jobs(args, precisions) -> list:
    from _shared import planetoid_root

    jobs = []
    if args.only in (None, "cora", "matrix"):
        root = planetoid_root(args.root, Path(tempfile.mkdtemp(prefix="precision-")))
    if args.only in (None, "cora"):
        jobs += [{"dataset": "cora", "precision": pr, "root": root, "seeds": list(range(args.seeds))}
                 for pr in precisions]
    if args.only in (None, "csbm"):
        jobs += [{"dataset": "csbm", "precision": pr, "nodes": args.csbm_nodes, "epochs": args.csbm_epochs,
                  "seeds": [0]} for pr in precisions]
    if args.only == "matrix":
        seeds = [int(v) for v in args.seed_list.split(",")] if args.seed_list else list(range(args.seeds))
        for name in args.configs.split(","):
            if name not in MATRIX + CONTROLS:
                raise SystemExit(f"unknown configuration {name!r}; known: {', '.join(MATRIX)}")
            jobs += [{"dataset": "matrix", "config": name, "precision": pr, "root": root, "cap": args.cap_epochs,
                      "seeds": seeds} for pr in precisions]
    return jobs


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--root", default=None, help="a folder holding Cora/raw (default: a copy of the shared one)")
    p.add_argument("--seeds", type=int, default=10)
    p.add_argument("--csbm-nodes", type=int, default=1_000_000)
    p.add_argument("--csbm-epochs", type=int, default=3)
    p.add_argument("--only", choices=("cora", "csbm", "matrix"), default=None)
    p.add_argument("--configs", default=",".join(MATRIX), help="--only matrix: which sampler/strategy configurations")
    p.add_argument("--seed-list", default=None, help="--only matrix: these seeds (e.g. 3,4) instead of 0..S-1")
    p.add_argument("--cap-epochs", type=int, default=None, help="--only matrix: cap the epochs (a smoke run)")
    p.add_argument("--precisions", default=",".join(PRECISIONS),
                   help="comma-separated subset to run (keeps each locked command short; deltas need 32 in the run)")
    p.add_argument("--json", default=None, help="also write the rows here")
    args = p.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    precisions = [q for q in PRECISIONS if q in args.precisions.split(",")]
    print(f"machine: {platform.machine()}, {os.cpu_count()} cpus, python {platform.python_version()}, "
          f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}, "
          f"{time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}, load {os.getloadavg()[0]:.2f}")
    rows, ok, base = [], True, {}
    print(f"{'config':10} {'precision':11} {'x':9} {'test acc':>15} {'Δ vs 32':>8} {'s/epoch':>8} "
          f"{'peak MiB':>9} {'bytes/batch':>12} {'load':>5}")
    for job in make_jobs(args, precisions):
        t0 = time.perf_counter()
        row = summarize(job, run_child(job))
        row["wall"] = time.perf_counter() - t0
        rows.append(row)
        if job["precision"] == "32":
            base[row["config"]] = row
        ref = base.get(row["config"])
        delta = 100 * (row["test_mean"] - ref["test_mean"]) if ref else float("nan")
        row["delta_points"] = delta
        missed = ref is not None and abs(delta) > 0.3
        ok = ok and not missed
        print(f"{row['config']:10} {row['precision']:11} {row['x_dtype']:9} "
              f"{100 * row['test_mean']:7.2f} ± {100 * row['test_std']:4.2f} {delta:+8.2f} "
              f"{row['seconds_per_epoch']:8.3f} {row['peak_mib']:9.0f} {row['bytes_per_batch']:12.0f} "
              f"{row['load']:5.1f}{'  MISSED' if missed else ''}", flush=True)
        print(f"    per seed (test %): {' '.join(f'{100 * v:.1f}' for v in row['per_seed'])}; batch x "
              f"{','.join(row['batch_x_dtypes'])}; epochs {row['epochs']}"
              + (f"; escape calls {row['escape_calls']}" if job.get("config") == "escape" else "")
              + (f"; {paired(row, ref)}" if ref is not None and ref is not row else ""), flush=True)
        if args.json:  # after every job: a run cut short keeps what it measured
            Path(args.json).write_text(json.dumps(rows, indent=1))
    print(f"goal (every half precision within 0.3 points of 32): {'met' if ok else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
