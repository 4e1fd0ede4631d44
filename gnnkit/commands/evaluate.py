"""``gnnkit evaluate MODEL``: the figures of a saved model on a dataset's splits.

The dataset is ``--dataset`` (default: the model's training dataset); a ``--split random:..`` of the
training run is drawn again with the run's seed, so on the training graph the figures are those
``gnnkit train`` reported for that seed. The figures come from the node task scoring the model's
whole-graph output, the computation that ended the training run (``Trainer`` with no epoch).
Prints one line per split; ``--out FILE.json`` also writes them.
"""
from __future__ import annotations

import argparse

from ..errors import GnnkitError
from . import model_io

NAME = "evaluate"
HELP = "recompute a saved model's figures on a dataset's splits"
ORDER = 41


def add_arguments(p: argparse.ArgumentParser) -> None:
    model_io.add_model_argument(p)
    p.add_argument("--out", default=None, help="also write the figures to this .json file")
    model_io.add_inference_argument(p)
    model_io.add_dataset_arguments(p)


def split_data(record: dict, data):
    """``data`` with the training run's random split (same fractions, same seed) when it had one."""
    split = record["training"].get("split")
    if not split:
        return data
    from .factory import seed_data

    seed = record["training"].get("seed")
    if not isinstance(seed, int):
        raise GnnkitError("the model file records a random split but no seed")
    return seed_data(argparse.Namespace(split=split), data, seed)


def figures(model, data, inference_batch_size=None) -> dict:
    """``{"val_accuracy", "val_loss", "test_...", "train_..."}`` of ``model`` on ``data``'s masks."""
    from ..trainer import Trainer

    trainer = Trainer(task="node", max_epochs=0, progress=False, device="cpu",
                      inference_batch_size=inference_batch_size)
    return trainer.fit(model, data)["metrics"]


def run(args) -> int:
    if args.out is not None and not args.out.endswith(".json"):
        raise GnnkitError(f"--out {args.out}: write a .json file")
    model, record = model_io.load(args.model)
    data = model_io.load_graph(args, record)
    from ..model_file import check_schema

    model_io.tell(check_schema(record, data, labels=True))
    result = figures(model, split_data(record, data), model_io.inference_batch_size(args, record))
    for split in ("train", "val", "test"):
        keys = sorted(k for k in result if k.startswith(f"{split}_"))
        print(f"{split}: " + "  ".join(f"{k[len(split) + 1:]} {result[k]:.4f}" for k in keys))
    if args.out:
        from ..fileio import atomic_write_json

        atomic_write_json(args.out, {"model": args.model, "dataset": args.dataset or record["dataset"].get("name"),
                                     "figures": result, "trained": record["training"].get("figures")})
    return 0
