"""Early stopping: end training after ``patience`` validations without a better model."""
from __future__ import annotations

from typing import Optional

from ..context import Control
from ..errors import GnnkitError
from .base import Callback


class EarlyStopping(Callback):
    """Stops when the model selection has seen ``patience`` validations in a row without
    improvement (counted after the plateau's escape, which restarts the count when accepted).
    "Improvement" is in the monitored figure's declared direction (:class:`ModelSelection`; a
    user metric declares its own, :mod:`gnnkit.metrics`), so a lower-is-better figure stops when
    it has not fallen."""

    def __init__(self, patience: int):
        if patience < 1:
            raise GnnkitError(f"patience must be >= 1 or None, got {patience}")
        self.patience = patience

    def on_epoch_complete(self, trainer, epoch: int) -> Optional[Control]:
        return Control(stop=True) if trainer.selection.since_improve >= self.patience else None
