"""Cross-validated GIN accuracy on TU datasets with gnnkit's graph components in a plain PyTorch
loop (the Trainer integration of issue 24 comes later; this measures the parts it will use).

    python benchmarks/graph_cv.py --dataset MUTAG --protocol gin            # Xu et al.'s protocol
    python benchmarks/graph_cv.py --dataset ENZYMES --protocol errica --node-attr
    python benchmarks/graph_cv.py --dataset MUTAG --protocol gin --trainer  # through gnnkit.Trainer

Per fold of :func:`gnnkit.graphs.stratified_kfold` (seeded): GIN (:class:`gnnkit.models.gin.GIN`,
sum pooling, readout from every layer) trained with Adam, the learning rate halved every 50
epochs (Xu et al.), batches of ``--batch-size`` graphs from :class:`gnnkit.graphs.GraphLoader`.
After every epoch the test fold (and, for ``errica``, the inner validation split of 10% of the
training fold, :func:`gnnkit.graphs.inner_split`, not trained on) is scored; the curves are
summarized by :func:`gnnkit.graphs.summarize_folds`: ``gin`` = test accuracy at the epoch of the
best mean test curve, ``errica`` = per fold the test accuracy at its best validation epoch.
Prints per-fold figures and ``mean ± std``; ``--out`` writes them as JSON. One thread.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

from gnnkit.fileio import writable_copy

from _graph import evaluate, train_epoch

SHARED_TU = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "TU"


def run_fold(coll, batcher, train, val, test, args, seed: int):
    """``(val_curve, test_curve)`` over the epochs of one fold (``val_curve`` empty without ``val``)."""
    from gnnkit.graphs import GraphLoader
    from gnnkit.models.gin import GIN

    torch.manual_seed(seed)
    model = GIN(coll.num_features, args.hidden, coll.num_classes, num_layers=args.layers, dropout=args.dropout)
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=50, gamma=0.5)
    loader = GraphLoader(batcher, train, args.batch_size, seed=seed)
    val_curve, test_curve = [], []
    for epoch in range(args.epochs):
        train_epoch(model, loader, opt, epoch)
        sched.step()
        if val is not None:
            val_curve.append(evaluate(model, batcher, val))
        test_curve.append(evaluate(model, batcher, test))
    return val_curve, test_curve


def run_fold_trainer(coll, train, val, test, args, seed: int):
    """The same fold through ``gnnkit.Trainer`` with the ``graph`` task and sampler (constant
    learning rate: the loop has no schedule); curves from the run's history. Without ``val`` (the
    GIN protocol) the test fold serves as validation, as in Xu et al."""
    from gnnkit import Trainer
    from gnnkit.graphs import GraphClassification, GraphSampler
    from gnnkit.models.gin import GIN

    torch.manual_seed(seed)
    model = GIN(coll.num_features, args.hidden, coll.num_classes, num_layers=args.layers, dropout=args.dropout)
    trainer = Trainer(task=GraphClassification(), sampler=GraphSampler(batch_size=args.batch_size),
                      max_epochs=args.epochs, lr=args.lr, seed=seed, device="cpu", progress=False)
    history = trainer.fit(model, coll.with_split(train, test if val is None else val, test))["history"]
    return ([h["val_accuracy"] for h in history] if val is not None else [],
            [h["test_accuracy"] for h in history])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", default="MUTAG")
    p.add_argument("--root", help="a writable folder holding <NAME>/raw (default: a copy of ../shared/data/TU)")
    p.add_argument("--protocol", choices=("gin", "errica"), default="errica")
    p.add_argument("--node-attr", action="store_true", help="append the continuous node attributes")
    p.add_argument("--folds", type=int, default=10)
    p.add_argument("--epochs", type=int, default=350)
    p.add_argument("--layers", type=int, default=4, help="GIN layers (Xu et al.'s 5 layers count the input)")
    p.add_argument("--hidden", type=int, default=32)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=0.01)
    p.add_argument("--dropout", type=float, default=0.5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--trainer", action="store_true", help="train through gnnkit.Trainer (constant lr)")
    p.add_argument("--out")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    from gnnkit.fileio import atomic_write_json
    from gnnkit.graphs import GraphBatcher, inner_split, load_tu, stratified_kfold, summarize_folds

    with tempfile.TemporaryDirectory() as work:
        root = args.root
        if root is None:
            if not (SHARED_TU / args.dataset).is_dir():
                print(f"skipped: {SHARED_TU / args.dataset} is absent; pass --root", file=sys.stderr)
                return 0
            root = os.path.join(work, "TU")
            writable_copy(SHARED_TU / args.dataset, os.path.join(root, args.dataset))
        coll = load_tu(args.dataset, root, use_node_attr=args.node_attr)
    batcher = GraphBatcher(coll, "sum")
    vals, tests = [], []
    t0 = time.perf_counter()
    for fold, (train, test) in enumerate(stratified_kfold(coll.y, args.folds, seed=args.seed)):
        val = None
        if args.protocol == "errica":
            train, val = inner_split(coll.y, train, 0.1, seed=args.seed + fold)
        v, t = (run_fold_trainer(coll, train, val, test, args, args.seed + fold) if args.trainer
                else run_fold(coll, batcher, train, val, test, args, args.seed + fold))
        vals.append(v)
        tests.append(t)
        print(f"fold {fold}: last-epoch test {t[-1]:.3f}, best test {max(t):.3f}"
              + (f", test at best val {t[max(range(len(v)), key=v.__getitem__)]:.3f}" if v else ""), flush=True)
    summary = summarize_folds(torch.tensor(tests), torch.tensor(vals) if vals[0] else None, args.protocol)
    seconds = time.perf_counter() - t0
    print(f"{args.dataset} GIN, {args.folds}-fold, protocol {args.protocol}: test accuracy "
          f"{summary['mean']:.3f} ± {summary['std']:.3f} ({seconds:.0f} s)")
    if args.out:
        atomic_write_json(args.out, {"settings": vars(args), "summary": summary, "seconds": seconds,
                                     "val_curves": vals, "test_curves": tests})
    return 0


if __name__ == "__main__":
    sys.exit(main())
