"""The plug-in mechanism behind gnnkit's four axes (task, sampler, strategy, escape).

Each axis has one abstract base class (``Task``, ``Sampler``, ``Strategy``, ``Escape``) deriving
from :class:`Plugin` (an :class:`abc.ABC`). A concrete class that sets ``name = "..."`` registers
itself under that name when its module is imported; the axis package imports all of its modules on
first lookup, so a new sampler is one file in ``samplers/`` and nothing else.

Plug-ins receive a read-only :class:`~gnnkit.context.RunContext` and return results; they never
assign to the Trainer, the context or the model. Besides its axis' methods every plug-in has two
optional hooks (no-ops here) that the loop calls on task, sampler, strategy and escape in that
order: ``on_epoch_start(ctx, epoch)`` and ``on_validation_end(ctx, metrics, selected)``
(``selected``: this evaluation made the current weights the selected model). ``state_dict`` /
``load_state_dict`` go into checkpoints under the axis' name.

Command-line options belong to the plug-in too: ``add_args(parser)`` declares them and
``from_args(args)`` builds an instance, so ``gnnkit train --sampler X`` needs no edit of the CLI.
Every flag is declared once: :func:`add_option` refuses a second declaration.
"""
from __future__ import annotations

import abc
import argparse
import importlib
import pkgutil
from typing import Any, ClassVar

from .errors import GnnkitError


class Plugin(abc.ABC):
    """Base of every axis object. Subclasses set ``name`` to register."""

    name: ClassVar[str] = ""
    axis: ClassVar[str] = "plugin"
    package: ClassVar[str] = ""  # the package whose modules hold this axis' classes
    _registry: ClassVar[dict[str, type]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "_registry" in cls.__dict__:  # an axis root declares its own registry
            return
        name = cls.__dict__.get("name")
        if name:
            cls._registry[name] = cls

    # -- command line -------------------------------------------------------------------------
    @classmethod
    def add_args(cls, parser: argparse.ArgumentParser) -> None:
        """Declare this plug-in's command-line options (use :func:`add_option`)."""

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> "Plugin":
        """Build an instance from parsed command-line options."""
        return cls()

    # -- hooks of the loop (optional) ----------------------------------------------------------
    def on_epoch_start(self, ctx, epoch: int) -> None:
        """Before the epoch's first batch (after ``sampler.set_epoch``)."""

    def on_validation_end(self, ctx, metrics: dict, selected: bool) -> None:
        """After the loop's evaluation of all splits; ``selected``: the weights were selected."""

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass

    # -- lookup -------------------------------------------------------------------------------
    @classmethod
    def names(cls) -> list[str]:
        _discover(cls)
        return sorted(cls._registry)

    @classmethod
    def lookup(cls, name: str) -> type:
        _discover(cls)
        try:
            return cls._registry[name]
        except KeyError:
            known = ", ".join(sorted(cls._registry)) or "none"
            raise GnnkitError(f"unknown {cls.axis} {name!r}; known: {known}") from None

    @classmethod
    def resolve(cls, spec: Any, **kwargs: Any) -> Any:
        """An instance from a name (built with ``kwargs``), an instance, or ``None``."""
        if spec is None or isinstance(spec, cls):
            return spec
        if isinstance(spec, str):
            return cls.lookup(spec)(**kwargs)
        raise GnnkitError(f"{cls.axis} must be a name or a {cls.__name__} instance, got {type(spec).__name__}")


def _discover(axis: type) -> None:
    if not axis.package or getattr(axis, "_discovered", False):
        return
    pkg = importlib.import_module(axis.package)
    for info in pkgutil.iter_modules(pkg.__path__):
        if not info.name.startswith("_"):
            importlib.import_module(f"{axis.package}.{info.name}")
    axis._discovered = True


def add_option(parser: argparse.ArgumentParser, *flags: str, **kwargs: Any) -> None:
    """``parser.add_argument``, refusing a flag that is already declared: every option has one owner
    (a shared one, like ``--batch-size``, is declared by the command layer and read by the plug-ins)."""
    taken = [f for f in flags if f in parser._option_string_actions]  # noqa: SLF001 - argparse has no API
    if taken:
        raise GnnkitError(f"option {taken[0]} is declared twice (each option has one owner)")
    parser.add_argument(*flags, **kwargs)
