"""Assembling a gnnkit graph from plain arrays: :func:`make_graph`, shared by the npz and
networkx loaders (the sources that bring no split of their own)."""
from __future__ import annotations

import warnings
from typing import Optional

import numpy as np
import torch
from torch import Tensor
from torch_geometric.data import Data
from torch_geometric.utils import to_undirected

from gnnkit.errors import GraphValidationError

from .limits import check_nodes
from .split import attach_split
from .validate import GraphWarning


def as_tensor(a, dtype: torch.dtype) -> Tensor:
    """``a`` (numpy array, tensor or sequence) as a contiguous tensor of ``dtype``. Arrays stored
    big-endian (legal in ``.npy`` and pickles) are brought to the machine's byte order first: torch
    has no other-endian tensors."""
    if isinstance(a, Tensor):
        return a.to(dtype).contiguous()
    a = np.asarray(a)
    return torch.from_numpy(np.ascontiguousarray(a, dtype=a.dtype.newbyteorder("="))).to(dtype)


def labels_as_long(y, num_nodes: int, what: str = "labels") -> Tensor:
    """Class ids int64 ``[N]`` from integer labels, or from floats that are whole numbers (a label
    like 0.7 is refused, never truncated). Every label must lie in ``[-1, N)``: a graph has at most
    one class per node, and a larger id would make every per-class table that large."""
    a = y.detach().cpu().numpy() if isinstance(y, Tensor) else np.asarray(y)
    if a.ndim == 2 and a.shape[1] == 1:
        a = a[:, 0]
    if a.ndim != 1:
        raise GraphValidationError(f"{what} must be one class id per node, got shape {a.shape}")
    if a.dtype.kind not in "iuf":
        raise GraphValidationError(f"{what} must hold integer class ids, got dtype {a.dtype}")
    if a.dtype.kind == "f":
        bad = ~np.isfinite(a) | (a != np.floor(a))
        if bool(bad.any()):
            i = int(bad.argmax())
            raise GraphValidationError(f"{what} must be whole class ids, got {float(a[i]):g} at node {i} "
                                       f"(floats are refused, not truncated)")
    if a.size:
        bad = (a < -1) | (a >= num_nodes)
        if bool(bad.any()):
            i = int(bad.argmax())
            raise GraphValidationError(f"{what}: class id {a[i].item()} at node {i} is outside "
                                       f"[-1, num_nodes={num_nodes})")
    return torch.from_numpy(np.ascontiguousarray(a.astype(np.int64)))


def make_graph(edge_index, num_nodes: int, x=None, y=None, num_classes: Optional[int] = None, *,
               name: str, undirected: bool = True, masks=None, split: str = "planetoid",
               **split_options) -> Data:
    """A ``Data`` with ``x`` float32 ``[N, F]``, ``y`` int64 ``[N]``, ``edge_index`` int64 ``[2, E]``.

    ``x=None`` gives one constant feature per node (``[N, 1]`` of ones, with a warning);
    ``y=None`` gives an unlabeled graph (all ``-1``, ``num_classes=0``). ``num_classes`` defaults
    to ``max(y) + 1``. ``undirected=True`` adds the reverse of every edge and coalesces (sorted by
    ``(row, col)``, duplicates merged). ``masks`` (a triple of bool ``[N]``) is used as given,
    otherwise :func:`~gnnkit.data.split.make_split` draws ``split`` with ``split_options``.
    """
    check_nodes(num_nodes, name)
    edge_index = as_tensor(edge_index, torch.long).view(2, -1)
    if undirected:
        edge_index = to_undirected(edge_index, num_nodes=num_nodes)
    if x is None:
        warnings.warn(f"{name} has no node features; using one constant feature per node", GraphWarning,
                      stacklevel=3)
        x = torch.ones(num_nodes, 1)
    x = as_tensor(x, torch.float32)
    y = torch.full((num_nodes,), -1, dtype=torch.long) if y is None else labels_as_long(y, num_nodes)
    if num_classes is None:
        num_classes = int(y.max()) + 1 if y.numel() and int(y.max()) >= 0 else 0
    data = Data(x=x, y=y, edge_index=edge_index, num_nodes=num_nodes)
    data.num_classes = int(num_classes)
    data.name = name
    if masks is not None:
        data.train_mask, data.val_mask, data.test_mask = (as_tensor(m, torch.bool) for m in masks)
    else:
        attach_split(data, split, **split_options)
    return data
