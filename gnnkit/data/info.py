"""What a graph is, in figures: :func:`describe` (a dict) and :func:`format_info` (text).

With ``E`` directed edges ``j -> i`` (``edge_index[:, e] = (j, i)``):

- degree of ``i`` = number of edges into ``i`` (the messages ``i`` aggregates; for an undirected
  graph, stored with both directions, it is the usual degree);
- isolated nodes: no edge in or out;
- edge homophily = ``|{e : y_j = y_i}| / |{e : y_j >= 0, y_i >= 0}|`` over non-loop edges whose
  endpoints are both labeled (``None`` when there is none);
- memory: bytes of every tensor the ``Data`` holds.
"""
from __future__ import annotations

from typing import Any, Dict

import torch
from torch import Tensor
from torch_geometric.data import Data

from .validate import MASKS, duplicate_mask, num_nodes_of


def describe(data: Data) -> Dict[str, Any]:
    """Statistics of ``data`` as a JSON-ready dict (see the module docstring)."""
    n = num_nodes_of(data)
    ei = data.edge_index
    x, y = getattr(data, "x", None), getattr(data, "y", None)
    deg = torch.bincount(ei[1], minlength=n) if n else torch.zeros(0, dtype=torch.long)
    touched = torch.zeros(n, dtype=torch.bool)
    touched[ei[0]] = True
    touched[ei[1]] = True
    loops = ei[0] == ei[1]
    homophily = None
    if isinstance(y, Tensor) and ei.numel():
        yj, yi = y[ei[0]], y[ei[1]]
        both = (yj >= 0) & (yi >= 0) & ~loops
        if bool(both.any()):
            homophily = float(((yj == yi) & both).sum()) / float(both.sum())
    tensors = [v for _, v in data.items() if isinstance(v, Tensor)]
    return {
        "name": str(getattr(data, "name", "graph")),
        "nodes": n,
        "edges": int(ei.size(1)),
        "features": int(x.size(1)) if isinstance(x, Tensor) and x.dim() == 2 else 0,
        "classes": int(getattr(data, "num_classes", 0) or 0),
        "labeled": int((y >= 0).sum()) if isinstance(y, Tensor) else 0,
        "split": {k.replace("_mask", ""): int(getattr(data, k).sum()) for k in MASKS
                  if getattr(data, k, None) is not None},
        "split_info": getattr(data, "split_info", None),
        "degree": {"min": int(deg.min()) if n else 0, "mean": float(ei.size(1)) / max(n, 1),
                   "max": int(deg.max()) if n else 0},
        "isolated": int(n - touched.sum()),
        "self_loops": int(loops.sum()),
        "duplicate_edges": int(duplicate_mask(ei, n).sum()),
        "edge_homophily": homophily,
        "memory_bytes": int(sum(t.element_size() * t.numel() for t in tensors)),
    }


def _size(num_bytes: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if num_bytes < 1024 or unit == "GiB":
            return f"{num_bytes:.0f} {unit}" if unit == "B" else f"{num_bytes:.1f} {unit}"
        num_bytes /= 1024
    return ""


def format_info(info: Dict[str, Any]) -> str:
    """The dict of :func:`describe` as aligned ``key: value`` lines."""
    split = info["split"]
    deg = info["degree"]
    hom = info["edge_homophily"]
    rows = [
        ("name", info["name"]),
        ("nodes", f"{info['nodes']}"),
        ("edges", f"{info['edges']} (directed)"),
        ("features", f"{info['features']}"),
        ("classes", f"{info['classes']}"),
        ("labeled nodes", f"{info['labeled']}"),
        ("split (train/val/test)", "/".join(str(split.get(k, 0)) for k in ("train", "val", "test"))
         + (f" ({info['split_info']})" if info.get("split_info") else "")),
        ("degree (min/mean/max)", f"{deg['min']}/{deg['mean']:.2f}/{deg['max']}"),
        ("isolated nodes", f"{info['isolated']}"),
        ("self-loops", f"{info['self_loops']}"),
        ("duplicate edges", f"{info['duplicate_edges']}"),
        ("edge homophily", "n/a" if hom is None else f"{hom:.4f}"),
        ("memory", _size(info["memory_bytes"])),
    ]
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k + ':':<{width + 1}} {v}" for k, v in rows)
