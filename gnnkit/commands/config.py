"""``gnnkit train --config FILE.toml``: a run's options in a file, with the flags' own names.

The file is flat TOML, one ``key = value`` per option, the key being the flag without its dashes
(``weight-decay = 5e-4``; ``weight_decay`` is accepted too)::

    dataset = "Cora"
    transform = "NormalizeFeatures"
    hidden = 16
    dropout = 0.5
    epochs = 200
    seeds = 10
    no-progress = true          # a switch: true or false
    fanouts = [15, 10]          # a list is written as the flag's comma-separated text ("15,10")

Each value goes through the flag's own conversion and checks (an integer option refuses ``0.5``,
a choice option a value outside its choices), and the file's values become the parser's defaults:
a flag given on the command line overrides the file. An unknown key, a table, or a value of the wrong
kind is one :class:`~gnnkit.errors.GnnkitError` line naming the key. Reading a TOML file runs no code.
A module without ``NAME`` (the CLI lists only modules that define one).
"""
from __future__ import annotations

import argparse
import difflib
import os
from typing import Any, Dict, List

from ..errors import GnnkitError

#: options a config file may not set (the file itself, help, tracebacks)
NOT_IN_FILE = {"config", "help", "debug"}


def read(path: str) -> Dict[str, Any]:
    """The TOML file's top-level table; an unreadable or malformed file is one error line."""
    try:
        import tomllib
    except ImportError:  # Python < 3.11
        import tomli as tomllib  # type: ignore[no-redef]
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except OSError as exc:
        raise GnnkitError(f"--config {path}: {exc.strerror or exc}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise GnnkitError(f"--config {path}: not valid TOML ({str(exc).splitlines()[0]})") from None


def _long_options(parser: argparse.ArgumentParser) -> Dict[str, argparse.Action]:
    return {opt[2:]: action for action in parser._actions  # noqa: SLF001 - argparse has no API for it
            for opt in action.option_strings if opt.startswith("--") and action.dest not in NOT_IN_FILE}


def _unknown(path: str, key: str, known: List[str], command: str) -> GnnkitError:
    close = difflib.get_close_matches(key.replace("_", "-"), known, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return GnnkitError(f"--config {path}: unknown key {key!r} (not an option of gnnkit {command}){hint}")


def _convert(path: str, key: str, action: argparse.Action, value: Any) -> Any:
    """``value`` as the flag would have parsed it (its type, its choices)."""
    where = f"--config {path}: {key}"
    if action.nargs == 0:  # a switch (store_true)
        if not isinstance(value, bool):
            raise GnnkitError(f"{where} is a switch: write true or false, got {value!r}")
        return action.const if value else action.default
    if isinstance(value, bool) or isinstance(value, dict):
        raise GnnkitError(f"{where} takes a value like the flag --{key.replace('_', '-')}, got {value!r}")
    if isinstance(value, list):
        if any(isinstance(v, (list, dict, bool)) for v in value):
            raise GnnkitError(f"{where}: a list of plain values expected, got {value!r}")
        value = ",".join(str(v) for v in value)
    text = value if isinstance(value, str) else repr(value)
    try:
        out = action.type(text) if action.type else text
    except (argparse.ArgumentTypeError, ValueError, TypeError) as exc:
        raise GnnkitError(f"{where}: {exc or 'invalid value'} (got {value!r})") from None
    if action.choices is not None and out not in action.choices:
        raise GnnkitError(f"{where}: {value!r} is not one of {', '.join(map(str, action.choices))}")
    return out


def defaults_from(path: str, parser: argparse.ArgumentParser, command: str) -> Dict[str, Any]:
    """``{dest: value}`` of the file's keys, each converted and checked like its flag."""
    options = _long_options(parser)
    out: Dict[str, Any] = {}
    for key, value in read(path).items():
        if isinstance(value, dict):
            raise GnnkitError(f"--config {path}: [{key}] is a table; the file is flat: one key = value per option")
        action = options.get(key.replace("_", "-"))
        if action is None:
            raise _unknown(path, key, sorted(options), command)
        if action.dest in out:
            raise GnnkitError(f"--config {path}: {key} is given twice (as - and as _)")
        out[action.dest] = _convert(path, key, action, value)
    return out


def apply(args: argparse.Namespace, argv: List[str]) -> argparse.Namespace:
    """The command's options parsed again with the config file's values as defaults (flags on the
    command line win). ``args._parser``: the command's parser; ``argv``: the whole command line."""
    parser, command = args._parser, args.command  # noqa: SLF001
    path = os.path.abspath(os.path.expanduser(args.config))
    values = read(path)
    parser.set_defaults(**defaults_from(path, parser, command))
    rest = argv[argv.index(command) + 1:]
    out = parser.parse_args(rest)
    out.command, out._parser, out._run = command, parser, args._run  # noqa: SLF001
    out.config, out._config = path, {"path": path, "values": values}  # noqa: SLF001
    return out
