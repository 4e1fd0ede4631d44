"""How many CPU threads ``gnnkit train`` uses when ``--threads`` is not given.

torch's default is one intra-op thread per physical core, whatever else runs on the machine; on a
busy machine those threads wait for each other at every parallel region (on a 2-core machine with
other jobs running, training was about 7x slower with torch's default than with one thread). The
rule, in order:

1. ``--threads N``: N;
2. ``OMP_NUM_THREADS`` set in the environment (torchrun sets it to 1 for its workers unless the
   user set it): torch's value, which follows it;
3. else ``min(torch's default, cores // P, free)`` and at least 1, where ``cores`` is the number of
   CPUs this process may run on (``os.sched_getaffinity``), ``P`` the processes of this run on
   this machine (``LOCAL_WORLD_SIZE`` under torchrun, else 1) and ``free = round(cores - load)``
   with ``load`` the one-minute load average (cores that other work leaves idle).

:func:`choose` returns the number and the reason the run header prints.

Sampling workers (``--num-workers``, :mod:`gnnkit.samplers.pipeline`) follow the same idea: a
number given is used; ``auto`` (the default) runs one background sampling thread when the cores
this process may use, less what the load average keeps busy, leave one beside the compute threads
(the pipeline then overlaps sampling with the step, with the same batches and the same weights),
and none otherwise (on a busy machine a second thread only takes CPU time from the first).
:func:`choose_workers` returns the number and its reason.
"""
from __future__ import annotations

import os
from typing import Optional, Tuple


def available_cores() -> int:
    """CPUs this process may run on (its affinity mask; ``os.cpu_count()`` where there is none)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def _load() -> Optional[float]:
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return None


def choose(requested: Optional[int] = None) -> Tuple[int, str]:
    """``(threads, reason)`` by the rule of the module docstring."""
    import torch

    if requested:
        return int(requested), "--threads"
    if os.environ.get("OMP_NUM_THREADS"):
        return torch.get_num_threads(), "OMP_NUM_THREADS"
    cores, local = available_cores(), max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1") or 1))
    load = _load()
    free = cores if load is None else int(cores - load + 0.5)
    n = max(1, min(torch.get_num_threads(), cores // local, free))
    why = f"auto: {cores} cores" + (f", {local} processes" if local > 1 else "")
    why += f", load {load:.1f}" if load is not None else ""
    return n, why + "; --threads N to set"


def choose_workers(requested, threads: int) -> Tuple[int, str]:
    """``(num_workers, reason)``: ``requested`` when it is a number, else the ``auto`` rule above."""
    if requested not in (None, "auto"):
        return int(requested), "--num-workers"
    cores, local = available_cores(), max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1") or 1))
    load = _load()
    free = cores // local if load is None else min(cores // local, int(cores - load + 0.5))
    if free >= threads + 1:
        return 1, f"auto: a core free beside {threads} compute thread(s)"
    return 0, f"auto: no core free beside {threads} compute thread(s); --num-workers 1 to overlap anyway"


def apply(requested: Optional[int] = None) -> Tuple[int, str]:
    """Set torch's intra-op threads by :func:`choose`; returns what it chose."""
    import torch

    n, why = choose(requested)
    if n != torch.get_num_threads():
        torch.set_num_threads(n)
    return n, why
