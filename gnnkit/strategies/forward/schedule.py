"""ForwardGNN's training schedule: which layer trains, for how long, and when training ends.

``sequential`` trains layer after layer; a layer stops at its own early stop on the validation
figure of the combined prediction of the layers so far (checked every ``val_every`` epochs,
``patience`` checks, at most ``layer_epochs`` epochs and an equal share of the run's remaining
``max_epochs``), then its best weights are restored. ``top2loss`` updates every layer every step
and has one early stop over at most ``layer_epochs`` epochs in all.

:class:`Schedule` is plain state plus the rules; the strategy asks it after every epoch
(:meth:`Schedule.tick`, :meth:`Schedule.record`) and acts on what it says.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Optional

from ...errors import GnnkitError

SCHEDULES = ("sequential", "top2loss")
#: the fields a checkpoint keeps (the rest is fixed by the constructor's arguments)
STATE = ("layer", "layer_epochs_done", "epochs_used", "budget", "best", "bad", "done", "best_state")


@dataclass
class Schedule:
    """The schedule of ``num_layers`` layers over ``max_epochs`` epochs (see the module docstring)."""
    kind: str
    num_layers: int
    max_epochs: int
    patience: int
    val_every: int
    layer_epochs: int
    layer: int = 0
    layer_epochs_done: int = 0
    epochs_used: int = 0
    budget: int = 0
    best: Optional[float] = None
    bad: int = 0
    done: bool = False
    best_state: Any = None

    def __post_init__(self) -> None:
        if self.kind == "sequential" and self.max_epochs < self.num_layers:
            raise GnnkitError(f"the sequential schedule trains {self.num_layers} layers one after another: "
                              f"max_epochs must be at least {self.num_layers}, got {self.max_epochs}")
        self.budget = self.next_budget()

    @property
    def sequential(self) -> bool:
        return self.kind == "sequential"

    def next_budget(self) -> int:
        """Epochs for the current phase: ``min(layer_epochs, share of the remaining epochs)``."""
        remaining = self.max_epochs - self.epochs_used
        if not self.sequential:
            return max(1, min(self.layer_epochs, remaining))
        return max(1, min(self.layer_epochs, remaining // (self.num_layers - self.layer)))

    def trained(self) -> int:
        """Layers that have been trained so far (the one in training counts once it had an epoch)."""
        if self.done or not self.sequential:
            return self.num_layers
        return max(1, self.layer + (1 if self.layer_epochs_done > 0 else 0))

    def frozen(self, trained: int) -> int:
        """Layers below this one are frozen (their outputs can be memoized)."""
        return 0 if self.done else min(self.layer, trained - 1)

    def tick(self, epoch: int) -> tuple[bool, bool]:
        """Count one epoch; ``(check, end)``: a validation check is due, the phase's budget is spent."""
        self.layer_epochs_done += 1
        self.epochs_used += 1
        check = self.layer_epochs_done % self.val_every == 0
        return check, self.layer_epochs_done >= self.budget or epoch + 1 >= self.max_epochs

    def record(self, value: float, higher_is_better: bool, check: bool, snapshot: Callable[[], Any]) -> None:
        """Take the validation ``value``: a new best keeps ``snapshot()``; a check without one counts."""
        better = self.best is None or (value > self.best if higher_is_better else value < self.best)
        if better and not math.isnan(value):
            self.best, self.bad, self.best_state = value, 0, snapshot()
        elif check:
            self.bad += 1

    def phase_over(self, end: bool) -> bool:
        return self.bad >= self.patience or end

    def next_layer(self) -> None:
        """Move to the next layer (sequential); ``done`` after the last."""
        self.layer, self.layer_epochs_done, self.best, self.best_state, self.bad = self.layer + 1, 0, None, None, 0
        if self.layer == self.num_layers:
            self.done = True
        else:
            self.budget = self.next_budget()

    def state_dict(self) -> dict:
        return {k: getattr(self, k) for k in STATE}

    def load_state_dict(self, state: dict) -> None:
        for key in STATE:
            setattr(self, key, state[key])
