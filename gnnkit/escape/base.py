"""Escape: called on a plateau of the validation metric to move the model out of it.

An escape implements ``on_plateau(trainer)``; when it changes the weights it must leave the model
no worse (it restores them itself on rejection), append a record to ``self.records`` and set
``trainer.plateau_escaped = True`` so the Trainer restarts its patience count. The plateau it
reacts to is ``patience`` validations without improvement of the validation metric.
"""
from __future__ import annotations

from typing import ClassVar

from ..plugins import Plugin


class Escape(Plugin):
    axis = "escape"
    package = "gnnkit.escape"
    _registry: ClassVar[dict[str, type]] = {}

    patience: int = 10

    def __init__(self) -> None:
        self.records: list[dict] = []

    def state_dict(self) -> dict:
        return {"records": self.records}

    def load_state_dict(self, state: dict) -> None:
        self.records = list(state.get("records", []))
