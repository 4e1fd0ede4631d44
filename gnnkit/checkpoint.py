"""Checkpoints: a plain dict written atomically, read back with ``weights_only=True``.

Layout of the dict::

    {"format": "gnnkit-checkpoint/2", "epoch": int, "model": state_dict,
     "model_signature": {param name: shape},
     "components": {"task": .., "sampler": .., "strategy": .., "escape": ..},
     "callbacks": {state_key: state}, "loop": {...}, "rng": {...}, "run": {...}}

``run`` describes the run (:func:`check_run` compares it on resume). Files are
``DIR/epoch-000012.pt`` (epoch 12 complete) and, with checkpoints every ``N`` steps,
``DIR/epoch-000013-step-000400.pt`` (400 steps of epoch 13 done: ``epoch`` is then 12, and
``loop["in_epoch"]`` says where in epoch 13 the run stands); :func:`order_of` sorts them.
:func:`latest` finds the newest one that loads and sets aside (renames to ``*.unreadable``) the
truncated or corrupt ones newer than it, so that they hold no slot.
"""
from __future__ import annotations

import glob
import os
import random
import re
import warnings
from typing import Any, Optional

import numpy as np
import torch

from .errors import CheckpointError
from .fileio import atomic_torch_save

FORMAT = "gnnkit-checkpoint/2"


def save(obj: dict, path: str) -> None:
    """Write ``obj`` to ``path`` atomically (temporary file in the same folder, then replace)."""
    atomic_torch_save(path, obj)


def load(path: str) -> dict:
    """Read a gnnkit checkpoint, with a clear error when it is unreadable or not ours."""
    if not os.path.isfile(path):
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated, corrupt, or not a torch file at all
        raise CheckpointError(f"checkpoint {path} is unreadable ({type(exc).__name__}: "
                              f"{str(exc).splitlines()[0] if str(exc) else 'no detail'})") from exc
    if not isinstance(obj, dict) or not str(obj.get("format", "")).startswith("gnnkit-checkpoint/"):
        raise CheckpointError(f"{path} is not a gnnkit checkpoint (no format tag {FORMAT!r})")
    if obj["format"] != FORMAT:
        raise CheckpointError(f"checkpoint {path} has format {obj['format']!r}; this gnnkit reads {FORMAT!r}")
    return obj


def model_signature(model: torch.nn.Module) -> dict:
    return {k: list(v.shape) for k, v in model.state_dict().items()}


def check_signature(ckpt: dict, model: torch.nn.Module, path: str) -> None:
    mine, theirs = model_signature(model), ckpt.get("model_signature", {})
    if mine != theirs:
        missing = sorted(set(mine) ^ set(theirs))
        diff = missing[:3] or [k for k in mine if mine[k] != theirs.get(k)][:3]
        raise CheckpointError(f"checkpoint {path} belongs to another model (parameters differ: {', '.join(diff)})")


def snapshot(epoch: int, model: torch.nn.Module, components: dict, callbacks: list, loop: dict, run: dict) -> dict:
    """The checkpoint dict of the layout above (``callbacks`` keyed by their ``key()``)."""
    return {"format": FORMAT, "epoch": epoch, "model": model.state_dict(), "model_signature": model_signature(model),
            "components": {name: part.state_dict() for name, part in components.items()},
            "callbacks": {cb.key(): cb.state_dict() for cb in callbacks}, "loop": loop, "rng": rng_state(),
            "run": run}


def restore(state: dict, model: torch.nn.Module, components: dict, callbacks: list) -> None:
    """Load the model, the components, the callbacks found by key (a callback the checkpoint does
    not know keeps its fresh state) and the random generators of ``state``."""
    model.load_state_dict(state["model"])
    for name, part in components.items():
        part.load_state_dict(state["components"].get(name, {}))
    for cb in callbacks:
        if cb.key() in state["callbacks"]:
            cb.load_state_dict(state["callbacks"][cb.key()])
    set_rng_state(state["rng"])


def run_differences(saved: Any, mine: Any, prefix: str = "") -> list[str]:
    """``"key: saved vs mine"`` for every key of ``saved`` whose value differs in ``mine`` (nested
    dicts compared key by key; a key ``mine`` lacks counts as different)."""
    if isinstance(saved, dict) and isinstance(mine, dict):
        out = []
        for k, v in saved.items():
            out += run_differences(v, mine.get(k, "<missing>"), f"{prefix}{k}.")
        return out
    return [] if saved == mine else [f"{prefix[:-1]}: {saved} vs {mine}"]


def check_run(ckpt: dict, run: dict, path: str) -> None:
    """Refuse to resume a checkpoint of another run (dataset, settings or components differ)."""
    diffs = run_differences(ckpt.get("run") or {}, run)
    if diffs:
        raise CheckpointError(f"checkpoint {path} is of another run ({'; '.join(diffs[:4])}"
                              f"{'; ...' if len(diffs) > 4 else ''})")


END = float("inf")  # the step of an epoch's own checkpoint: after all of its steps


def path_for(directory: str, epoch: int, step: Optional[int] = None) -> str:
    """``epoch-E.pt`` (epoch ``E`` complete) or ``epoch-E-step-K.pt`` (``K`` steps of epoch ``E`` done)."""
    return os.path.join(directory, f"epoch-{epoch:06d}.pt" if step is None else f"epoch-{epoch:06d}-step-{step:06d}.pt")


def order_of(path: str) -> tuple:
    """Where in training a checkpoint file stands: ``(E, END)`` for epoch ``E`` complete, ``(E, K)``
    for ``K`` steps into epoch ``E``, ``(-1, -1)`` for a name that is not a checkpoint's."""
    m = re.search(r"epoch-(\d+)(?:-step-(\d+))?\.pt$", path)
    if not m:
        return (-1, -1)
    return (int(m.group(1)), END if m.group(2) is None else int(m.group(2)))


def epoch_of(path: str) -> int:
    return order_of(path)[0]


def listing(directory: str) -> list[str]:
    """Checkpoint files in ``directory``, newest first."""
    return sorted(glob.glob(os.path.join(directory, "epoch-*.pt")), key=order_of, reverse=True)


def latest(directory: str, set_aside: bool = False) -> Optional[tuple[str, dict]]:
    """The newest checkpoint in ``directory`` that loads, or ``None`` when there is none. With
    ``set_aside``, newer unreadable ones are renamed to ``*.unreadable`` (kept for inspection,
    no longer counted by :func:`prune`)."""
    for path in listing(directory):
        try:
            return path, load(path)
        except CheckpointError as exc:
            warnings.warn(f"skipping checkpoint: {exc}", stacklevel=2)
            if set_aside:
                try:
                    os.replace(path, path + ".unreadable")
                except OSError:
                    pass
    return None


def find(ckpt_path: str, directory: Optional[str], set_aside: bool = False) -> Optional[tuple[str, dict]]:
    """``(path, state)`` of ``ckpt_path``: a file, or ``"last"`` for the newest loadable checkpoint in
    ``directory`` (``None`` when there is none yet)."""
    if ckpt_path != "last":
        return ckpt_path, load(ckpt_path)
    if not directory:
        raise CheckpointError("ckpt_path='last' needs checkpoint_dir")
    return latest(directory, set_aside=set_aside)


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
