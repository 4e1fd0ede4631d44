"""``gnnkit train``: one run per seed with the chosen task, sampler, strategy and escape.

Prints one line per seed and the mean ± std, and writes ``OUT/results.json``::

    {"dataset", "model", "task", "sampler", "strategy", "escape", "metric", "val_mean", "val_std",
     "test_mean", "test_std", "runs": [{"seed", "val", "test", "epochs", "seconds", "peak_rss_mb",
     ...}]}

With no arguments it trains a GCN on a built-in synthetic graph (csbm, no download). Each plug-in
declares its own options (``--fanouts``, ``--num-parts``, ``--escape-radius``...).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys

from .. import distributed as dist
from ..errors import GnnkitError

NAME = "train"
HELP = "train a model (one run per seed) and write results.json"
ORDER = 30

DEFAULT_DATASET = "csbm"


def _axes():
    from gnnkit.samplers import Sampler

    from ..escape import Escape
    from ..strategies import Strategy
    from ..tasks import Task

    return Task, Sampler, Strategy, Escape


def add_arguments(p: argparse.ArgumentParser) -> None:
    Task, Sampler, Strategy, Escape = _axes()
    g = p.add_argument_group("run")
    g.add_argument("--dataset", default=DEFAULT_DATASET,
                   help="a known name (Cora, ogbn-arxiv, csbm...) or a path (default: built-in csbm graph)")
    g.add_argument("--root", default=None, help="dataset root (default: $GNNKIT_DATA or the project's data/)")
    g.add_argument("--task", default="node", help=f"one of: {', '.join(Task.names())} (default node)")
    g.add_argument("--sampler", default="full", help=f"one of: {', '.join(Sampler.names())} (default full)")
    g.add_argument("--strategy", default="backprop", help=f"one of: {', '.join(Strategy.names())}")
    g.add_argument("--escape", default=None, help=f"one of: {', '.join(Escape.names()) or 'none'} (default none)")
    g.add_argument("--epochs", type=int, default=200, help="epochs per run (default 200)")
    g.add_argument("--lr", type=float, default=0.01, help="learning rate (default 0.01)")
    g.add_argument("--weight-decay", type=float, default=5e-4, help="weight decay (default 5e-4)")
    g.add_argument("--optimizer", default="adam", help="adam, adamw or sgd (default adam)")
    g.add_argument("--patience", type=int, default=None, help="early stop after K evaluations without improvement")
    g.add_argument("--eval-every", type=int, default=1, help="evaluate every N epochs (default 1)")
    g.add_argument("--metric", default=None, help="validation figure that selects the model (default: the task's)")
    g.add_argument("--seeds", type=int, default=1, help="runs with seeds 0..S-1 (default 1)")
    g.add_argument("--seed-start", type=int, default=0, help="first seed: runs with seeds K..K+S-1 (default 0)")
    g.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1 ... (default auto)")
    g.add_argument("--inference-batch-size", type=int, default=None, help="rows per chunk in full-graph inference")
    g.add_argument("--out", default=os.path.join("runs", "train"), help="output folder (default runs/train)")
    g.add_argument("--log-dir", default=None, help="per-epoch metrics.csv per seed under this folder")
    g.add_argument("--checkpoint-dir", default=None, help="write checkpoints per seed under this folder")
    g.add_argument("--resume", action="store_true", help="continue from the newest loadable checkpoint, if any")
    g.add_argument("--nproc", type=int, default=None, help="start N processes on this machine (torchrun)")
    g.add_argument("--backend", default=None, help="process-group backend under torchrun (gloo, nccl)")
    g.add_argument("--no-progress", action="store_true", help="no progress bar")
    try:
        from ..data.csbm import add_csbm_arguments
    except ImportError:  # data layer without the generator's options
        pass
    else:
        add_csbm_arguments(p)
    for axis in (Task, Sampler, Strategy, Escape):
        group = p.add_argument_group(f"{axis.axis} options")
        for name in axis.names():
            axis.lookup(name).add_args(group)


def _launch(args) -> int:
    """Re-run this command under torch's elastic launcher with ``--nproc`` processes."""
    from torch.distributed import run as torchrun

    argv = sys.argv[1:]
    rest, skip = [], False
    for a in argv:
        if skip:
            skip = False
            continue
        if a == "--nproc":
            skip = True
            continue
        if a.startswith("--nproc="):
            continue
        rest.append(a)
    torchrun.main(["--nproc-per-node", str(args.nproc), "--standalone", "-m", "gnnkit", *rest])
    return 0


def _mean_std(values):
    vals = [v for v in values if v is not None and not math.isnan(v)]
    if not vals:
        return None, None
    return statistics.fmean(vals), (statistics.stdev(vals) if len(vals) > 1 else 0.0)


def _write_json(obj, path: str) -> None:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=2, default=float)
    os.replace(tmp, path)


def run(args) -> int:
    if args.nproc and args.nproc > 1 and dist.env_world_size() == 1:
        return _launch(args)
    if args.seeds < 1:
        raise GnnkitError(f"--seeds must be at least 1, got {args.seeds}")
    if args.seed_start < 0:
        raise GnnkitError(f"--seed-start must be >= 0, got {args.seed_start}")
    from ..trainer import Trainer, seed_everything

    Task, Sampler, Strategy, Escape = _axes()
    args.dataset_options = {}
    if args.dataset == "csbm":
        from ..data.csbm import csbm_kwargs_from_args

        args.dataset_options = csbm_kwargs_from_args(args)
    from ..trainer import resolve_device

    started = dist.init(resolve_device(args.device), args.backend)
    try:
        return _run(args, Trainer, seed_everything, Task, Sampler, Strategy, Escape)
    finally:
        dist.shutdown(started)


def _run(args, Trainer, seed_everything, Task, Sampler, Strategy, Escape) -> int:
    Sampler.lookup(args.sampler), Strategy.lookup(args.strategy)  # name errors before any loading
    if args.escape and args.escape != "none":
        Escape.lookup(args.escape)
    task = Task.lookup(args.task).from_args(args)
    with dist.main_first():  # rank 0 writes any processed files while the others wait
        data = task.load_data(args)
    main = dist.is_main()
    runs = []
    for seed in range(args.seed_start, args.seed_start + args.seeds):
        seed_file = os.path.join(args.out, "runs", f"seed-{seed}.json")
        if args.resume and os.path.isfile(seed_file):
            with open(seed_file) as f:
                runs.append(json.load(f))
            continue
        task = Task.lookup(args.task).from_args(args)
        run_data = task.prepare_run(args, data, seed) if hasattr(task, "prepare_run") else data
        strategy = Strategy.lookup(args.strategy).from_args(args)
        if getattr(run_data, "num_classes", None) is not None:
            args.model_out_dim = strategy.model_out_dim(int(run_data.num_classes), getattr(args, "hidden", 0))
        seed_everything(seed)
        model = task.build_model(args, run_data)
        sub = f"seed-{seed}"
        trainer = Trainer(
            task=task, sampler=Sampler.lookup(args.sampler).from_args(args), strategy=strategy,
            escape=Escape.lookup(args.escape).from_args(args) if args.escape and args.escape != "none" else None,
            max_epochs=args.epochs, lr=args.lr, weight_decay=args.weight_decay, optimizer=args.optimizer,
            device=args.device, seed=seed, patience=args.patience, eval_every=args.eval_every,
            metric=args.metric, progress=not args.no_progress, inference_batch_size=args.inference_batch_size,
            checkpoint_dir=os.path.join(args.checkpoint_dir, sub) if args.checkpoint_dir else None,
            log_dir=os.path.join(args.log_dir, sub) if args.log_dir else None, backend=args.backend)
        result = trainer.fit(model, run_data, ckpt_path="last" if (args.resume and args.checkpoint_dir) else None)
        record = {"seed": seed, "val": result["val"], "test": result["test"], "epochs": result["epochs"],
                  "best_epoch": result["best_epoch"], "seconds": round(result["seconds"], 3),
                  "peak_rss_mb": round(result["peak_rss_mb"], 1), **task.run_summary(result)}
        if "peak_cuda_mb" in result:
            record["peak_cuda_mb"] = round(result["peak_cuda_mb"], 1)
        if "escape" in result:
            record["escape"] = result["escape"]
        runs.append(record)
        if main:
            _write_json(record, seed_file)
            print(f"seed {seed}: val {_fmt(record['val'])}  test {_fmt(record['test'])}  "
                  f"epochs {record['epochs']}  {record['seconds']:.1f}s", flush=True)
    val_mean, val_std = _mean_std([r["val"] for r in runs])
    test_mean, test_std = _mean_std([r["test"] for r in runs])
    summary = {"dataset": str(args.dataset), "model": getattr(args, "model", None), "task": args.task,
               "sampler": args.sampler, "strategy": args.strategy, "escape": args.escape,
               "metric": task.metric, "world_size": dist.world_size(), "val_mean": val_mean, "val_std": val_std,
               "test_mean": test_mean, "test_std": test_std, "runs": runs}
    if main:
        _write_json(summary, os.path.join(args.out, "results.json"))
        print(f"{task.metric}: val {_fmt(val_mean)} ± {_fmt(val_std)}  test {_fmt(test_mean)} ± {_fmt(test_std)}"
              f"  ({len(runs)} seeds) -> {os.path.join(args.out, 'results.json')}")
    return 0


def _fmt(v) -> str:
    return "n/a" if v is None else f"{v:.4f}"
