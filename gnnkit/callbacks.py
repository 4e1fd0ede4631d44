"""Callbacks: small hooks around the Trainer's loop, every one a no-op by default.

Order of calls in ``Trainer.fit`` (pinned by ``tests/test_callbacks.py``)::

    on_fit_start
    for each epoch:
        on_epoch_start
        for each batch: on_batch_end
        on_epoch_end            (train figures of the epoch)
        on_validation_end       (every ``eval_every`` epochs; validation figures)
        on_plateau              (when the validation metric has stalled; see Trainer)
        on_checkpoint           (after the epoch's checkpoint is written)
    on_fit_end

The Trainer calls the hooks of its task, sampler, strategy and escape (they derive from
:class:`Callback`) before those of the user's callbacks. ``state_dict``/``load_state_dict`` put a
callback's state into checkpoints so that a resumed run continues where it stopped.
"""
from __future__ import annotations

import csv
import os
from typing import Any


class Callback:
    def on_fit_start(self, trainer) -> None: ...
    def on_fit_end(self, trainer) -> None: ...
    def on_epoch_start(self, trainer, epoch: int) -> None: ...
    def on_batch_end(self, trainer, batch, outputs: dict) -> None: ...
    def on_epoch_end(self, trainer, epoch: int, logs: dict) -> None: ...
    def on_validation_end(self, trainer, metrics: dict) -> None: ...
    def on_plateau(self, trainer) -> None: ...
    def on_checkpoint(self, trainer, path: str) -> None: ...

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass


class CSVLogger(Callback):
    """Appends one row of figures per epoch to ``log_dir/metrics.csv`` (main process only)."""

    def __init__(self, log_dir: str):
        self.path = os.path.join(log_dir, "metrics.csv")
        self.rows: list[dict] = []

    def on_validation_end(self, trainer, metrics: dict) -> None:
        row = {"epoch": trainer.epoch, "seconds": round(trainer.elapsed, 4), **trainer.last_train_logs, **metrics}
        self.rows.append(row)
        if not trainer.is_main:
            return
        os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
        keys: list[str] = []
        for r in self.rows:
            keys += [k for k in r if k not in keys]
        tmp = self.path + ".tmp"
        with open(tmp, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=keys)
            w.writeheader()
            w.writerows(self.rows)
        os.replace(tmp, self.path)

    def state_dict(self) -> dict[str, Any]:
        return {"rows": self.rows}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.rows = list(state.get("rows", []))
