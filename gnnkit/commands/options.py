"""The options of ``gnnkit train``, each declared once, and the checks of their values.

:func:`add_train_options` declares the command layer's options (run, model, data, csbm) and then each
plug-in's own (``Plugin.add_args``). Shared options (``--batch-size``) live here, not in the
plug-ins. :func:`check_values` refuses a bad value with one :class:`~gnnkit.errors.GnnkitError` line
before anything is loaded (sizes that cannot fit in memory are refused by
``gnnkit.data.check_allocation`` before anything is allocated).
"""
from __future__ import annotations

import argparse
import math
import os

from ..errors import GnnkitError

DEFAULT_DATASET = "csbm"


def count(text: str) -> int:
    """An integer option that also accepts ``1e6`` (an integral float written in exponent form)."""
    try:
        return int(text)
    except ValueError:
        pass
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid count {text!r}") from None
    if not math.isfinite(value) or value != int(value):
        raise argparse.ArgumentTypeError(f"invalid count {text!r} (not a whole number)")
    return int(value)


def _workers(text: str):
    """``--num-workers``: ``auto`` or a count >= 0."""
    if text == "auto":
        return text
    value = count(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be auto or >= 0, got {text!r}")
    return value


def _names(text: str) -> tuple:
    """A comma-separated list of names (empty items refused)."""
    names = tuple(n.strip() for n in text.split(","))
    if not all(names):
        raise argparse.ArgumentTypeError(f"empty name in {text!r}")
    return names


def _axes():
    from gnnkit.samplers import Sampler

    from ..escape import Escape
    from ..strategies import Strategy
    from ..tasks import Task

    return Task, Sampler, Strategy, Escape


def _run_options(g, Task, Sampler, Strategy, Escape) -> None:
    g.add_argument("--dataset", default=DEFAULT_DATASET,
                   help="a known name (Cora, ogbn-arxiv, csbm...), a .npz path or an event file "
                        "(default: built-in csbm graph)")
    g.add_argument("--root", default=None, help="dataset root (default: $GNNKIT_DATA or the project's data/)")
    g.add_argument("--task", default=None,
                   help=f"one of: {', '.join(Task.names())} (default: link for ogbl-* datasets, else node)")
    g.add_argument("--sampler", default=None,
                   help=f"one of: {', '.join(Sampler.names())} (default: the task's, full for node)")
    g.add_argument("--strategy", default="backprop", help=f"one of: {', '.join(Strategy.names())}")
    g.add_argument("--escape", default=None, help=f"one of: {', '.join(Escape.names()) or 'none'} (default none)")
    g.add_argument("--epochs", type=count, default=200, help="epochs per run (default 200)")
    g.add_argument("--lr", type=float, default=0.01, help="learning rate (default 0.01)")
    g.add_argument("--weight-decay", type=float, default=5e-4, help="weight decay (default 5e-4)")
    g.add_argument("--optimizer", default="adam", help="adam, adamw or sgd (default adam)")
    g.add_argument("--lr-step", type=count, default=None, help="multiply the learning rate by --lr-gamma every N epochs")
    g.add_argument("--lr-gamma", type=float, default=0.5, help="learning-rate factor of --lr-step (default 0.5)")
    g.add_argument("--patience", type=count, default=None, help="early stop after K evaluations without improvement")
    g.add_argument("--eval-every", type=count, default=1, help="evaluate every N epochs (default 1)")
    g.add_argument("--metric", default=None, help="validation figure that selects the model (default: the task's)")
    g.add_argument("--metrics", type=_names, default=None,
                   help="more figures each evaluation computes: registered metric names, comma-separated (e.g. "
                        "macro_f1,error_rate; see gnnkit.metrics); --metric NAME then selects on one")
    g.add_argument("--seeds", type=count, default=1, help="runs with seeds 0..S-1 (default 1)")
    g.add_argument("--seed-start", type=count, default=0, help="first seed: runs with seeds K..K+S-1 (default 0)")
    g.add_argument("--batch-size", type=count, default=None,
                   help="seeds per batch (neighbor, mvs: default 512) or events per batch (temporal: default 200)")
    g.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1 ... (default auto)")
    g.add_argument("--inference-batch-size", type=count, default=None, help="rows per chunk in full-graph inference")
    g.add_argument("--threads", type=count, default=None,
                   help="CPU threads of this process (default: $OMP_NUM_THREADS if set, else torch's one per "
                        "core capped by the cores the load average leaves idle and by cores per local process)")
    g.add_argument("--nproc", type=count, default=None, help="start N processes on this machine (torchrun)")
    g.add_argument("--backend", default=None, help="process-group backend under torchrun (gloo, nccl)")
    g.add_argument("--no-progress", action="store_true", help="no progress bar")
    g.add_argument("--precision", default="32", choices=("32", "bf16-mixed", "16-mixed"),
                   help="32 (default), bf16-mixed or 16-mixed: half-precision features and autocast")
    g.add_argument("--num-workers", type=_workers, default="auto",
                   help="background threads sampling batches ahead of the step: a number, or auto (default: 1 when "
                        "the load average leaves a core free beside the compute threads, else 0)")
    g.add_argument("--prefetch", type=count, default=2, help="batches each sampling worker keeps ready (default 2)")
    g.add_argument("--scan-group", type=count, default=0, metavar="N",
                   help="read the feature rows of N training batches in one sequential pass over an on-disk store "
                        "(--dataset STORE_DIR): pays when the features are far bigger than the page cache and the "
                        "disk's random reads are slow; holds about N batches of feature rows in memory (default 0: "
                        "each batch reads its own rows)")


def _output_options(g) -> None:
    g.add_argument("--out", default=os.path.join("runs", "train"), help="output folder (default runs/train)")
    g.add_argument("--log-dir", default=None, help="per-epoch metrics.csv per seed under this folder (and TensorBoard event "
                        "files when the tensorboard package is installed)")
    g.add_argument("--checkpoint-dir", default=None, help="write checkpoints per seed under this folder")
    g.add_argument("--checkpoint-every-steps", type=count, default=None, metavar="N",
                   help="also checkpoint every N training steps inside an epoch (for epochs of hours; --resume "
                        "goes on from the step it stopped at, bit for bit; needs --checkpoint-dir)")
    g.add_argument("--resume", action="store_true",
                   help="continue the run in --out (finished seeds kept) from the newest checkpoint, if any")
    g.add_argument("--overwrite", action="store_true",
                   help="replace the results in --out and the checkpoints in --checkpoint-dir of an earlier run")


def _model_options(g) -> None:
    from ..models import MODELS
    from ..plugins import MODEL_FACTORIES

    g.add_argument("--model", default="gcn", help=f"one of: {', '.join(sorted([*MODELS, *MODEL_FACTORIES]))} "
                                                  "(default gcn; TGN for temporal-link)")
    g.add_argument("--hidden", type=count, default=16, help="hidden width (default 16)")
    g.add_argument("--layers", type=count, default=2, help="graph layers, head included (default 2)")
    g.add_argument("--dropout", type=float, default=None, help="dropout probability (default 0.5; TGN 0.1)")
    g.add_argument("--norm", default="none", help="none, batch or layer normalization between layers")
    g.add_argument("--residual", action="store_true", help="residual connections between layers")
    g.add_argument("--decoder", default="dot", help="link task: edge decoder, dot or mlp (Hadamard MLP)")
    for flag, default, what in (("--memory-dim", 100, "memory width"), ("--time-dim", 100, "time encoding width"),
                                ("--embedding-dim", 100, "embedding width"), ("--attention-heads", 2,
                                                                              "attention heads")):
        g.add_argument(flag, type=count, default=default, help=f"TGN: {what} (default {default})")
    g.add_argument("--aggregator", default="last", help="TGN: message aggregator, last or mean")
    g.add_argument("--message-function", default="identity", help="TGN: identity or mlp")
    g.add_argument("--temporal-embedding", default="transformer",
                   help="TGN: transformer (PyG example's TransformerConv, default) or attention (the authors' TGN-attn)")


def _data_options(g) -> None:
    g.add_argument("--split", default=None,
                   help="node task: replace the dataset's split: 'random:TRAIN,VAL' fractions (rest test), "
                        "drawn per seed")
    g.add_argument("--transform", default=None, metavar="NAMES",
                   help="PyG transforms applied to the graph after loading, comma-separated, in order: "
                        "NormalizeFeatures, ToUndirected, AddSelfLoops, RemoveIsolatedNodes")
    g.add_argument("--sort-events", action="store_true", help="event files: sort unsorted event times")
    g.add_argument("--drop-edge-attr", action="store_true",
                   help="drop the graph's edge_attr (gnnkit's models cannot use edge features)")
    g.add_argument("--folds", type=count, default=None,
                   help="graph task on a TU dataset: stratified cross-validation folds, seeded by --seed-start "
                        "(default 10)")
    g.add_argument("--cv-protocol", default=None,
                   help="graph task on a TU dataset: errica (default: model selection on an inner validation "
                        "split) or gin (best epoch of the mean validation curve)")


def add_train_options(p: argparse.ArgumentParser) -> None:
    """Every option of ``gnnkit train``: the command layer's, csbm's, then each plug-in's own."""
    Task, Sampler, Strategy, Escape = _axes()
    _run_options(p.add_argument_group("run"), Task, Sampler, Strategy, Escape)
    _output_options(p.add_argument_group("output"))
    _model_options(p.add_argument_group("model"))
    _data_options(p.add_argument_group("data"))
    from ..data.csbm import add_csbm_arguments

    add_csbm_arguments(p)
    for axis in (Task, Sampler, Strategy, Escape):
        group = p.add_argument_group(f"{axis.axis} options")
        for name in axis.names():
            before = {a.dest for a in p._actions}  # noqa: SLF001 - argparse has no API for it
            _add_plugin_args(axis, name, group)
            for action in p._actions:  # noqa: SLF001
                if action.dest not in before:
                    PLUGIN_OPTIONS[action.dest] = (axis.axis, name)
    from ..plugins import installed

    extra = installed()
    if extra:
        p.epilog = "installed plug-ins (entry points): " + "; ".join(extra)


def _add_plugin_args(axis, name: str, group) -> None:
    """``add_args`` of one plug-in; an installed (entry-point) plug-in whose ``add_args`` fails is
    dropped with one warning naming its distribution, and refused by name afterwards."""
    from ..plugins import BROKEN, ORIGINS, log

    origin = ORIGINS.get((axis.axis, name))
    if origin is None:
        axis.lookup(name).add_args(group)
        return
    try:
        axis.lookup(name).add_args(group)
    except Exception as exc:  # noqa: BLE001 - a third-party plug-in's failure is reported, not raised
        axis._registry.pop(name, None)
        ORIGINS.pop((axis.axis, name), None)
        BROKEN[name] = (f"plug-in {name!r} of {origin}: its add_args failed "
                        f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})")
        log.warning("%s; skipped", BROKEN[name])


#: ``{dest: (axis, plug-in name)}`` of each plug-in's own options (filled by :func:`add_train_options`)
PLUGIN_OPTIONS: dict = {}


# ------------------------------------------------------------------------------------ value checks
_AT_LEAST_1 = ("epochs", "seeds", "eval_every", "patience", "hidden", "layers", "inference_batch_size", "nproc",
               "batch_size", "threads", "lr_step", "prefetch", "memory_dim", "time_dim", "embedding_dim", "attention_heads",
               "checkpoint_every_steps")


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def check_values(args) -> None:
    """Refuse a value no run can use, naming the option (before any data is loaded)."""
    for name in _AT_LEAST_1:
        value = getattr(args, name, None)
        if value is not None and value < 1:
            raise GnnkitError(f"{_flag(name)} must be at least 1, got {value}")
    if getattr(args, "folds", None) is not None and args.folds < 2:
        raise GnnkitError(f"--folds must be at least 2, got {args.folds}")
    if getattr(args, "checkpoint_every_steps", None) and not args.checkpoint_dir:
        raise GnnkitError("--checkpoint-every-steps needs --checkpoint-dir (where the checkpoints go)")
    if args.seed_start < 0:
        raise GnnkitError(f"--seed-start must be >= 0, got {args.seed_start}")
    if not (math.isfinite(args.lr) and args.lr > 0):
        raise GnnkitError(f"--lr must be a positive number, got {args.lr}")
    if not (math.isfinite(args.weight_decay) and args.weight_decay >= 0):
        raise GnnkitError(f"--weight-decay must be >= 0, got {args.weight_decay}")
    if not 0 < args.lr_gamma <= 1:
        raise GnnkitError(f"--lr-gamma must be in (0, 1], got {args.lr_gamma}")
    if args.dropout is not None and not 0 <= args.dropout < 1:
        raise GnnkitError(f"--dropout must be in [0, 1), got {args.dropout}")
    if args.optimizer not in ("adam", "adamw", "sgd"):
        raise GnnkitError(f"--optimizer must be adam, adamw or sgd, got {args.optimizer!r}")
    from ..models import MODELS
    from ..plugins import BROKEN, MODEL_FACTORIES, load_entry_points

    load_entry_points()
    if args.model not in MODELS and args.model not in MODEL_FACTORIES:
        if args.model in BROKEN:
            raise GnnkitError(BROKEN[args.model])
        raise GnnkitError(f"unknown model {args.model!r}; known: {', '.join(sorted([*MODELS, *MODEL_FACTORIES]))}")
    check_device(args.device)
    parse_split(args.split)
    check_transform(args)


def check_transform(args) -> None:
    """``--transform``: every name known (one-line error listing the known ones), written canonically
    (``normalizefeatures`` -> ``NormalizeFeatures``) so that a run's identity does not depend on case."""
    spec = getattr(args, "transform", None)
    if spec is None:
        return
    from ..data.transforms import describe

    args.transform = describe(spec) or None


def check_device(device: str) -> None:
    import torch

    if device == "auto":
        return
    try:
        torch.device(device)
    except (RuntimeError, ValueError):
        raise GnnkitError(f"--device {device!r} is not a device; use auto, cpu, cuda or cuda:N") from None


def parse_split(spec):
    """``"random:0.6,0.2"`` -> ``(0.6, 0.2)``; None -> None. Fractions in (0, 1), train + val < 1."""
    if spec is None:
        return None
    kind, _, body = spec.partition(":")
    try:
        train, val = (float(v) for v in body.split(","))
    except ValueError:
        train = val = None
    if kind != "random" or train is None:
        raise GnnkitError(f"--split must look like random:0.64,0.16, got {spec!r}")
    if not (0 < train < 1 and 0 <= val < 1 and train + val < 1):
        raise GnnkitError(f"--split {spec}: fractions must be in (0, 1) with train + val < 1 (the rest is test)")
    return train, val
