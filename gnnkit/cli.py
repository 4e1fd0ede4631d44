"""The ``gnnkit`` command line.

Each subcommand is one module in :mod:`gnnkit.commands` defining ``NAME``, ``HELP``,
``add_arguments(parser)`` and ``run(args) -> int``. Errors the user can fix (a
:class:`~gnnkit.errors.GnnkitError`, a bad value) print one line ``gnnkit: error: ...`` and exit with
status 2; ``--debug`` shows the traceback instead.
"""
from __future__ import annotations

import argparse
import importlib
import logging
import os
import pkgutil
import sys
import traceback
from typing import Optional, Sequence

from . import __version__
from .errors import GnnkitError


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, status 2 (argparse's own convention)
        sys.stderr.write(f"gnnkit: error: {message}\n")
        sys.exit(2)


def _commands():
    from . import commands

    mods = [importlib.import_module(f"gnnkit.commands.{m.name}") for m in pkgutil.iter_modules(commands.__path__)
            if not m.name.startswith("_")]
    return sorted((m for m in mods if hasattr(m, "NAME")), key=lambda m: getattr(m, "ORDER", 50))  # helpers: no NAME


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="gnnkit", description="Train graph neural networks on large graphs.")
    parser.add_argument("--version", action="version", version=f"gnnkit {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks of errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for mod in _commands():
        p = sub.add_parser(mod.NAME, help=mod.HELP, description=mod.HELP)
        p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks of errors")
        mod.add_arguments(p)
        p.set_defaults(_run=mod.run, _parser=p)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # 2 MiB pages for torch's large CPU tensors (read once, at torch's first allocation, so before any
    # command imports torch): a fresh 65 MB feature gather otherwise pays ~4x its copy in 4 KiB page
    # faults (BENCHMARKS.md, the step floor); an explicit setting in the environment wins
    os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")
    debug = "--debug" in argv
    try:
        _configure_logging()  # before the parser: installed plug-ins may warn while it is built
        parser = build_parser()
        args = parser.parse_args(argv)
        if not getattr(args, "_run", None):
            parser.print_help()
            return 2
        if args.command == "train" and getattr(args, "config", None):  # train's flat TOML: its values as defaults,
            # flags win (bench's --config is its own nested grid, read by the bench)
            from .commands import config

            args = config.apply(args, argv)
        args._argv = argv  # the command line, for results and the resume hint
        return int(args._run(args) or 0)
    except (GnnkitError, ValueError, OSError, MemoryError) as exc:
        if debug:
            traceback.print_exc()
        sys.stderr.write(f"gnnkit: error: {_one_line(exc)}\n")
        return 2
    except KeyboardInterrupt:
        sys.stderr.write("gnnkit: interrupted\n")
        return 130


class _Prefix(logging.Formatter):
    """``gnnkit: message`` for gnnkit's own loggers, ``<library>: message`` for the others (python-mip...)."""

    def format(self, record: logging.LogRecord) -> str:
        name = record.name.split(".")[0]
        return f"{'gnnkit' if name in ('gnnkit', 'root') else name}: {record.getMessage()}"


def _configure_logging() -> None:
    root = logging.getLogger()
    if root.handlers:  # configured by the caller (tests, an embedding program)
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_Prefix())
    root.addHandler(handler)
    root.setLevel(logging.INFO)


def _one_line(exc: BaseException) -> str:
    """The error's message on one line; an OS error names its path and reason."""
    if isinstance(exc, OSError) and not isinstance(exc, GnnkitError) and exc.strerror:
        where = f"{exc.filename}: " if exc.filename else ""
        return f"{where}{exc.strerror}"
    if isinstance(exc, MemoryError):
        return f"out of memory{': ' + str(exc) if str(exc) else ''}"
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


if __name__ == "__main__":
    sys.exit(main())
