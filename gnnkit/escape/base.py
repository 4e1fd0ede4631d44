"""Escape: called on a plateau of the validation metric to move the model out of it.

The loop calls ``on_plateau(ctx, model, evaluate, task)`` after ``patience`` validations without
improvement of the monitored figure, on rank 0 alone (the context and ``evaluate`` see one
process there). The escape may try candidates on the model but must leave it bit-identical; it
returns ``None`` (not called, e.g. its budget is spent) or an
:class:`~gnnkit.context.EscapeResult`: a record of the call and, when accepted, the proposed head
``{parameter name: tensor}``. The loop broadcasts the result, copies the head into the model on
every rank, clears the strategy's optimizer state of those parameters (``reset_state``), restarts
its patience and keeps the record (``fit``'s result ``"escape"``).
"""
from __future__ import annotations

import abc
from typing import ClassVar, Optional

import torch

from ..context import EscapeResult, Evaluate
from ..errors import GnnkitError
from ..plugins import Plugin


class Escape(Plugin):
    axis = "escape"
    package = "gnnkit.escape"
    _registry: ClassVar[dict[str, type]] = {}

    patience: int = 10

    def __init__(self) -> None:
        self.records: list[dict] = []

    @abc.abstractmethod
    def on_plateau(self, ctx, model, evaluate: Evaluate, task) -> Optional[EscapeResult]:
        """One escape call on rank 0 (see the module docstring)."""

    def state_dict(self) -> dict:
        return {"records": self.records}

    def load_state_dict(self, state: dict) -> None:
        self.records = list(state.get("records", []))


def load_head(model: torch.nn.Module, head_state: dict) -> list:
    """Copy ``head_state`` ``{parameter name: tensor}`` into ``model``'s parameters (no gradient);
    returns those parameters."""
    params = dict(model.named_parameters())
    unknown = sorted(set(head_state) - set(params))
    if unknown:
        raise GnnkitError(f"the escape proposed parameters the model does not have: {', '.join(unknown)}")
    with torch.no_grad():
        for name, value in head_state.items():
            params[name].copy_(value.to(params[name].device, params[name].dtype))
    return [params[name] for name in head_state]


def cpu_copy(result: Optional[EscapeResult]) -> Optional[EscapeResult]:
    """``result`` with its head on the CPU (what the loop broadcasts)."""
    if result is None or result.head_state is None:
        return result
    return EscapeResult(result.record, {k: v.detach().cpu() for k, v in result.head_state.items()})
