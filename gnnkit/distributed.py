"""Everything gnnkit knows about several processes, on PyTorch's own engine (torch.distributed).

Launch with ``torchrun`` (or ``gnnkit train --nproc N``): it sets ``RANK``, ``WORLD_SIZE`` and
``LOCAL_RANK``. :func:`init` starts the process group (gloo on CPU, NCCL on CUDA, overridable) and
:func:`shutdown` ends it. With one process and no launcher every helper here is the identity, so
the Trainer has a single code path.
"""
from __future__ import annotations

import contextlib
import gc
import os
from datetime import timedelta
from typing import Any, Optional, Sequence

import torch
import torch.distributed as dist

from .errors import GnnkitError


def env_world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


_local_depth = 0


def is_initialized() -> bool:
    """Whether collectives are live (False inside :func:`local_only`)."""
    return _local_depth == 0 and dist.is_available() and dist.is_initialized()


@contextlib.contextmanager
def local_only():
    """Work done by one rank alone (rank 0 testing an escape candidate): inside, every helper
    here behaves as with one process, so nothing waits for ranks that are not taking part."""
    global _local_depth
    _local_depth += 1
    try:
        yield
    finally:
        _local_depth -= 1


def rank() -> int:
    return dist.get_rank() if is_initialized() else int(os.environ.get("RANK", "0"))


def world_size() -> int:
    return dist.get_world_size() if is_initialized() else 1


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0"))


def is_main() -> bool:
    return rank() == 0


def init(device: torch.device, backend: Optional[str] = None, timeout_s: float = 120.0) -> bool:
    """Start the process group when launched with ``WORLD_SIZE > 1``; returns whether we did."""
    if env_world_size() <= 1 or is_initialized():
        return False
    backend = backend or ("nccl" if device.type == "cuda" else "gloo")
    timeout = timedelta(seconds=timeout_s)
    restart = os.environ.get("TORCHELASTIC_RESTART_COUNT")
    if restart is None:
        dist.init_process_group(backend=backend, timeout=timeout)
        return True
    # Under torchrun the agent's store outlives a restart: keys of the killed round (a rank's
    # address) would be read by a fast rank of the next round before its peers rewrite them, and
    # it would connect to a process that no longer exists. Each round gets its own key space.
    store, rank_, world = next(dist.rendezvous("env://", timeout=timeout))
    store = dist.PrefixStore(f"gnnkit/round-{restart}", store)
    dist.init_process_group(backend=backend, store=store, rank=rank_, world_size=world, timeout=timeout)
    return True


_SIDE: dict = {}  # name -> (the default group it was made beside, the group); emptied by shutdown


def side_group(name: str):
    """A process group of all ranks beside the default one, made once per default group and
    named ``name`` here (collectives on it never interleave with DistributedDataParallel's on
    the default group); ``None`` with one process. Hold it weakly (:func:`shutdown` frees it)."""
    if not is_initialized() or world_size() == 1:
        return None
    default = dist.group.WORLD
    made = _SIDE.get(name)
    if made is None or made[0] is not default:  # a new default group since the last one
        made = _SIDE[name] = (default, dist.new_group(list(range(world_size()))))
    return made[1]


def shutdown(started: bool) -> None:
    """End the process group :func:`init` started, and free it now.

    Gloo's worker threads release each finished collective's tensors just after the caller has
    moved on; a release that comes while the interpreter finalizes needs the GIL it can no longer
    get, and the process aborts (``terminate called without an active exception``, one exit in
    ten with two ranks). Freeing the groups here (destroy, then drop gnnkit's last references:
    their destructors wait for those threads with the GIL released) ends them while Python lives.
    The caller must have dropped its DistributedDataParallel wrapper, which holds the group.
    """
    if started and is_initialized():
        dist.destroy_process_group()
        _SIDE.clear()
        gc.collect()


def resolve_device(device: Any) -> torch.device:
    """``"auto"``/``None``: this process' CUDA device when present (by local rank), else the CPU;
    otherwise the named device, given an index (``set_device`` and DDP need one)."""
    if device in (None, "auto"):
        if torch.cuda.is_available():
            return torch.device("cuda", local_rank() % torch.cuda.device_count())
        return torch.device("cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise GnnkitError(f"unknown device {device!r} ({str(exc).splitlines()[0]})") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise GnnkitError(f"device {device!r} was asked for but CUDA is not available")
    if dev.type == "cuda" and dev.index is None:
        many = env_world_size() > 1
        dev = torch.device("cuda", local_rank() % torch.cuda.device_count() if many else torch.cuda.current_device())
    return dev


def wrap_model(model: torch.nn.Module, device: torch.device, find_unused_parameters: bool = False) -> torch.nn.Module:
    """``model`` in DistributedDataParallel when several processes run, else ``model`` itself."""
    if world_size() <= 1:
        return model
    return torch.nn.parallel.DistributedDataParallel(
        model, device_ids=[device.index] if device.type == "cuda" else None,
        find_unused_parameters=find_unused_parameters)


def run_on_main(fn):
    """``fn()`` on rank 0 alone (inside :func:`local_only`, so it sees one process), its result
    broadcast to every rank; a :class:`GnnkitError` raised there is raised on every rank."""
    payload = None
    if is_main():
        try:
            with local_only():
                payload = ("ok", fn())
        except GnnkitError as exc:
            if not is_initialized():
                raise
            payload = ("error", str(exc))
    kind, value = broadcast_object(payload)
    if kind == "error":
        raise GnnkitError(value)
    return value


def barrier() -> None:
    if is_initialized():
        dist.barrier()


@contextlib.contextmanager
def main_first():
    """Run the body on rank 0 first and on the other ranks after it (caches written once)."""
    if not is_initialized():
        yield
        return
    if not is_main():
        dist.barrier()
    try:
        yield
    finally:
        if is_main():
            dist.barrier()


def broadcast_object(obj: Any, src: int = 0) -> Any:
    if not is_initialized():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def shard(items: Sequence, r: Optional[int] = None, w: Optional[int] = None, equal: bool = True) -> Sequence:
    """Rank ``r``'s share of ``items``, dealt round-robin. With ``equal`` every rank gets the same
    count (the tail that does not divide evenly is dropped), so all ranks take the same number of
    steps, which DistributedDataParallel requires."""
    r = rank() if r is None else r
    w = world_size() if w is None else w
    if w == 1:
        return items
    n = (len(items) // w) * w if equal else len(items)
    return items[r:n:w]


def row_range(n: int, r: Optional[int] = None, w: Optional[int] = None) -> tuple[int, int]:
    """Rank ``r``'s contiguous block of ``n`` rows (blocks of ``ceil(n / w)``, the last shorter)."""
    r = rank() if r is None else r
    w = world_size() if w is None else w
    block = -(-n // w)
    return min(n, r * block), min(n, (r + 1) * block)


def all_gather_rows(local: torch.Tensor, n: int) -> torch.Tensor:
    """The ``[n, d]`` tensor whose blocks (see :func:`row_range`) the ranks hold as ``local``."""
    if not is_initialized():
        return local
    w = world_size()
    block = -(-n // w)
    padded = local.new_zeros((block, *local.shape[1:]))
    padded[: local.shape[0]] = local
    parts = [torch.empty_like(padded) for _ in range(w)]
    dist.all_gather(parts, padded)
    return torch.cat(parts)[:n]
