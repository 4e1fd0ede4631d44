"""Preprocessing transforms for :func:`gnnkit.data.load` (``transform=``) and ``gnnkit train --transform``.

A transform is any callable ``Data -> Data``, PyG's (``torch_geometric.transforms``) included. By
name (the command line, a config file, a model file's record) gnnkit knows four of PyG's:

=======================  ========================================================================
``NormalizeFeatures``    each row of ``x`` ``[N, F]`` shifted to a minimum of 0 and divided by its
                         sum (``x_i <- (x_i - min x_i) / max(1, sum_j (x_ij - min x_i))``; Kipf &
                         Welling's row normalization of bag-of-words features)
``ToUndirected``         adds the reverse of every edge (duplicates merged; ``edge_weight`` /
                         ``edge_attr`` carried to the reverse edge)
``AddSelfLoops``         adds the edge ``(i, i)`` for every node (weight 1 when there are weights)
``RemoveIsolatedNodes``  drops nodes that no edge touches; node-level tensors (``x``, ``y``,
                         masks) keep the remaining rows, edge ids are renumbered
=======================  ========================================================================

A spec is a name, a comma-separated list of names (applied left to right), a callable, or a list of
names and callables. :func:`resolve` turns a spec into ``[(label, callable)]``; :func:`apply`
runs them and checks that each returns a ``Data``; :func:`describe` gives the label a run records.
"""
from __future__ import annotations

from typing import Any, Callable, List, Tuple

from gnnkit.errors import GnnkitError

#: the transforms known by name (any case): class names of ``torch_geometric.transforms``
KNOWN = ("NormalizeFeatures", "ToUndirected", "AddSelfLoops", "RemoveIsolatedNodes")


def known_names() -> List[str]:
    return sorted(KNOWN)


def _by_name(name: str) -> Callable:
    lookup = {k.lower(): k for k in KNOWN}
    key = lookup.get(name.strip().lower())
    if key is None:
        raise GnnkitError(f"unknown transform {name.strip()!r}; known: {', '.join(known_names())}")
    import torch_geometric.transforms as T

    return getattr(T, key)()


def resolve(spec: Any) -> List[Tuple[str, Callable]]:
    """``[(label, transform)]`` of ``spec`` (see the module docstring); ``[]`` for None or ``""``.

    An unknown name raises :class:`~gnnkit.errors.GnnkitError` listing the known ones; a spec that is
    neither a name nor a callable is refused."""
    if spec is None:
        return []
    if isinstance(spec, str):
        names = [n for n in spec.split(",") if n.strip()]
        if not names and spec.strip():
            raise GnnkitError(f"transform {spec!r}: no transform named")
        out = []
        for n in names:
            fn = _by_name(n)
            out.append((type(fn).__name__, fn))
        return out
    if callable(spec):
        if type(spec).__name__ == "Compose" and hasattr(spec, "transforms"):
            return [pair for t in spec.transforms for pair in resolve(t)]
        return [(type(spec).__name__ if not hasattr(spec, "__name__") else spec.__name__, spec)]
    if isinstance(spec, (list, tuple)):
        return [pair for item in spec for pair in resolve(item)]
    raise GnnkitError(f"transform must be a name, a callable Data -> Data or a list of them, "
                      f"got {type(spec).__name__}")


def describe(spec: Any) -> str:
    """The transforms' labels joined by commas (``"NormalizeFeatures,ToUndirected"``); ``""`` for none."""
    return ",".join(label for label, _ in resolve(spec))


def apply(data, spec: Any):
    """``data`` passed through each transform of ``spec`` in order; each must return a PyG ``Data``."""
    from torch_geometric.data import Data

    for label, fn in resolve(spec):
        out = fn(data)
        if not isinstance(out, Data):
            raise GnnkitError(f"transform {label} returned {type(out).__name__}, not a torch_geometric Data")
        data = out
    return data
