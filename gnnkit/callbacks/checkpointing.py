"""Checkpointing: write ``DIR/epoch-NNNNNN.pt`` after every epoch and keep the newest ``keep``.

A folder is one run's: at fit start a folder that already holds checkpoints is refused unless this
run resumed from it and none of them is newer than the resumed epoch (a fresh run in an old run's
folder would otherwise have its own files pruned in favour of the old run's newer-numbered ones).
Unreadable checkpoints newer than the one resumed were set aside by the resume
(:func:`gnnkit.checkpoint.latest`), so they hold no slot.
"""
from __future__ import annotations

import os
from typing import Optional

from .. import checkpoint as ckpt
from ..errors import GnnkitError
from .base import Callback


class Checkpointing(Callback):
    def __init__(self, directory: str, keep: int = 2):
        if keep < 1:
            raise GnnkitError(f"keep_checkpoints must be >= 1, got {keep}")
        self.directory, self.keep = directory, keep
        self.last_path: Optional[str] = None

    def on_fit_start(self, trainer) -> None:
        """Rank 0 checks the folder (and creates it); every rank raises the same error, if any."""
        problem = self._problem(trainer.start_epoch) if trainer.ctx.is_main else None
        problem = trainer.ctx.broadcast(problem)
        if problem:
            raise GnnkitError(problem)

    def _problem(self, start_epoch: int) -> Optional[str]:
        if os.path.exists(self.directory) and not os.path.isdir(self.directory):
            return f"checkpoint_dir {self.directory} is a file, not a folder"
        try:
            os.makedirs(self.directory, exist_ok=True)
        except OSError as exc:
            return f"cannot create checkpoint_dir {self.directory}: {exc.strerror or exc}"
        if not os.access(self.directory, os.W_OK):
            return f"checkpoint_dir {self.directory} is not writable"
        foreign = [p for p in ckpt.listing(self.directory) if ckpt.epoch_of(p) >= start_epoch]
        if not foreign:
            return None
        how = ("it holds checkpoints newer than the one resumed" if start_epoch else
               "it already holds checkpoints and this run did not resume from them")
        return (f"checkpoint_dir {self.directory} belongs to another run: {how} ({os.path.basename(foreign[0])}); "
                "resume with ckpt_path='last', or use an empty folder")

    def on_epoch_complete(self, trainer, epoch: int) -> None:
        if trainer.ctx.is_main:
            path = ckpt.path_for(self.directory, epoch)
            ckpt.save(trainer.state_dict(), path)
            ckpt.prune(self.directory, self.keep)
            self.last_path = path
            trainer.notify("on_checkpoint", path)
        trainer.ctx.barrier()
