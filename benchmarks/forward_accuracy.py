"""ForwardGNN accuracy: backprop vs SF vs FF-LA on Cora, same depth, width and optimizer.

    flock /tmp/gnnkit-heavy.lock python benchmarks/forward_accuracy.py [--seeds 10] [--layers 4] ...

Two settings: the gnn-benchmark Cora npz with a fresh random 64/16/20 split per seed (the
reference's protocol) and Planetoid Cora's public split (140/500/1000). Every method gets the
reference's settings: a GCN of ``--layers`` graph layers of width ``--hidden`` (128), Adam
(lr 1e-3, weight decay 5e-4), no dropout, row-normalized features, validation every 2 epochs,
early stop after ``--patience`` checks (100). Backprop: the usual GCN whose last layer maps to the
classes, at most ``--layer-epochs`` epochs (1000). Forward: the same depth and hidden width with
no classifier (the last layer is ``hidden`` wide, as in the reference), each layer trained to its
own early stop, at most ``--layer-epochs`` epochs per layer. Prints one line per run, then the
mean ± std test accuracy per method and setting and the gaps to backprop.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import tempfile
import time

import torch

from gnnkit.data import load
from gnnkit.data.split import random_split
from gnnkit.models import build_model
from gnnkit.strategies.forward import ForwardLearning
from gnnkit.strategies.forward.inputs import feature_shift, row_normalize
from gnnkit.trainer import Trainer, seed_everything

SHARED = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "data")


def datasets(shared: str, tmp: str):
    npz = load(os.path.join(shared, "npz", "cora.npz"))
    shutil.copytree(os.path.join(shared, "Planetoid"), os.path.join(tmp, "Planetoid"))
    public = load("Cora", root=os.path.join(tmp, "Planetoid"))
    return {"npz-random-64/16": npz, "planetoid-public": public}


def run(method: str, data, seed: int, args) -> dict:
    data = data.clone()
    data.x = row_normalize(data.x, feature_shift(data.x))  # the reference's NormalizeFeatures, for all
    seed_everything(seed)
    c = int(data.num_classes)
    forward = method != "backprop"
    model = build_model("gcn", data.num_features, args.hidden if forward else c, hidden=args.hidden,
                        num_layers=args.layers, dropout=0.0)
    common = dict(lr=1e-3, weight_decay=5e-4, optimizer="adam", seed=seed, progress=False, device="cpu")
    if forward:
        strategy = ForwardLearning(method, patience=args.patience, val_every=2, layer_epochs=args.layer_epochs)
        trainer = Trainer(strategy=strategy, max_epochs=args.layers * args.layer_epochs, eval_every=10**9, **common)
    else:
        trainer = Trainer(max_epochs=args.layer_epochs, eval_every=2, patience=args.patience, **common)
    t0 = time.perf_counter()
    r = trainer.fit(model, data)
    return {"method": method, "seed": seed, "test": r["test"], "val": r["val"], "epochs": r["epochs"],
            "seconds": time.perf_counter() - t0}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", type=int, default=10)
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--patience", type=int, default=100, help="checks (every 2 epochs) without improvement")
    p.add_argument("--layer-epochs", type=int, default=1000, help="max epochs (per layer for forward)")
    p.add_argument("--methods", default="backprop,sf,ff-la")
    p.add_argument("--settings", default="npz-random-64/16,planetoid-public")
    p.add_argument("--shared", default=os.environ.get("GNNKIT_SHARED_DATA", SHARED))
    p.add_argument("--out", default=None, help="write all runs as JSON here")
    args = p.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        graphs = datasets(args.shared, tmp)
        for setting in args.settings.split(","):
            base = graphs[setting]
            for seed in range(args.seeds):
                data = base
                if setting.startswith("npz"):
                    data = base.clone()
                    data.train_mask, data.val_mask, data.test_mask = random_split(data.y, 0.64, 0.16, seed=seed)
                for method in args.methods.split(","):
                    r = {"setting": setting, **run(method, data, seed, args)}
                    rows.append(r)
                    print(json.dumps(r), flush=True)
    print(f"\nGCN {args.layers} layers, hidden {args.hidden}, Adam 1e-3 wd 5e-4, patience {args.patience} checks, "
          f"<= {args.layer_epochs} epochs (per layer for forward); {args.seeds} seeds")
    for setting in args.settings.split(","):
        means = {}
        for method in args.methods.split(","):
            acc = [100 * r["test"] for r in rows if r["setting"] == setting and r["method"] == method]
            secs = statistics.fmean(r["seconds"] for r in rows if r["setting"] == setting and r["method"] == method)
            means[method] = statistics.fmean(acc)
            sd = statistics.stdev(acc) if len(acc) > 1 else 0.0
            print(f"{setting:18s} {method:9s} test {means[method]:6.2f} ± {sd:5.2f}  ({secs:6.1f} s/run)")
        if "backprop" in means:
            gaps = "  ".join(f"{m}-backprop={means[m] - means['backprop']:+.2f}" for m in means if m != "backprop")
            print(f"{setting:18s} gaps: {gaps}")
    if args.out:
        tmp_path = args.out + ".tmp"
        with open(tmp_path, "w") as f:
            json.dump(rows, f, indent=1)
        os.replace(tmp_path, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
