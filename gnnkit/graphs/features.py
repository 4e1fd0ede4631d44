"""Node features for graphs that have none (IMDB-BINARY style): one-hot degree, as Xu et al.
(GIN, ICLR 2019) do for the social datasets.

``x[i] = onehot(min(deg_in(i), D))`` ``[N, D + 1]`` with ``D`` the largest in-degree over the whole
collection (or ``max_degree`` when given, so degrees above it share the last column). The degree is
counted over the stored directed edges (TU and OGB store both directions of an undirected edge).
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from gnnkit.errors import GnnkitError

from .collection import GraphCollection


def one_hot_degree(coll: GraphCollection, max_degree: Optional[int] = None) -> Tensor:
    """``[N, D + 1]`` float32 one-hot in-degree (see the module docstring)."""
    deg = torch.bincount(coll.edge_index[1], minlength=coll.num_nodes)
    if max_degree is None:
        max_degree = int(deg.max()) if deg.numel() else 0
    if max_degree < 0:
        raise GnnkitError(f"max_degree must be >= 0, got {max_degree}")
    return torch.nn.functional.one_hot(deg.clamp(max=max_degree), max_degree + 1).float()


def add_degree_features(coll: GraphCollection, mode: str = "auto", max_degree: Optional[int] = None
                        ) -> GraphCollection:
    """``mode``: ``"auto"`` one-hot degree only when ``x`` has no columns, ``"replace"`` always,
    ``"append"`` concatenated to ``x``, ``"none"`` unchanged."""
    if mode == "none" or mode == "auto" and coll.num_features > 0:
        return coll
    if mode not in ("auto", "replace", "append"):
        raise GnnkitError(f"unknown degree-feature mode {mode!r}; known: auto, replace, append, none")
    deg = one_hot_degree(coll, max_degree)
    if mode == "append":
        if not coll.x.is_floating_point():
            raise GnnkitError("cannot append degree features to categorical (integer) node features")
        deg = torch.cat([coll.x, deg.to(coll.x.dtype)], 1)
    return coll.with_x(deg)
