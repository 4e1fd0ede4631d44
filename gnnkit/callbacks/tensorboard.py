"""TensorBoard event files: the figures of every epoch in ``log_dir`` (main process only).

Added by the Trainer beside the CSV log when ``log_dir`` is given and the ``tensorboard`` package is
installed (:func:`available`); without it nothing is written and training goes on. Scalars are
written with ``torch.utils.tensorboard.SummaryWriter`` at step = epoch: the training figures of the
epoch as ``epoch/<name>`` (``epoch/train_loss``: the loss averaged over its batches) and each evaluation's
``<split>_<metric>`` as ``<split>/<metric>`` (``val/accuracy``...), so TensorBoard groups splits.
A resumed run appends a new event file in the same folder (TensorBoard merges them by step).
"""
from __future__ import annotations

import importlib.util
import math

from .base import Callback


def available() -> bool:
    """Whether the ``tensorboard`` package (what ``torch.utils.tensorboard`` needs) is installed."""
    try:
        return importlib.util.find_spec("tensorboard") is not None
    except (ImportError, ValueError):
        return False


def _tag(key: str) -> str:
    split, sep, metric = key.partition("_")
    return f"{split}/{metric}" if sep and split in ("train", "val", "test") else key


class TensorBoardLogger(Callback):
    def __init__(self, log_dir: str):
        self.log_dir, self.writer = log_dir, None

    def on_fit_start(self, trainer) -> None:
        if trainer.ctx.is_main:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(self.log_dir)

    def _write(self, tag: str, value, step: int) -> None:
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            self.writer.add_scalar(tag, float(value), step)

    def on_epoch_end(self, trainer, epoch: int, logs: dict) -> None:
        if self.writer is not None:
            for key, value in (logs or {}).items():
                self._write(f"epoch/{key}", value, epoch)

    def on_validation_end(self, trainer, metrics: dict) -> None:
        if self.writer is not None:
            for key, value in metrics.items():
                self._write(_tag(key), value, trainer.epoch)
            self.writer.flush()

    def on_fit_end(self, trainer) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None
