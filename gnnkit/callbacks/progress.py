"""The progress bar: one tqdm step per epoch with the latest figures (main process only)."""
from __future__ import annotations

from tqdm.auto import tqdm

from .base import Callback


class ProgressBar(Callback):
    def __init__(self, enabled: bool = True):
        self.enabled, self.bar = enabled, None

    def on_fit_start(self, trainer) -> None:
        self.bar = tqdm(total=trainer.max_epochs, initial=trainer.start_epoch, desc="train", unit="epoch",
                        disable=not (self.enabled and trainer.ctx.is_main), dynamic_ncols=True, leave=False)

    def on_epoch_complete(self, trainer, epoch: int) -> None:
        self.bar.update(1)
        last = list(trainer.history[-1].items())[1:5] if trainer.history else []
        self.bar.set_postfix({k: f"{v:.4f}" for k, v in last})

    def on_fit_end(self, trainer) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
