"""``gnnkit train``: one run per seed with the chosen task, sampler, strategy and escape.

Prints one line per seed and the mean ± std, and writes ``OUT/runs/seed-K.json`` per finished seed
and ``OUT/results.json`` after each seed::

    {"dataset", "model", "task", "sampler", "strategy", "escape", "metric", "world_size", "settings"
     (every option), "fingerprint", "run", "argv", "versions", "seeds", "finished_seeds", "complete",
     "val_mean", "val_std", "test_mean", "test_std", "runs": [{"seed", "val", "test", "epochs",
     "best_epoch", "seconds", "peak_rss_mb", ...}]}

With no arguments it trains a GCN on a built-in synthetic graph (csbm, no download). Each plug-in
declares its own options (``--fanouts``, ``--num-parts``, ``--escape-radius``...); the parts are built
by :mod:`gnnkit.commands.factory`. Output folders are checked before anything is loaded
(:mod:`gnnkit.commands.outputs`); SIGTERM is handled like SIGINT: the run stops, and the newest
checkpoint and the command that resumes are printed (exit 143, 130 for SIGINT).
"""
from __future__ import annotations

import argparse
import inspect
import os
import shlex
import signal
import sys
from contextlib import contextmanager

from .. import distributed as dist
from . import factory, outputs
from .options import add_train_options, check_values

NAME = "train"
HELP = "train a model (one run per seed) and write results.json"
ORDER = 30


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", default=None, metavar="FILE.toml",
                   help="options from a TOML file (keys: the flags without --, e.g. weight-decay = 5e-4); "
                        "flags on the command line override it")
    add_train_options(p)


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the run is, so that it stops as on Ctrl-C."""


@contextmanager
def _sigterm_as_interrupt():
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        raise Terminated()

    old = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


def _launch(args) -> int:
    """Re-run this command under torch's elastic launcher with ``--nproc`` processes."""
    from torch.distributed import run as torchrun

    argv = list(getattr(args, "_argv", None) or sys.argv[1:])
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
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError

    try:
        torchrun.main(["--nproc-per-node", str(args.nproc), "--standalone", "-m", "gnnkit", *rest])
    except ChildFailedError as exc:  # the workers printed their own one-line errors above
        rank, first = exc.get_first_failure()  # the others may only have been stopped by the launcher
        sys.stderr.write(f"gnnkit: error: process {rank} of {args.nproc} failed first (exit status {first.exitcode}); "
                         "its message is above\n")
        return 2 if first.exitcode == 2 else 1
    return 0


def run(args) -> int:
    check_values(args)
    names = factory.plugin_names(args)  # name errors before any loading (and before launching processes)
    if args.metrics:  # unknown metric names likewise
        from ..metrics import as_metrics

        as_metrics(args.metrics)
    if args.nproc and args.nproc > 1 and dist.env_world_size() == 1:
        return _launch(args)
    seeds = list(range(args.seed_start, args.seed_start + args.seeds))
    outputs.check_paths(args)
    outputs.check_reuse(args, seeds)
    from .threads import apply as set_threads, choose_workers

    args._threads = set_threads(args.threads)  # (threads, why): --threads, else a count that fits the machine
    args._workers = choose_workers(args.num_workers, args._threads[0])  # (sampling threads, why)
    if names.task == "graph":  # many small graphs: cross validation or OGB's split (graph_runs.py)
        from . import graph_runs

        return graph_runs.run(args, names)
    from ..trainer import resolve_device

    started = dist.init(resolve_device(args.device), args.backend)
    try:
        with _sigterm_as_interrupt():
            return _run(args, names, seeds)
    except KeyboardInterrupt as exc:
        _interrupted(args, exc)
        return 143 if isinstance(exc, Terminated) else 130
    finally:
        dist.shutdown(started)


def _interrupted(args, exc) -> None:
    """Say what an interrupted run leaves and how to continue it."""
    from ..checkpoint import listing

    what = "terminated (SIGTERM)" if isinstance(exc, Terminated) else "interrupted"
    newest = sorted((f for d in outputs.seed_dirs(args.checkpoint_dir, range(args.seed_start,
                    args.seed_start + args.seeds)) if os.path.isdir(d) for f in listing(d)), key=os.path.getmtime)
    argv = [a for a in (getattr(args, "_argv", None) or sys.argv[1:]) if a not in ("--overwrite", "--resume")]
    where = f"newest checkpoint {newest[-1]}" if newest else "no checkpoint (pass --checkpoint-dir to keep epochs)"
    results = os.path.join(args.out, "results.json")
    kept = f"finished seeds in {results}" if os.path.isfile(results) else "no seed finished"
    sys.stderr.write(f"gnnkit: {what}; {kept}; {where}; resume with: "
                     f"gnnkit {shlex.join([*argv, '--resume'])}\n")


def _trainer_kwargs(args, seed: int, info: dict) -> dict:
    from ..trainer import Trainer

    sub = f"seed-{seed}"
    kwargs = dict(max_epochs=args.epochs, lr=args.lr, weight_decay=args.weight_decay, optimizer=args.optimizer,
                  device=args.device, seed=seed, patience=args.patience, eval_every=args.eval_every,
                  metric=args.metric, progress=not args.no_progress, inference_batch_size=args.inference_batch_size,
                  checkpoint_dir=os.path.join(args.checkpoint_dir, sub) if args.checkpoint_dir else None,
                  log_dir=os.path.join(args.log_dir, sub) if args.log_dir else None, backend=args.backend,
                  precision=args.precision, num_workers=args._workers[0], prefetch=args.prefetch,
                  metrics=tuple(args.metrics or ()), scan_group=args.scan_group,
                  checkpoint_every_steps=args.checkpoint_every_steps)
    if "run_info" in inspect.signature(Trainer.__init__).parameters:
        kwargs["run_info"] = info
    if args.lr_step:
        from ..callbacks import StepLR

        kwargs["callbacks"] = [StepLR(args.lr_step, args.lr_gamma)]
    return kwargs


def _fit(args, names, data, seed: int, info: dict, first: bool) -> tuple:
    """Build one seed's parts (in the order that fixes the seeded weights) and train them."""
    from ..trainer import Trainer, seed_everything

    task = factory.build_task(args, names)
    run_data = factory.seed_data(args, data, seed)
    strategy = factory.build_strategy(args, names)
    seed_everything(seed)
    model = factory.build_model(args, run_data, names, strategy)
    if first:  # room for one checkpoint, now that its size is known
        outputs.check_paths(args, outputs.checkpoint_bytes(model))
    trainer = Trainer(task=task, sampler=factory.build_sampler(args, names), strategy=strategy,
                      escape=factory.build_escape(args, names), **_trainer_kwargs(args, seed, info))
    result = trainer.fit(model, run_data, ckpt_path="last" if (args.resume and args.checkpoint_dir) else None)
    record = {"seed": seed, "val": result["val"], "test": result["test"], "epochs": result["epochs"],
              "best_epoch": result["best_epoch"], "seconds": round(result["seconds"], 3),
              "peak_rss_mb": round(result["peak_rss_mb"], 1), **task.run_summary(result)}
    for key in ("peak_cuda_mb",):
        if key in result:
            record[key] = round(result[key], 1)
    if "escape" in result:
        record["escape"] = result["escape"]
    if dist.is_main():  # the selected model as a file gnnkit predict / evaluate / export read
        from .model_io import save_trained_model

        saved = save_trained_model(args, names, model, data, seed, record, task.metric, fingerprint=info["fingerprint"])
        if saved:
            record["model_file"] = saved
    return task, record, result.get("history")


def _features_in_precision(data, precision: str):
    """Under a mixed precision, ``data.x`` held in its half type once, here, instead of the float32
    tensor beside the Trainer's half copy for the whole run (half the feature memory)."""
    import torch

    from ..precision import half_dtype

    half, x = half_dtype(precision), getattr(data, "x", None)
    if half is not None and isinstance(x, torch.Tensor) and x.is_floating_point() and x.dtype != half:
        data.x = x.to(half)
    return data


def _run(args, names, seeds) -> int:
    factory.build_task(args, names)  # the task's option errors before loading
    with dist.main_first():  # rank 0 writes any processed files while the others wait
        data = factory.load_dataset(args, names)
    info = factory.run_info(args, names, data)  # the fingerprint of the data as loaded
    data = _features_in_precision(data, args.precision)
    if dist.is_main():
        from ..trainer import resolve_device

        print(f"training: {factory.describe(data, names, args, resolve_device(args.device))}", flush=True)
    model_name = "tgn" if factory.takes_events(names.task) else args.model
    header = {"dataset": str(args.dataset), "model": model_name, "task": names.task, "sampler": names.sampler,
              "strategy": names.strategy, "escape": names.escape, "metric": None, "world_size": dist.world_size(),
              "settings": factory.settings(args, names)}
    if getattr(args, "_config", None):  # the config file as read (its path and its values)
        header["config"] = args._config
    if getattr(args, "_threads", None):  # the count used (bitwise equal runs need the same count)
        header["threads"] = {"count": args._threads[0], "why": args._threads[1]}
    if getattr(args, "_workers", None):
        header["num_workers"] = {"count": args._workers[0], "why": args._workers[1]}
    results = outputs.Results(args.out, seeds, info, header, getattr(args, "_argv", None), write=dist.is_main(),
                              epochs=args.epochs)
    if args.resume:
        results.check_summary()
    if dist.is_main():
        outputs.clear_earlier(args, seeds)
    task = None
    for i, seed in enumerate(seeds):
        if args.resume and results.kept(seed) is not None:
            continue
        task, record, history = _fit(args, names, data, seed, info, first=(i == 0))
        header["metric"] = task.metric
        results.add(record, history)
        if dist.is_main():
            print(f"seed {seed}: val {_fmt(record['val'])}  test {_fmt(record['test'])}  "
                  f"epochs {record['epochs']}  {record['seconds']:.1f}s", flush=True)
    if header["metric"] is None:
        header["metric"] = (task or factory.build_task(args, names)).metric
    summary = results.summary(complete=True)
    if dist.is_main():
        print(f"{header['metric']}: val {_fmt(summary['val_mean'])} ± {_fmt(summary['val_std'])}  "
              f"test {_fmt(summary['test_mean'])} ± {_fmt(summary['test_std'])}  ({len(summary['runs'])} seeds) "
              f"-> {os.path.join(args.out, 'results.json')}")
    return 0


def _fmt(v) -> str:
    return "n/a" if v is None else f"{v:.4f}"
