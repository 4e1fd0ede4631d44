"""PyG models in gnnkit's Trainer against a plain PyG loop, and against gnnkit's own GCN (issue 25).

For each seed: a PyG module (GATConv x2, 8 heads of 8; or ``torch_geometric.nn.models.GraphSAGE``)
is built after ``torch.manual_seed(seed)``, copied, then trained (a) through
``Trainer(sampler=...).fit(PyGModel(module), cora)`` with the full, neighbor and cluster samplers and
(b) by the PyG tutorial loop (Adam, full-batch cross-entropy on the training nodes, the epoch with
the best validation accuracy selected, ties to the lower validation loss as the Trainer does). Same lr (0.01), weight decay (5e-4), epochs.
Then gnnkit's GCN (CSR kernels) and a PyG ``GCNConv`` stack of the same sizes, both through the
Trainer, full batch: test accuracy and seconds per epoch.

    python benchmarks/pyg_models.py --seeds 10 --epochs 100 --out benchmarks/out/pyg_models.json
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from test_pyg_models import GAT, WeightedGCN, plain_pyg_loop, select  # noqa: E402
from torch_geometric.nn.models import GraphSAGE  # noqa: E402

from gnnkit.data import load  # noqa: E402
from gnnkit.fileio import atomic_write_json  # noqa: E402
from gnnkit.models import build_model  # noqa: E402
from gnnkit.models.pyg import PyGModel  # noqa: E402
from gnnkit.samplers.cluster import ClusterSampler  # noqa: E402
from gnnkit.samplers.neighbor import NeighborSampler  # noqa: E402
from gnnkit.trainer import Trainer  # noqa: E402

MODELS = {"gat": lambda d: GAT(d.num_features, 8, 7, heads=8),
          "sage": lambda d: GraphSAGE(d.num_features, 64, 2, out_channels=7)}


def sampler(kind: str, cache: str):
    return {"full": lambda: "full", "neighbor": lambda: NeighborSampler([10, 10], 128),
            "cluster": lambda: ClusterSampler(num_parts=20, clusters_per_batch=4, cache_dir=cache)}[kind]()


def trainer_run(model, d, kind: str, seed: int, epochs: int, cache: str) -> dict:
    t = time.perf_counter()
    r = Trainer(sampler=sampler(kind, cache), max_epochs=epochs, lr=0.01, weight_decay=5e-4, progress=False,
                device="cpu", seed=seed).fit(model, d)
    return {"val": r["val"], "test": r["test"], "seconds": time.perf_counter() - t}


def plain_run(module, d, seed: int, epochs: int) -> dict:
    t = time.perf_counter()
    torch.manual_seed(seed)
    curve = plain_pyg_loop(module, d, epochs, 0.01, 5e-4)
    best = select(curve)  # the Trainer's rule: best validation accuracy, ties to the lower validation loss
    return {**curve[best], "epoch": best, "seconds": time.perf_counter() - t}


def summary(runs) -> dict:
    tests = [r["test"] for r in runs]
    return {"test_mean": statistics.mean(tests), "test_std": statistics.pstdev(tests), "runs": runs}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--root", default=str(Path(__file__).resolve().parents[2] / "shared" / "data" / "Planetoid"))
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--epochs", type=int, default=100)
    ap.add_argument("--models", default="gat,sage")
    ap.add_argument("--out", default="benchmarks/out/pyg_models.json")
    args = ap.parse_args()
    d, cache, out = load("Cora", root=args.root), "/tmp/gnnkit-pyg-bench-parts", {}
    for name in args.models.split(","):
        rows = {k: [] for k in ("plain", "full", "neighbor", "cluster")}
        for seed in range(args.seeds):
            torch.manual_seed(seed)
            module = MODELS[name](d)
            state = {k: v.clone() for k, v in module.state_dict().items()}
            rows["plain"].append(plain_run(module, d, seed, args.epochs))
            for kind in ("full", "neighbor", "cluster"):
                module.load_state_dict(state)
                rows[kind].append(trainer_run(PyGModel(module), d, kind, seed, args.epochs, cache))
            print(name, seed, {k: round(v[-1]["test"], 4) for k, v in rows.items()}, flush=True)
        out[name] = {k: summary(v) for k, v in rows.items()}
    out["gcn_fast_path"] = {}
    for name, make in (("gnnkit_gcn", lambda: build_model("gcn", d.num_features, 7, hidden=16, dropout=0.0)),
                       ("pyg_gcnconv", lambda: PyGModel(WeightedGCN(d.num_features, 7)))):
        runs = []
        for seed in range(args.seeds):
            torch.manual_seed(seed)
            runs.append(trainer_run(make(), d, "full", seed, args.epochs, cache))
        out["gcn_fast_path"][name] = {**summary(runs), "seconds_per_epoch": statistics.mean(
            r["seconds"] for r in runs) / args.epochs}
        print(name, out["gcn_fast_path"][name]["test_mean"], out["gcn_fast_path"][name]["seconds_per_epoch"])
    out["settings"] = {**vars(args), "threads": torch.get_num_threads(), "OMP_NUM_THREADS": os.environ.get(
        "OMP_NUM_THREADS")}
    atomic_write_json(args.out, out)
    for name in args.models.split(","):
        print(name, {k: f"{v['test_mean']:.4f} ± {v['test_std']:.4f}" for k, v in out[name].items()})


if __name__ == "__main__":
    main()
