"""Checkpoints: a plain dict written atomically, read back with ``weights_only=True``.

Layout of the dict::

    {"format": "gnnkit-checkpoint/1", "epoch": int, "model": state_dict,
     "model_signature": {param name: shape}, "strategy": ..., "sampler": ..., "task": ...,
     "escape": ..., "callbacks": [...], "trainer": {...}, "rng": {...}}

Files are ``DIR/epoch-000012.pt``; :func:`latest` finds the newest one that loads, reporting
(and skipping) a truncated or corrupt newest file.
"""
from __future__ import annotations

import glob
import os
import random
import warnings
from typing import Any, Optional

import numpy as np
import torch

from .errors import CheckpointError

FORMAT = "gnnkit-checkpoint/1"


def save(obj: dict, path: str) -> None:
    """Write ``obj`` to ``path`` atomically (temporary file in the same folder, then replace)."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = f"{path}.{os.getpid()}.tmp"
    torch.save(obj, tmp)
    os.replace(tmp, path)


def load(path: str) -> dict:
    """Read a gnnkit checkpoint, with a clear error when it is unreadable or not ours."""
    if not os.path.isfile(path):
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated, corrupt, or not a torch file at all
        raise CheckpointError(f"checkpoint {path} is unreadable ({type(exc).__name__}: "
                              f"{str(exc).splitlines()[0] if str(exc) else 'no detail'})") from exc
    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a gnnkit checkpoint (no format tag {FORMAT!r})")
    return obj


def model_signature(model: torch.nn.Module) -> dict:
    return {k: list(v.shape) for k, v in model.state_dict().items()}


def check_signature(ckpt: dict, model: torch.nn.Module, path: str) -> None:
    mine, theirs = model_signature(model), ckpt.get("model_signature", {})
    if mine != theirs:
        missing = sorted(set(mine) ^ set(theirs))
        diff = missing[:3] or [k for k in mine if mine[k] != theirs.get(k)][:3]
        raise CheckpointError(f"checkpoint {path} belongs to another model (parameters differ: {', '.join(diff)})")


def path_for(directory: str, epoch: int) -> str:
    return os.path.join(directory, f"epoch-{epoch:06d}.pt")


def listing(directory: str) -> list[str]:
    """Checkpoint files in ``directory``, newest first."""
    return sorted(glob.glob(os.path.join(directory, "epoch-*.pt")), reverse=True)


def latest(directory: str) -> Optional[tuple[str, dict]]:
    """The newest checkpoint in ``directory`` that loads, or ``None`` when there is none."""
    for path in listing(directory):
        try:
            return path, load(path)
        except CheckpointError as exc:
            warnings.warn(f"skipping checkpoint: {exc}", stacklevel=2)
    return None


def prune(directory: str, keep: int) -> None:
    for path in listing(directory)[keep:]:
        try:
            os.remove(path)
        except FileNotFoundError:
            pass


# -- random number generators ------------------------------------------------------------------------
def rng_state() -> dict[str, Any]:
    np_state = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "python": random.getstate(),
        "numpy": {"keys": torch.from_numpy(np_state[1].astype(np.int64)), "pos": int(np_state[2]),
                  "has_gauss": int(np_state[3]), "gauss": float(np_state[4])},
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    n = state["numpy"]
    np.random.set_state(("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
