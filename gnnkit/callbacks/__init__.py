"""Callbacks: small hooks around the Trainer's loop, every one a no-op by default.

The loop's own duties beyond running batches are callbacks too: :class:`ModelSelection` (the best
weights, ties broken by validation loss), :class:`EarlyStopping`, :class:`Checkpointing` (files and
pruning), :class:`CSVLogger`, :class:`TensorBoardLogger` (with ``log_dir`` when ``tensorboard`` is
installed) and :class:`ProgressBar`; :class:`StepLR` is a learning-rate schedule to add. See :class:`Callback` for the order of calls.
"""
from .base import Callback
from .checkpointing import Checkpointing
from .csv_logger import CSVLogger
from .early_stopping import EarlyStopping
from .lr_schedule import StepLR
from .progress import ProgressBar
from .selection import ModelSelection
from .tensorboard import TensorBoardLogger
from .tensorboard import available as tensorboard_available

__all__ = ["Callback", "ModelSelection", "EarlyStopping", "Checkpointing", "CSVLogger", "ProgressBar", "StepLR",
           "TensorBoardLogger", "loop_callbacks"]


def loop_callbacks(selection: ModelSelection, user, *, log_dir=None, patience=None, checkpoint_dir=None,
                   keep_checkpoints: int = 2, checkpoint_every_steps=None, progress: bool = True) -> list:
    """The Trainer's callbacks in calling order: model selection, the user's, the CSV logger (and the
    TensorBoard logger when ``tensorboard`` is installed and the user gave none), early stopping
    (``patience``: ``None``/0 for none), checkpointing, the progress bar. Refuses two callbacks with
    the same state key (their states would overwrite each other in checkpoints)."""
    user = list(user)
    board = tensorboard_available() and not any(isinstance(cb, TensorBoardLogger) for cb in user)
    logs = [CSVLogger(log_dir), *([TensorBoardLogger(log_dir)] if board else [])] if log_dir else []
    cbs = [selection, *user, *logs,
           *([EarlyStopping(patience)] if patience else []),
           *([Checkpointing(checkpoint_dir, keep_checkpoints, checkpoint_every_steps)] if checkpoint_dir else []), ProgressBar(progress)]
    keys = [cb.key() for cb in cbs]
    twice = sorted({k for k in keys if keys.count(k) > 1})
    if twice:
        from ..errors import GnnkitError

        raise GnnkitError(f"two callbacks share a state key ({', '.join(twice)}); give one a distinct state_key")
    return cbs
