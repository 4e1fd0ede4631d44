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

Plug-ins from other packages: an installed distribution declares entry points in the group
``gnnkit.plugins`` (``[project.entry-points."gnnkit.plugins"]`` in its ``pyproject.toml``), one per
plug-in, named as the plug-in is named on the command line::

    random-edge = "my_package.samplers:RandomEdgeSampler"   # a Task/Sampler/Strategy/Escape subclass
    my-gat = "my_package.models:make_gat"                    # a model factory
    more = "my_package.plugins"                              # a module whose import registers classes

A class registers under its ``name`` (else the entry point's name). A model factory is called as
``factory(in_dim, out_dim, hidden=, num_layers=, dropout=)`` (the keywords it accepts) and returns a
``torch.nn.Module``: gnnkit's contract or a PyG-style ``forward(x, edge_index)``, which trains wrapped
in :class:`~gnnkit.models.pyg.PyGModel`. Entry points are loaded once, after gnnkit's own plug-ins, on
the first lookup of any axis (:func:`load_entry_points`). One that fails to import, is none of the
above, or takes a name gnnkit already has is skipped with one warning line naming the plug-in and its
distribution; asking for it by name is then a :class:`~gnnkit.errors.GnnkitError` saying why.
"""
from __future__ import annotations

import abc
import argparse
import importlib
import inspect
import logging
import pkgutil
import types
from typing import Any, Callable, ClassVar, Dict, List, Optional, Tuple

from .errors import GnnkitError

log = logging.getLogger("gnnkit")
ENTRY_POINT_GROUP = "gnnkit.plugins"
#: the packages that define gnnkit's axes (imported before entry points load)
AXIS_PACKAGES = ("gnnkit.tasks", "gnnkit.samplers", "gnnkit.strategies", "gnnkit.escape")
_ROOTS: List[type] = []  # the axis roots (Task, Sampler, Strategy, Escape) as they are defined


class Plugin(abc.ABC):
    """Base of every axis object. Subclasses set ``name`` to register."""

    name: ClassVar[str] = ""
    axis: ClassVar[str] = "plugin"
    package: ClassVar[str] = ""  # the package whose modules hold this axis' classes
    _registry: ClassVar[dict[str, type]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "_registry" in cls.__dict__:  # an axis root declares its own registry
            _ROOTS.append(cls)
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
            if name in BROKEN:
                raise GnnkitError(BROKEN[name]) from None
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
    """Import the axis package's modules (gnnkit's own plug-ins), then the installed entry points."""
    _discover_builtin(axis)
    load_entry_points()


def _discover_builtin(axis: type) -> None:
    if not axis.package or getattr(axis, "_discovered", False):
        return
    pkg = importlib.import_module(axis.package)
    for info in pkgutil.iter_modules(pkg.__path__):
        if not info.name.startswith("_"):
            importlib.import_module(f"{axis.package}.{info.name}")
    axis._discovered = True


# ---------------------------------------------------------------------------------- entry points
#: plug-in name -> why its entry point was skipped (the message a lookup of that name raises)
BROKEN: Dict[str, str] = {}
#: ``(axis, name)`` -> the distribution that provides it (``"name version"``); axis "model" for models
ORIGINS: Dict[Tuple[str, str], str] = {}
#: model name -> factory ``(in_dim, out_dim, hidden=, num_layers=, dropout=) -> nn.Module``
MODEL_FACTORIES: Dict[str, Callable] = {}
_loaded = False


def _dist_label(ep) -> str:
    dist = getattr(ep, "dist", None)
    return f"{dist.name} {dist.version}" if dist is not None else "an unknown distribution"


def load_entry_points() -> None:
    """Load every entry point of the ``gnnkit.plugins`` group once (see the module docstring)."""
    global _loaded
    if _loaded:
        return
    _loaded = True
    for name in AXIS_PACKAGES:
        importlib.import_module(name)
    for root in list(_ROOTS):
        _discover_builtin(root)
    from importlib.metadata import entry_points

    for ep in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        problem = _load_one(ep)
        if problem:
            BROKEN[ep.name] = f"plug-in {ep.name!r} of {_dist_label(ep)} ({ep.value}) {problem}"
            log.warning("%s; skipped", BROKEN[ep.name])


def _registries() -> Dict[type, dict]:
    return {root: dict(root._registry) for root in _ROOTS}


def _load_one(ep) -> Optional[str]:
    """Load one entry point; the reason it is refused, or None."""
    before = _registries()
    try:
        obj = ep.load()
    except Exception as exc:  # noqa: BLE001 - any failure of a third-party import is reported, not raised
        _restore(before)
        return f"failed to load: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}".rstrip(": ")
    if isinstance(obj, type) and issubclass(obj, Plugin):
        root = next((r for r in _ROOTS if issubclass(obj, r)), None)
        if root is None:
            return "is a Plugin of no axis (derive from Task, Sampler, Strategy or Escape)"
        own = obj.__dict__.get("name")
        if not own:
            if ep.name in root._registry:
                return f"registers {root.axis} {ep.name!r}, which is already taken"
            root._registry[ep.name] = obj
        elif root._registry.get(own) is not obj:  # imported before, under a name that was refused
            return f"registers {root.axis} {own!r}, which is already taken"
        problem = _check_added(ep, before)
        if problem is None:
            ORIGINS.setdefault((root.axis, own or ep.name), _dist_label(ep))
        return problem
    elif isinstance(obj, types.ModuleType):
        pass  # its import registered its classes
    elif callable(obj):
        from gnnkit.models import MODELS

        if ep.name in MODELS or ep.name in MODEL_FACTORIES:
            return f"names model {ep.name!r}, which gnnkit already has"
        MODEL_FACTORIES[ep.name] = obj
        ORIGINS[("model", ep.name)] = _dist_label(ep)
        return None
    else:
        return f"is a {type(obj).__name__}: expected a plug-in class, a module or a model factory"
    return _check_added(ep, before)


def _restore(before: Dict[type, dict]) -> None:
    for root, registry in before.items():
        root._registry.clear()
        root._registry.update(registry)


def _check_added(ep, before: Dict[type, dict]) -> Optional[str]:
    """Record the names an entry point added; refuse it when it replaced a name already registered
    (the earlier class is put back; what else its import registered stays)."""
    problem = None
    for root, registry in before.items():
        for name in set(root._registry) - set(registry):
            ORIGINS.setdefault((root.axis, name), _dist_label(ep))
        for name, cls in registry.items():
            if root._registry.get(name) is not cls:
                root._registry[name] = cls
                problem = problem or f"registers {root.axis} {name!r}, which is already taken"
    return problem


def installed() -> List[str]:
    """``"<axis> <name> (<distribution>)"`` of every plug-in loaded from an entry point."""
    load_entry_points()
    return [f"{axis} {name} ({dist})" for (axis, name), dist in sorted(ORIGINS.items())]


def build_plugin_model(name: str, in_dim: int, out_dim: int, **options):
    """The module a model entry point builds, given the options its factory accepts (refused with the
    distribution's name when the factory fails or returns something other than an ``nn.Module``)."""
    import torch

    factory = MODEL_FACTORIES[name]
    try:
        params = inspect.signature(factory).parameters
        takes_all = any(p.kind is p.VAR_KEYWORD for p in params.values())
    except (TypeError, ValueError):
        params, takes_all = {}, True
    kwargs = {k: v for k, v in options.items() if takes_all or k in params}
    who = f"model {name!r} of {ORIGINS.get(('model', name), 'an entry point')}"
    try:
        module = factory(in_dim, out_dim, **kwargs)
    except GnnkitError:
        raise
    except Exception as exc:  # noqa: BLE001 - a third-party factory's failure, reported on one line
        raise GnnkitError(f"{who} failed: {type(exc).__name__}: {exc}") from None
    if not isinstance(module, torch.nn.Module):
        raise GnnkitError(f"{who} returned {type(module).__name__}, not a torch.nn.Module")
    return module


def add_option(parser: argparse.ArgumentParser, *flags: str, **kwargs: Any) -> None:
    """``parser.add_argument``, refusing a flag that is already declared: every option has one owner
    (a shared one, like ``--batch-size``, is declared by the command layer and read by the plug-ins)."""
    taken = [f for f in flags if f in parser._option_string_actions]  # noqa: SLF001 - argparse has no API
    if taken:
        raise GnnkitError(f"option {taken[0]} is declared twice (each option has one owner)")
    parser.add_argument(*flags, **kwargs)
