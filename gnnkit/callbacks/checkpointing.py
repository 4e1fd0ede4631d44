"""Checkpointing: write ``DIR/epoch-NNNNNN.pt`` after every epoch and keep the newest ``keep``.

With ``every_steps = N`` also ``DIR/epoch-E-step-K.pt`` every ``N`` steps inside an epoch (not after
its last step: the epoch's own checkpoint follows). Resuming one draws the epoch's first ``K``
batches again without training on them (their features unread when they come from an on-disk
store), so the run goes on with the batch, the weights and the random state it stopped at: equal
to the uninterrupted run bit for bit on CPU. Refused for a sampler whose batches depend on the steps
(``wants_feedback``: MVS), which cannot be drawn again without them, and for a task whose steps
change state that checkpoints do not hold (``resumes_mid_epoch = False``: temporal links).

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
    def __init__(self, directory: str, keep: int = 2, every_steps: Optional[int] = None):
        if keep < 1:
            raise GnnkitError(f"keep_checkpoints must be >= 1, got {keep}")
        if every_steps is not None and every_steps < 1:
            raise GnnkitError(f"checkpoint_every_steps must be >= 1 or None, got {every_steps}")
        self.directory, self.keep, self.every_steps = directory, keep, every_steps
        self.last_path: Optional[str] = None

    def on_fit_start(self, trainer) -> None:
        """Rank 0 checks the folder (and creates it); every rank raises the same error, if any."""
        if self.every_steps and getattr(trainer.sampler, "wants_feedback", False):
            raise GnnkitError(f"checkpoint_every_steps resumes an epoch by drawing its first batches again; the "
                              f"{trainer.sampler.name} sampler's batches depend on the steps: checkpoint per epoch")
        if self.every_steps and not getattr(trainer.task, "resumes_mid_epoch", True):
            raise GnnkitError(f"checkpoint_every_steps: the {trainer.task.name} task's steps change state that "
                              "checkpoints do not hold, so it cannot resume inside an epoch: checkpoint per epoch")
        problem = self._problem(trainer.resume_position) if trainer.ctx.is_main else None
        problem = trainer.ctx.broadcast(problem)
        if problem:
            raise GnnkitError(problem)

    def _problem(self, position: Optional[tuple]) -> Optional[str]:
        if os.path.exists(self.directory) and not os.path.isdir(self.directory):
            return f"checkpoint_dir {self.directory} is a file, not a folder"
        try:
            os.makedirs(self.directory, exist_ok=True)
        except OSError as exc:
            return f"cannot create checkpoint_dir {self.directory}: {exc.strerror or exc}"
        if not os.access(self.directory, os.W_OK):
            return f"checkpoint_dir {self.directory} is not writable"
        foreign = [p for p in ckpt.listing(self.directory) if position is None or ckpt.order_of(p) > position]
        if not foreign:
            return None
        how = ("it holds checkpoints newer than the one resumed" if position is not None else
               "it already holds checkpoints and this run did not resume from them")
        return (f"checkpoint_dir {self.directory} belongs to another run: {how} ({os.path.basename(foreign[0])}); "
                "resume with ckpt_path='last', or use an empty folder")

    def on_batch_end(self, trainer, batch, outputs: dict) -> None:
        step = trainer.step_in_epoch
        if self.every_steps and step % self.every_steps == 0 and step < trainer.steps_in_epoch:
            self._write(trainer, ckpt.path_for(self.directory, trainer.epoch, step), in_epoch=True)

    def on_epoch_complete(self, trainer, epoch: int) -> None:
        self._write(trainer, ckpt.path_for(self.directory, epoch), in_epoch=False)

    def _write(self, trainer, path: str, in_epoch: bool) -> None:
        if trainer.ctx.is_main:
            ckpt.save(trainer.state_dict(in_epoch=in_epoch), path)
            ckpt.prune(self.directory, self.keep)
            self.last_path = path
            trainer.notify("on_checkpoint", path)
        trainer.ctx.barrier()
