"""GAE protocol on Planetoid Cora (Kipf & Welling, 2016) through ``Trainer.fit`` with the ``link`` task:
85/5/10 random split of the 5278 undirected edges per seed (validation and test edges removed
from the message-passing graph, as many fixed negatives as positives), features used, a 2-layer
GCN encoder (32 -> 16, no dropout), dot-product decoder, BCE against one uniform negative per
positive edge, Adam lr 0.01, 200 epochs, model selected on the validation AUC. Goal: mean test
AUC >= 0.90 and AP >= 0.91 over 10 seeds (GAE's paper: 91.0 / 92.0).

    python benchmarks/link_gae.py [--root DIR_WITH_Cora/raw] [--seeds 10] [--out FILE.json]
        [--sampler full|neighbor|cluster] [--fanouts 10,10] [--batch-size 512] [--num-parts 10]
        [--clusters-per-batch 2] [--epochs 200] [--lr 0.01]

``--sampler neighbor``: per step a batch of ``--batch-size`` training edges (both directions count)
with one uniform negative each, both endpoints' neighborhoods sampled with ``--fanouts`` (17 steps
per epoch at 512: ``--lr 0.001 --epochs 40`` keeps about the full-batch run's optimization budget);
``--sampler cluster``: Cluster-GCN batches, the training edges inside them as positives. Evaluation
is whole-graph either way.

Without ``--root`` it copies ``../shared/data/Planetoid`` to a temporary folder.
"""
from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch
from _shared import planetoid_root

from gnnkit import Trainer
from gnnkit.data import load
from gnnkit.models import GCN


def make_sampler(args, work: Path):
    from gnnkit.samplers.cluster import ClusterSampler
    from gnnkit.samplers.neighbor import NeighborSampler

    if args.sampler == "neighbor":
        return NeighborSampler(fanouts=args.fanouts, batch_size=args.batch_size)
    if args.sampler == "cluster":
        return ClusterSampler(num_parts=args.num_parts, clusters_per_batch=args.clusters_per_batch,
                              cache_dir=str(work / "parts"))
    return "full"


def run(data, seed: int, epochs: int, sampler="full", lr: float = 0.01) -> dict:
    torch.manual_seed(seed)
    model = GCN(data.num_features, 32, 16, num_layers=2, dropout=0.0)
    trainer = Trainer(task="link", sampler=sampler, max_epochs=epochs, lr=lr, seed=seed, progress=False)
    r = trainer.fit(model, data)
    m = r["metrics"]
    return {"seed": seed, "val_auc": m["val_auc"], "test_auc": m["test_auc"], "test_ap": m["test_ap"],
            "best_epoch": r["best_epoch"], "seconds": r["seconds"]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--root", default=None)
    p.add_argument("--seeds", type=int, default=10)
    p.add_argument("--epochs", type=int, default=200)
    p.add_argument("--out", default=None, help="write the per-seed rows and the summary as JSON here")
    p.add_argument("--lr", type=float, default=0.01, help="Adam's learning rate (default 0.01)")
    p.add_argument("--sampler", choices=("full", "neighbor", "cluster"), default="full")
    p.add_argument("--fanouts", default="10,10")
    p.add_argument("--batch-size", type=int, default=512, help="neighbor: positive edges per batch")
    p.add_argument("--num-parts", type=int, default=10)
    p.add_argument("--clusters-per-batch", type=int, default=2)
    args = p.parse_args()
    work = Path(tempfile.mkdtemp(prefix="link_gae-"))
    root = planetoid_root(args.root, work)
    data = load("Cora", root=root)
    t0 = time.time()
    rows = [run(data, seed, args.epochs, make_sampler(args, work), args.lr) for seed in range(args.seeds)]
    summary = {}
    for key in ("test_auc", "test_ap"):
        vals = [r[key] for r in rows]
        summary[key] = {"mean": statistics.mean(vals), "std": statistics.stdev(vals) if len(vals) > 1 else 0.0}
    for r in rows:
        print(f"seed {r['seed']}: val AUC {r['val_auc']:.4f}  test AUC {r['test_auc']:.4f}  AP {r['test_ap']:.4f}"
              f"  (epoch {r['best_epoch']})")
    print(f"test AUC {summary['test_auc']['mean']:.4f} ± {summary['test_auc']['std']:.4f}, "
          f"AP {summary['test_ap']['mean']:.4f} ± {summary['test_ap']['std']:.4f} over {len(rows)} seeds "
          f"(goal AUC >= 0.90, AP >= 0.91) in {time.time() - t0:.0f} s, sampler {args.sampler}, "
          f"{statistics.mean(r['seconds'] for r in rows):.1f} s training per seed")
    if args.out:
        from gnnkit.fileio import atomic_write_json

        atomic_write_json(args.out, {"protocol": f"GAE 85/5/10, GCN 32-16, dot decoder, {args.epochs} epochs, "
                                                 f"lr {args.lr}",
                                     "sampler": {k: getattr(args, k) for k in ("sampler", "fanouts", "batch_size",
                                                                              "num_parts", "clusters_per_batch")},
                                     "rows": rows, "summary": summary})


if __name__ == "__main__":
    main()
