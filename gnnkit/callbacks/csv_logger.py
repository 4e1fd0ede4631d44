"""CSV logging: one row of figures per validation in ``log_dir/metrics.csv`` (main process)."""
from __future__ import annotations

import csv
import io
import os
from typing import Any

from ..fileio import atomic_write_bytes
from .base import Callback


class CSVLogger(Callback):
    def __init__(self, log_dir: str):
        self.path = os.path.join(log_dir, "metrics.csv")
        self.rows: list[dict] = []

    def on_validation_end(self, trainer, metrics: dict) -> None:
        row = {"epoch": trainer.epoch, "seconds": round(trainer.elapsed, 4), **trainer.last_train_logs, **metrics}
        self.rows.append(row)
        if not trainer.ctx.is_main:
            return
        keys: list[str] = []
        for r in self.rows:
            keys += [k for k in r if k not in keys]
        text = io.StringIO(newline="")
        writer = csv.DictWriter(text, fieldnames=keys)
        writer.writeheader()
        writer.writerows(self.rows)
        atomic_write_bytes(self.path, text.getvalue().encode())

    def state_dict(self) -> dict[str, Any]:
        return {"rows": self.rows}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.rows = list(state.get("rows", []))
