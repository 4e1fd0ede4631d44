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
from typing import Any, Dict, Optional

from torch import Tensor


def _move(value: Any, device) -> Any:
    if isinstance(value, Tensor) or hasattr(value, "to") and not isinstance(value, (list, tuple, dict)):
        return value.to(device)
    if isinstance(value, list) and type(value) is list:
        return [_move(v, device) for v in value]
    return value


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

    def to(self, device) -> "Batch":
        """A copy on ``device`` (tensors, adjacencies and plain lists of them moved; the rest shared).
        :class:`~gnnkit.history.HistoryBlocks` stays as it is (its store decides where rows live)."""
        moved = {f.name: _move(getattr(self, f.name), device) for f in fields(self) if f.name != "extra"}
        extra = {k: _move(v, device) for k, v in self.extra.items()}
        return replace(self, **moved, extra=extra)
