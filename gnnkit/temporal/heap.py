"""Keep freed memory in the process heap during TGN training on CPU (glibc's ``mallopt``).

A TGN step allocates a few hundred tensors of 100 KiB - 2 MiB (``[P, 100]`` link features,
``[M, 300]`` gates, their gradients, oneDNN's packing buffers) and frees them before the next step.
glibc serves blocks above its mmap threshold (128 KiB at start, raised only by what was freed) with
fresh ``mmap`` pages and returns the heap's free top to the kernel past its trim threshold, so every
step faults its working set in again: measured on CollegeMsg (batch 200), 360-530 minor page faults
per step and 1.1-1.5 ms of system time on a 10-12 ms step, down to 36-180 faults and 0.06-0.6 ms
with the thresholds below (BENCHMARKS.md, TGN).

:func:`keep_freed_memory` sets ``M_MMAP_THRESHOLD`` to 32 MiB (glibc's largest; larger blocks are
still mapped and unmapped) and ``M_TRIM_THRESHOLD`` to 1 GiB: freed blocks stay in the heap for the
next step. The cost: the process keeps up to 1 GiB of freed heap memory instead of handing it back
(its peak is reached anyway). The settings are process-wide, like ``torch.set_num_threads``; they
are applied by the ``temporal-link`` task on CPU unless ``GNNKIT_KEEP_HEAP=0``. Elsewhere than
Linux with glibc nothing is done.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os
import platform

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's malloc.h
MMAP_THRESHOLD = 32 * 1024 * 1024  # glibc's DEFAULT_MMAP_THRESHOLD_MAX on 64-bit
TRIM_THRESHOLD = 1024 * 1024 * 1024


def keep_freed_memory() -> bool:
    """Raise glibc's mmap and trim thresholds (module docstring); ``True`` when both were set."""
    if os.environ.get("GNNKIT_KEEP_HEAP", "1") == "0" or platform.system() != "Linux":
        return False
    if platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
