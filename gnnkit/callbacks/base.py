"""The callback interface.

Order of calls in ``Trainer.fit``::

    on_fit_start
    for each epoch:
        on_epoch_start
        for each batch: on_batch_end
        on_epoch_end            (train figures of the epoch)
        on_validation_end       (every ``eval_every`` epochs; figures of all splits)
        on_plateau              (after ``patience`` validations without improvement; after the escape)
        on_epoch_complete       (end of the epoch: early stopping, then the checkpoint, then the bar)
        on_checkpoint           (from the checkpoint writer, after the file is written)
    on_fit_end

Callbacks are called in the Trainer's order: model selection, the user's callbacks, then the CSV
logger, early stopping, checkpointing and the progress bar. ``on_epoch_end``,
``on_validation_end`` and ``on_epoch_complete`` may return a :class:`~gnnkit.context.Control`
(``stop=True`` ends training after this epoch). Callbacks belong to the loop: they receive the
Trainer and may read it. Their ``state_dict`` goes into checkpoints under ``state_key`` (the class
name unless set), so adding or removing a callback does not break a resume.
"""
from __future__ import annotations

from typing import Any, Optional


class Callback:
    #: key of this callback's state in checkpoints (None: the class name)
    state_key: Optional[str] = None

    def key(self) -> str:
        return self.state_key or type(self).__name__

    def on_fit_start(self, trainer) -> None: ...
    def on_fit_end(self, trainer) -> None: ...
    def on_epoch_start(self, trainer, epoch: int) -> None: ...
    def on_batch_end(self, trainer, batch, outputs: dict) -> None: ...
    def on_epoch_end(self, trainer, epoch: int, logs: dict) -> Any: ...
    def on_validation_end(self, trainer, metrics: dict) -> Any: ...
    def on_plateau(self, trainer) -> None: ...
    def on_epoch_complete(self, trainer, epoch: int) -> Any: ...
    def on_checkpoint(self, trainer, path: str) -> None: ...

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass
