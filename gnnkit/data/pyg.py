"""A user's PyG ``Data`` as a gnnkit graph: :func:`from_pyg` (what ``load(data)`` does).

The result is a shallow copy (the user's object is not modified; tensors are shared unless a
conversion makes new ones) with:

- ``edge_index`` int64; ``x`` float32 (integer and bool features converted; a graph without
  ``x`` gets one constant feature per node, with a warning);
- ``y`` int64 ``[N]`` (``[N, 1]`` flattened; whole-number floats accepted, fractional ones and
  labels outside ``[-1, N)`` refused), ``num_classes`` inferred as ``max(y) + 1`` when not set;
- masks: bool ``[N]`` (0/1 integer masks converted). When all three are missing a default split
  is drawn (:func:`gnnkit.data.split.make_split` ``"auto"``); when only some are, the missing
  ones split the labeled nodes outside the given masks in equal halves (PyG's ``KarateClub``
  has a training mask only). ``data.split_info`` says which. A given ``train_mask`` that selects
  no node is refused; overlaps are refused by :func:`gnnkit.data.validate`.
"""
from __future__ import annotations

import copy
import warnings

import torch
from torch import Tensor
from torch_geometric.data import Data

from gnnkit.errors import GraphValidationError

from .graph import labels_as_long
from .limits import check_nodes
from .split import attach_split
from .validate import MASKS, GraphWarning, num_nodes_of


def _mask(m, name: str, n: int) -> Tensor:
    if not isinstance(m, Tensor) or m.dim() != 1 or m.numel() != n:
        desc = f"{m.dtype} {tuple(m.shape)}" if isinstance(m, Tensor) else type(m).__name__
        raise GraphValidationError(f"{name} must be a bool [num_nodes={n}] tensor, got {desc}")
    if m.dtype != torch.bool:
        if m.is_floating_point() or m.is_complex() or bool(((m != 0) & (m != 1)).any()):
            raise GraphValidationError(f"{name} must be a bool mask (or 0/1), got dtype {m.dtype} with other values")
        m = m.bool()
    return m


def _fill_missing_masks(data: Data, missing, seed: int = 0) -> None:
    """Split the labeled nodes outside the given masks into the missing ones, equal parts."""
    taken = torch.zeros(data.y.numel(), dtype=torch.bool)
    for k in MASKS:
        if k not in missing:
            taken |= data[k]
    free = ((data.y >= 0) & ~taken).nonzero().view(-1)
    gen = torch.Generator().manual_seed(seed * 1_000_003 + 0x5EED)
    free = free[torch.randperm(free.numel(), generator=gen)]
    for i, key in enumerate(missing):
        part = free[i * free.numel() // len(missing):(i + 1) * free.numel() // len(missing)]
        mask = torch.zeros(data.y.numel(), dtype=torch.bool)
        mask[part] = True
        data[key] = mask
    data.split_info = (f"given {', '.join(k for k in MASKS if k not in missing)}; {' and '.join(missing)} drawn "
                       f"from the other {free.numel()} labeled nodes in equal parts")


def from_pyg(data: Data, split: str = "auto", name: str = "", **split_options) -> Data:
    """Convert and check ``data`` (see the module docstring); ``split`` and ``split_options`` as in
    :func:`~gnnkit.data.split.make_split`, used only when the graph has no masks."""
    out = copy.copy(data)
    n = num_nodes_of(out)
    if n == 0:
        raise GraphValidationError("empty graph: 0 nodes (set x or num_nodes)")
    check_nodes(n)
    ei = getattr(out, "edge_index", None)
    if isinstance(ei, Tensor) and not ei.dtype.is_floating_point and ei.dtype != torch.bool:
        out.edge_index = ei.long()
    x = getattr(out, "x", None)
    if x is None:
        warnings.warn("the graph has no node features; using one constant feature per node", GraphWarning,
                      stacklevel=3)
        out.x = torch.ones(n, 1)
    elif isinstance(x, Tensor) and not x.is_complex() and x.dtype != torch.float32:
        out.x = x.float()
    y = getattr(out, "y", None)
    out.y = torch.full((n,), -1, dtype=torch.long) if y is None else labels_as_long(y, n, "y")
    if getattr(out, "num_classes", None) is None:
        out.num_classes = int(out.y.max()) + 1 if int(out.y.max()) >= 0 else 0
    present = [k for k in MASKS if getattr(out, k, None) is not None]
    for k in present:
        out[k] = _mask(out[k], k, n)
    if "train_mask" in present and not bool(out.train_mask.any()):
        raise GraphValidationError("train_mask selects no node")
    if not present:
        attach_split(out, split, **split_options)
    elif len(present) < len(MASKS):
        _fill_missing_masks(out, [k for k in MASKS if k not in present])
    out.name = name or str(getattr(data, "name", "") or "data")
    return out
