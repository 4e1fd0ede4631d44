"""Atomic file writes: the one helper every writer in gnnkit uses.

A write goes to a temporary file in the destination's folder and is then moved over the
destination with :func:`os.replace` (atomic on POSIX), so a reader sees either the old file or
the whole new one, never a half-written one. When writing fails (disk full, permission, a value
that does not serialize) the temporary file is removed and a :class:`~gnnkit.errors.GnnkitError`
names the path and the reason.
"""
from __future__ import annotations

import json
import math
import os
import shutil
import stat
import tempfile
from pathlib import Path
from typing import Any, Callable, IO

from .errors import GnnkitError


def atomic_write(path: str, write: Callable[[IO[bytes]], None]) -> None:
    """Call ``write(f)`` on a binary temporary file beside ``path``, then replace ``path`` with it."""
    folder = os.path.dirname(os.path.abspath(path))
    try:
        os.makedirs(folder, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=folder)
    except OSError as exc:
        raise GnnkitError(f"cannot write {path}: {exc.strerror or exc}") from None
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(exc, OSError):
            raise GnnkitError(f"cannot write {path}: {exc.strerror or exc}") from None
        raise


def atomic_write_bytes(path: str, data: bytes) -> None:
    atomic_write(path, lambda f: f.write(data))


def _finite(obj: Any) -> Any:
    """``obj`` with every non-finite float replaced by ``None`` (JSON has no NaN or Infinity)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def atomic_write_json(path: str, obj: Any, indent: int = 2) -> None:
    """Strict JSON (NaN and infinities written as ``null``), atomically."""
    text = json.dumps(_finite(obj), indent=indent, allow_nan=False, default=str) + "\n"
    atomic_write_bytes(path, text.encode())


def atomic_torch_save(path: str, obj: Any) -> None:
    import torch

    atomic_write(path, lambda f: torch.save(obj, f))


def writable_copy(src, dst) -> Path:
    """A copy of the folder ``src`` at ``dst`` (which must not exist) that its owner may write: a
    read-only source's mode bits are not kept. For loaders that write beside the files they read
    (PyG's ``processed/``), given a shared read-only dataset folder."""
    shutil.copytree(src, dst, copy_function=shutil.copyfile)
    for path in [Path(dst), *Path(dst).rglob("*")]:
        path.chmod(path.stat().st_mode | stat.S_IWUSR)
    return Path(dst)
