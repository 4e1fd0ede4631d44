"""What ``gnnkit predict``, ``evaluate`` and ``export`` share: the model-file argument, the dataset
options, loading the graph a saved model is applied to, and the model file ``gnnkit train`` writes.

A command module without ``NAME`` (the CLI lists only modules that define one).
"""
from __future__ import annotations

import argparse
import logging
import os
from typing import Any, Dict, Optional

from ..errors import GnnkitError

log = logging.getLogger("gnnkit")


def add_model_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", metavar="MODEL", help="a model file written by gnnkit train (OUT/model-seed*.pt)")


def add_inference_argument(p: argparse.ArgumentParser) -> None:
    from .options import count

    p.add_argument("--inference-batch-size", type=count, default=None,
                   help="rows per chunk of the whole-graph pass (default: the training run's)")


def inference_batch_size(args, record: Dict[str, Any]) -> Optional[int]:
    """``--inference-batch-size``, else the training run's (the same chunks give the same figures)."""
    if args.inference_batch_size is not None:
        if args.inference_batch_size < 1:
            raise GnnkitError(f"--inference-batch-size must be at least 1, got {args.inference_batch_size}")
        return args.inference_batch_size
    value = (record["training"].get("settings") or {}).get("inference_batch_size")
    return value if isinstance(value, int) and value >= 1 else None


def add_dataset_arguments(p: argparse.ArgumentParser) -> None:
    """``--dataset``, ``--root`` and the csbm options (as in ``gnnkit train``)."""
    p.add_argument("--dataset", default=None,
                   help="a known name, a .npz path or a store folder (default: the dataset the model was trained on)")
    p.add_argument("--root", default=None, help="dataset root (default: $GNNKIT_DATA or the project's data/)")
    p.add_argument("--drop-edge-attr", action="store_true",
                   help="remove the graph's edge_attr (implied when the training run dropped them)")
    from ..data.csbm import add_csbm_arguments

    add_csbm_arguments(p)


def _recorded_csbm(args, record: Dict[str, Any]) -> None:
    """Give ``args`` the training run's csbm options when the dataset is the recorded csbm and the
    command line names none (so ``--dataset`` may be left out for a synthetic graph)."""
    from ..data.csbm import csbm_kwargs_from_args

    if csbm_kwargs_from_args(args):
        return
    for key, value in (record["training"].get("settings") or {}).items():
        if key.startswith("csbm_") and value is not None and hasattr(args, key):
            setattr(args, key, value)


def load_graph(args, record: Dict[str, Any]):
    """The graph named by ``--dataset`` (default: the model's training dataset), validated."""
    from .factory import load_graph as factory_load

    dataset = args.dataset
    if dataset is None:
        dataset = record["dataset"].get("name")
        if not dataset:
            raise GnnkitError("the model file names no dataset; pass --dataset")
        if dataset == "csbm" or str(dataset).startswith("csbm:"):
            _recorded_csbm(args, record)
    options = {}
    if args.drop_edge_attr or (record["training"].get("settings") or {}).get("drop_edge_attr"):
        options["drop_edge_attr"] = True
    transform = record["normalization"].get("features")
    if transform:  # the training run's feature transform
        import inspect

        from ..data import load as data_load

        if "transform" not in inspect.signature(data_load).parameters:
            raise GnnkitError(f"the model was trained on features transformed by {transform!r}, "
                              "which this gnnkit cannot apply")
        options["transform"] = transform
    return factory_load(dataset, args, **options)


def load(path: str):
    """``(model, record)`` of a model file (see :mod:`gnnkit.model_file`)."""
    from ..model_file import load_model

    return load_model(path)


def tell(notes) -> None:
    """Print each note on stderr (``gnnkit: note``), as the CLI's other messages."""
    import sys

    for note in notes:
        sys.stderr.write(f"gnnkit: {note}\n")


def model_path(out: str, seed: int) -> str:
    """Where ``gnnkit train --out OUT`` keeps the selected model of ``seed``."""
    return os.path.join(out, f"model-seed{seed}.pt")


def save_trained_model(args, names, model, data, seed: int, record: Dict[str, Any], metric: Optional[str],
                       fingerprint: Optional[str] = None):
    """Write the selected model of one seed of ``gnnkit train`` to ``OUT/model-seed{seed}.pt``.

    Only a node-classification model of gnnkit's families trained by backpropagation is a model
    file (its output is the class logits); for anything else nothing is written and ``None`` is
    returned. Returns the path written otherwise. ``data``: the dataset as loaded (before a
    per-seed split); ``fingerprint``: the run's (``run_info``), else computed from ``data``.
    """
    from ..model_file import save_model
    from ..models import MODELS

    if names.task != "node" or names.strategy != "backprop" or type(model) not in MODELS.values():
        log.debug("no model file: task %s, strategy %s, model %s", names.task, names.strategy, type(model).__name__)
        return None
    from .factory import settings

    path = model_path(args.out, seed)
    figures = {k: record.get(k) for k in ("val", "test", "best_epoch", "epochs")}
    save_model(path, model, data, dataset=str(args.dataset), seed=seed, split=args.split, metric=metric,
               figures=figures, settings=settings(args, names), transform=getattr(args, "transform", None),
               fingerprint=fingerprint)
    return path
