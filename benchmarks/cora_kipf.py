"""Kipf & Welling settings on Planetoid Cora through ``gnnkit train``: GCN and GraphSAGE, 2 layers,
16 hidden, dropout 0.5, Adam lr 0.01, weight decay 5e-4, 200 epochs, 10 seeds, with the model
selected on the validation accuracy (gnnkit's default) and on the validation loss (Kipf &
Welling's criterion, ``--metric loss``), features row-normalized as in the paper (``--transform
NormalizeFeatures``; ``--transform none`` for the raw bag of words). Goals: GCN ≥ 0.815 (the paper's
81.5) with NormalizeFeatures, SAGE ≥ 0.795 mean test accuracy.

    python benchmarks/cora_kipf.py [--root DIR_WITH_Cora/raw] [--seeds 10] [--transform NormalizeFeatures|none]
                                   [--models gcn,sage] [--metrics accuracy,loss]

Without ``--root`` it copies ``../shared/data/Planetoid`` to a temporary folder (Planetoid writes
``processed/`` under its root).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from _shared import planetoid_root


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--root", default=None)
    p.add_argument("--seeds", type=int, default=10)
    p.add_argument("--transform", default="NormalizeFeatures", help="gnnkit train --transform, or none")
    p.add_argument("--models", default="gcn,sage")
    p.add_argument("--metrics", default="accuracy,loss")
    args = p.parse_args()
    transform = [] if args.transform.lower() == "none" else ["--transform", args.transform]
    work = Path(tempfile.mkdtemp(prefix="cora_kipf-"))
    root = planetoid_root(args.root, work)
    env = dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"))
    rows = []
    for model in args.models.split(","):
        for metric in args.metrics.split(","):
            out = work / f"{model}-{metric}"
            cmd = [sys.executable, "-m", "gnnkit", "train", "--dataset", "Cora", "--root", root, "--model", model,
                   "--hidden", "16", "--layers", "2", "--dropout", "0.5", "--lr", "0.01", "--weight-decay", "5e-4",
                   "--epochs", "200", "--seeds", str(args.seeds), "--metric", metric, "--no-progress", "--out", str(out),
                   "--threads", "1", *transform]
            subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL)
            r = json.loads((out / "results.json").read_text())
            rows.append((model, metric, r["test_mean"], r["test_std"], r["val_mean"]))
            print(f"{model:5s} transform {args.transform} select on val {metric:8s}: test {r['test_mean']:.4f} ± {r['test_std']:.4f} "
                  f"(val {r['val_mean']:.4f})", flush=True)
    print(" ".join(f"{model}_{'default' if metric == 'accuracy' else 'val_' + metric}={mean:.4f}"
                   for model, metric, mean, _, _ in rows))


if __name__ == "__main__":
    main()
