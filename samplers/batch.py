"""Batch: what a sampler yields and what a task's ``training_step`` consumes.

Shapes (``n_in`` input rows, ``n_out`` output rows, ``F`` features, ``T`` targets, ``m`` loss rows,
``E`` labelled edges):

* ``x`` ``[n_in, F]``: input features of the batch's nodes, in the order of ``n_id``;
* ``y`` ``[n_out]`` (class ids) or ``[n_out, T]`` (multi-label targets) of the output rows; for an
  edge batch, the labels of the ``E`` edges;
* ``adj``: the propagation operator(s): one :class:`~gnnkit.sparse.Adjacency` ``[n_out, n_in]`` for
  every layer (full batch, Cluster-GCN), a list with one bipartite block per layer in layer order
  (layer ``l`` maps ``adj[l].num_cols`` rows to the first ``adj[l].num_rows``: neighbor sampling), or
  :class:`~gnnkit.history.HistoryBlocks` (MVS with historical embeddings), or :class:`PygEdges` (a
  PyG-style subgraph, for a model that declares ``wants_edge_index``: :mod:`gnnkit.models.pyg`);
* ``n_id`` ``[n_in]``: global ids of the input rows, output rows first (``None``: the whole graph in
  id order);
* ``loss_index`` ``[m]``: the output rows (edge rows for an edge batch) that carry the loss;
  ``loss_weight`` ``[m]`` or ``None``: when given the loss is ``Σ_i w_i ℓ_i`` (weights already
  normalized, e.g. importance weights), otherwise the mean of ``ℓ_i``;
* ``num_nodes`` = ``n_in``; ``batch_size``: the number of seed (output) nodes, ``None`` when every
  row is an output row;
* ``edge_label_index`` ``[2, E]`` (batch-local row ids) and ``edge_label`` ``[E]``: the edges a link
  task scores, ``None`` for node batches;
* ``extra``: sampler-specific fields (MVS: ``cand_pos`` ``[m]`` positions among its candidates,
  ``refresh``: whether the batch refreshed the history; Cluster-GCN: the batch's split masks).
  ``batch.key`` reads ``extra["key"]`` when the dataclass has no field ``key``.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from typing import Any, Dict, Iterator, Optional

import torch
from torch import Tensor


def _move(value: Any, device, non_blocking: bool = False) -> Any:
    if isinstance(value, Tensor):
        return value.to(device, non_blocking=non_blocking)
    if hasattr(value, "to") and not isinstance(value, (list, tuple, dict)):
        return value.to(device)
    if isinstance(value, list) and type(value) is list:
        return [_move(v, device, non_blocking) for v in value]
    return value


def _pin(value: Any) -> Any:
    """``value`` with its dense CPU tensors (also inside plain lists) in page-locked memory."""
    if isinstance(value, Tensor):
        return value.pin_memory() if value.layout == torch.strided and not value.is_cuda else value
    if isinstance(value, list) and type(value) is list:
        return [_pin(v) for v in value]
    return value


def _parts(t: Tensor) -> Iterator[Tensor]:
    if t.layout in (torch.sparse_csr, torch.sparse_csc):
        yield from (t.crow_indices() if t.layout == torch.sparse_csr else t.ccol_indices(),
                    t.col_indices() if t.layout == torch.sparse_csr else t.row_indices(), t.values())
    elif t.layout == torch.sparse_coo:
        yield from (t._indices(), t._values())
    else:
        yield t


def device_tensors(value: Any, depth: int = 3) -> Iterator[Tensor]:
    """Every tensor ``value`` holds: itself, the items of lists, tuples and dicts, and the attributes
    of other objects (a :class:`Batch`'s fields, an ``Adjacency``'s CSR), ``depth`` levels down;
    sparse tensors as their index and value tensors. For ``record_stream`` after a copy on a side
    stream (:mod:`samplers.pipeline`)."""
    if isinstance(value, Tensor):
        yield from _parts(value)
    elif depth <= 0 or value is None or isinstance(value, (str, bytes, int, float, bool)):
        return
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from device_tensors(v, depth - 1)
    elif isinstance(value, dict):
        for v in value.values():
            yield from device_tensors(v, depth - 1)
    elif hasattr(value, "__dict__"):
        for v in vars(value).values():
            yield from device_tensors(v, depth - 1)


@dataclass
class PygEdges:
    """A PyG-style subgraph: ``edge_index`` ``[2, E]`` (``(source, target)`` in batch-local row ids),
    ``edge_weight`` ``[E]`` (raw weights ``a_ij``, not normalized) or ``None``, ``edge_attr``
    ``[E, D]`` or ``None``. What the samplers hand a model written the PyG way."""

    edge_index: Tensor
    edge_weight: Optional[Tensor] = None
    edge_attr: Optional[Tensor] = None

    def to(self, device) -> "PygEdges":
        return PygEdges(*(None if t is None else t.to(device) for t in (self.edge_index, self.edge_weight,
                                                                          self.edge_attr)))


@dataclass
class Batch:
    """One training batch (see the module docstring for every field's shape)."""

    x: Tensor
    y: Optional[Tensor]
    adj: Any
    n_id: Optional[Tensor]
    loss_index: Tensor
    loss_weight: Optional[Tensor] = None
    num_nodes: int = 0
    batch_size: Optional[int] = None
    edge_label_index: Optional[Tensor] = None
    edge_label: Optional[Tensor] = None
    extra: Dict[str, Any] = field(default_factory=dict)

    def __getattr__(self, name: str) -> Any:
        # only reached for names that are not fields: sampler-specific extras
        extra = self.__dict__.get("extra")
        if extra is not None and name in extra:
            return extra[name]
        raise AttributeError(f"Batch has no field or extra {name!r}")

    def to(self, device, non_blocking: bool = False) -> "Batch":
        """A copy on ``device`` (tensors, adjacencies and plain lists of them moved; the rest shared).
        :class:`~gnnkit.history.HistoryBlocks` stays as it is (its store decides where rows live).
        ``non_blocking``: plain tensors are copied asynchronously (from pinned memory, on CUDA)."""
        moved = {f.name: _move(getattr(self, f.name), device, non_blocking) for f in fields(self) if f.name != "extra"}
        extra = {k: _move(v, device, non_blocking) for k, v in self.extra.items()}
        return replace(self, **moved, extra=extra)

    def pin_memory(self) -> "Batch":
        """A copy whose dense CPU tensors (fields, ``extra`` and plain lists of them) are in
        page-locked memory, so that a ``to("cuda", non_blocking=True)`` overlaps the host; needs CUDA."""
        pinned = {f.name: _pin(getattr(self, f.name)) for f in fields(self) if f.name != "extra"}
        return replace(self, **pinned, extra={k: _pin(v) for k, v in self.extra.items()})
