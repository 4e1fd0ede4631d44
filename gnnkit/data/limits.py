"""Size checks before large allocations: :func:`check_allocation`.

A request whose arrays would need more memory than the machine has (a node id of 10^12 in an
event file, ``--num-nodes 1e12``, ``--hidden 1e9``, a label of 10^9 asking for a 10^9-bin count)
is refused up front with a :class:`~gnnkit.errors.GnnkitError` that names the figure, instead of
failing after minutes inside an allocator or being killed by the kernel.

The bound is the machine's physical memory (``os.sysconf``: pages x page size), overridable with
``$GNNKIT_MEMORY_LIMIT`` (bytes, with an optional K/M/G/T suffix) for containers whose limit is
below the machine's.
"""
from __future__ import annotations

import math
import os
from typing import Optional

from gnnkit.errors import GnnkitError

_SUFFIX = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def _parse_bytes(text: str) -> Optional[int]:
    text = text.strip().upper().removesuffix("B").removesuffix("I")
    unit = text[-1:] if text[-1:] in _SUFFIX else ""
    try:
        value = float(text[: len(text) - len(unit)])
    except ValueError:
        return None
    return int(value * _SUFFIX[unit]) if value > 0 else None


def memory_limit() -> int:
    """Bytes gnnkit allows one allocation to need: ``$GNNKIT_MEMORY_LIMIT``, else physical memory
    (64 GiB when the platform does not say)."""
    env = os.environ.get("GNNKIT_MEMORY_LIMIT")
    if env and _parse_bytes(env):
        return int(_parse_bytes(env))
    try:
        return int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return 64 << 30


def format_bytes(num_bytes: float) -> str:
    """``3.2e12`` -> ``"2.9 TiB"``."""
    value = float(num_bytes)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if abs(value) < 1024 or unit == "PiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} PiB"


def check_allocation(nbytes: float, what: str) -> None:
    """Raise a :class:`GnnkitError` when ``nbytes`` exceeds :func:`memory_limit`.

    ``what`` names the request, e.g. ``"node features [1e12 x 100] float32"``; the message reads
    ``"<what> needs 7.3 TiB, more than this machine's 23.4 GiB of memory"``. ``nbytes`` may be a
    float (products of large sizes), inf or NaN (refused too).
    """
    limit = memory_limit()
    try:
        size = float(nbytes)
    except (TypeError, ValueError, OverflowError):
        raise GnnkitError(f"{what}: size {nbytes!r} is not a number") from None
    if math.isnan(size) or size > limit:
        shown = "an unbounded amount" if not math.isfinite(size) else format_bytes(size)
        raise GnnkitError(f"{what} needs {shown}, more than this machine's {format_bytes(limit)} of memory "
                          f"(set GNNKIT_MEMORY_LIMIT to change the bound)")


def check_elements(count: float, itemsize: int, what: str) -> None:
    """:func:`check_allocation` for ``count`` elements of ``itemsize`` bytes."""
    check_allocation(float(count) * itemsize, what)


# Bytes every node costs whatever its features: int64 label, three bool masks, int64 degree and
# CSR pointer, a float32 constant feature when there are none (rounded up).
BYTES_PER_NODE = 32


def check_nodes(num_nodes: float, what: str = "") -> None:
    """:func:`check_allocation` for the per-node arrays of a graph of ``num_nodes`` nodes."""
    prefix = f"{what}: " if what else ""
    check_allocation(float(num_nodes) * BYTES_PER_NODE, f"{prefix}a graph of {num_nodes} nodes")
