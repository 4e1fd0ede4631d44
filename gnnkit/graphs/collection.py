"""GraphCollection: many small graphs concatenated once into flat tensors.

With ``G`` graphs, ``N`` nodes and ``E`` directed edges in total:

* ``x`` ``[N, F]``: node features, graph after graph (float, or int64 categorical features such as
  OGB's atom features ``[N, 9]``);
* ``edge_index`` ``[2, E]`` int64 with *global* node ids (graph ``g``'s nodes are
  ``node_ptr[g] .. node_ptr[g + 1] - 1``), ordered by graph and, inside a graph, stably by target
  node (CSR order: the edges into node ``i`` are ``indptr[i] .. indptr[i + 1] - 1``);
* ``edge_attr`` ``[E, D]`` or ``None``: edge features in the same order;
* ``node_ptr``, ``edge_ptr`` ``[G + 1]`` int64: graph ``g`` owns nodes ``node_ptr[g]:node_ptr[g+1]``
  and edges ``edge_ptr[g]:edge_ptr[g+1]``;
* ``y`` ``[G]`` int64 class ids (``task="multiclass"``) or ``[G, T]`` float (``"binary"``: 0/1
  targets, NaN where a label is missing; ``"regression"``).

Built once from PyG's collated form (``InMemoryDataset``'s ``(data, slices)``, local node ids per
graph) by :meth:`GraphCollection.from_collated`, or from a Python list of ``Data`` by
:meth:`GraphCollection.from_data_list`; both validate with tensor operations over all edges and
raise :class:`~gnnkit.errors.GraphValidationError` one-liners.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Dict, Optional, Sequence

import torch
from torch import Tensor

from gnnkit.errors import GnnkitError, GraphValidationError

TASKS = ("multiclass", "binary", "regression")


@dataclass
class GraphCollection:
    """``G`` graphs in flat tensors (see the module docstring for every field's shape)."""

    x: Tensor
    edge_index: Tensor
    node_ptr: Tensor
    edge_ptr: Tensor
    y: Tensor
    task: str = "multiclass"
    num_classes: int = 0
    edge_attr: Optional[Tensor] = None
    name: str = "graphs"
    evaluator_name: Optional[str] = None
    meta: Dict[str, Any] = field(default_factory=dict)

    # -- sizes ---------------------------------------------------------------------------------
    @property
    def num_graphs(self) -> int:
        return self.node_ptr.numel() - 1

    @property
    def num_nodes(self) -> int:
        return self.x.shape[0]

    @property
    def num_edges(self) -> int:
        return self.edge_index.shape[1]

    @property
    def num_features(self) -> int:
        return self.x.shape[1]

    @property
    def num_tasks(self) -> int:
        """Targets per graph: 1 for single-label classes, ``T`` for ``y`` ``[G, T]``."""
        return 1 if self.y.dim() == 1 else self.y.shape[1]

    def nodes_per_graph(self) -> Tensor:
        return self.node_ptr.diff()

    def edges_per_graph(self) -> Tensor:
        return self.edge_ptr.diff()

    def graph_of_node(self) -> Tensor:
        """``[N]``: the graph id of every node."""
        return torch.repeat_interleave(torch.arange(self.num_graphs), self.nodes_per_graph(),
                                       output_size=self.num_nodes)

    def indptr(self) -> Tensor:
        """``[N + 1]`` int64: the CSR row pointer by target node (edges are stored in that order)."""
        ptr = torch.zeros(self.num_nodes + 1, dtype=torch.long)
        torch.cumsum(torch.bincount(self.edge_index[1], minlength=self.num_nodes), 0, out=ptr[1:])
        return ptr

    def with_x(self, x: Tensor) -> "GraphCollection":
        """The same graphs with node features ``x`` ``[N, F']``."""
        if x.shape[0] != self.num_nodes:
            raise GraphValidationError(f"x has {x.shape[0]} rows, the graphs have {self.num_nodes} nodes")
        return replace(self, x=x)

    def to(self, device) -> "GraphCollection":
        """The collection on ``device`` (tensors and the split's id tensors moved; ``self`` when there)."""
        if self.x.device == torch.device(device):
            return self
        move = {f: getattr(self, f) for f in ("x", "edge_index", "node_ptr", "edge_ptr", "y", "edge_attr")}
        moved = {k: None if v is None else v.to(device) for k, v in move.items()}
        meta = dict(self.meta)
        if "split" in meta:
            meta["split"] = {k: v.to(device) for k, v in meta["split"].items()}
        return replace(self, **moved, meta=meta)

    def with_split(self, train, val, test) -> "GraphCollection":
        """The same graphs with the split ``{"train", "val", "test"}`` -> int64 graph ids (a fold)."""
        split = {k: torch.as_tensor(v, dtype=torch.long, device=self.y.device)
                 for k, v in (("train", train), ("val", val), ("test", test))}
        for k, ids in split.items():
            if ids.dim() != 1 or ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= self.num_graphs):
                raise GraphValidationError(f"{k} split must be graph ids in [0, {self.num_graphs})")
        return replace(self, meta={**self.meta, "split": split})

    def split_ids(self, name: str) -> Tensor:
        """Graph ids of split ``name`` (``train``, ``val``, ``test``; OGB's ``valid`` serves ``val``)."""
        split = self.meta.get("split")
        if split is None:
            raise GnnkitError(f"{self.name} has no split: use with_split(train, val, test) (e.g. a fold)")
        key = "valid" if name == "val" and "val" not in split else name
        if key not in split:
            raise GnnkitError(f"{self.name}'s split has no {name!r} part (has {', '.join(split)})")
        return split[key]

    def describe(self) -> Dict[str, Any]:
        """Sizes for ``gnnkit info``: graphs, average nodes and edges, classes, task."""
        g = max(self.num_graphs, 1)
        return {"name": self.name, "graphs": self.num_graphs, "avg_nodes": self.num_nodes / g,
                "avg_edges": self.num_edges / g, "features": self.num_features, "classes": self.num_classes,
                "tasks": self.num_tasks, "task": self.task, "edge_features": 0 if self.edge_attr is None
                else self.edge_attr.shape[1]}

    # -- construction --------------------------------------------------------------------------
    @classmethod
    def from_collated(cls, data, slices: Dict[str, Tensor], **kwargs) -> "GraphCollection":
        """From PyG's collated ``(data, slices)`` (``InMemoryDataset.collate``: ``edge_index``
        holds local node ids per graph, ``slices["edge_index"]`` the edge offsets). Node offsets come
        from ``slices["x"]``, else from ``data.num_nodes`` per graph (``slices["num_nodes"]``)."""
        edge_ptr = _ptr(slices, "edge_index")
        node_ptr = _node_ptr(data, slices)
        x = getattr(data, "x", None)
        if x is None:
            x = torch.zeros(int(node_ptr[-1]), 0)
        y = getattr(data, "y", None)
        if y is None:
            raise GraphValidationError("graph labels y are missing")
        if y.dim() == 2 and y.shape[1] == 1 and not y.is_floating_point():
            y = y.view(-1)
        edge_attr = getattr(data, "edge_attr", None)
        return cls.build(x, data.edge_index, node_ptr, edge_ptr, y, edge_attr=edge_attr, **kwargs)

    @classmethod
    def from_data_list(cls, graphs: Sequence, **kwargs) -> "GraphCollection":
        """From a Python list of PyG ``Data`` (each with ``edge_index`` local to the graph, ``y`` of
        one graph: a scalar class or a ``[1, T]``/``[T]`` row). Collated once with PyG's collate."""
        from torch_geometric.data import Data, InMemoryDataset

        if not isinstance(graphs, (list, tuple)) or not graphs:
            raise GraphValidationError("expected a non-empty list of torch_geometric Data objects")
        for i, g in enumerate(graphs):
            if not isinstance(g, Data):
                raise GraphValidationError(f"graph {i} is a {type(g).__name__}, not a torch_geometric Data")
            if getattr(g, "y", None) is None:
                raise GraphValidationError(f"graph {i} has no label y")
            if g.edge_index is None:
                raise GraphValidationError(f"graph {i} has no edge_index")
            xs = getattr(g, "x", None)
            if xs is not None and xs.dim() != 2:
                raise GraphValidationError(f"graph {i}: x must be [n, F], got {tuple(xs.shape)}")
        widths = {g.x.shape[1] if getattr(g, "x", None) is not None else None for g in graphs}
        if len(widths) > 1:
            raise GraphValidationError(f"graphs have different feature widths: {sorted(map(str, widths))}")
        try:
            data, slices = InMemoryDataset.collate([g.clone() for g in graphs])
        except (RuntimeError, ValueError, TypeError) as exc:
            raise GraphValidationError(f"graphs cannot be concatenated: {str(exc).splitlines()[0]}") from None
        return cls.from_collated(data, slices, **kwargs)

    @classmethod
    def build(cls, x: Tensor, edge_index: Tensor, node_ptr: Tensor, edge_ptr: Tensor, y: Tensor, *,
              edge_attr: Optional[Tensor] = None, task: Optional[str] = None, num_classes: Optional[int] = None,
              local: bool = True, **kwargs) -> "GraphCollection":
        """Validate and put the edges into CSR order. ``local``: ``edge_index`` holds per-graph node
        ids (PyG's collated form) rather than global ones. ``task`` defaults to ``"multiclass"`` for
        integer ``y`` ``[G]`` and ``"binary"`` for ``y`` ``[G, T]``."""
        node_ptr, edge_ptr = node_ptr.long(), edge_ptr.long()
        _check_ptrs(node_ptr, edge_ptr, x, edge_index)
        g = node_ptr.numel() - 1
        graph_of_edge = torch.repeat_interleave(torch.arange(g), edge_ptr.diff(), output_size=edge_index.shape[1])
        ei = edge_index.long()
        if local:
            ei = ei + node_ptr[graph_of_edge]
        _check_edges(ei, node_ptr, graph_of_edge)
        task = task or ("multiclass" if y.dim() == 1 and not y.is_floating_point() else "binary")
        y, num_classes = _check_labels(y, g, task, num_classes)
        if edge_attr is not None:
            if edge_attr.dim() == 1:
                edge_attr = edge_attr.view(-1, 1)
            if edge_attr.shape[0] != ei.shape[1]:
                raise GraphValidationError(f"edge_attr has {edge_attr.shape[0]} rows for {ei.shape[1]} edges")
        if x.is_floating_point() and not bool(torch.isfinite(x).all()):
            raise GraphValidationError("x holds NaN or infinite values")
        perm = torch.sort(ei[1], stable=True).indices  # CSR order: by target (graphs stay in order)
        ei = ei[:, perm]
        edge_attr = None if edge_attr is None else edge_attr[perm]
        return cls(x=x, edge_index=ei, node_ptr=node_ptr, edge_ptr=edge_ptr, y=y, task=task,
                   num_classes=num_classes, edge_attr=edge_attr, **kwargs)


def _ptr(slices: Dict[str, Tensor], key: str) -> Tensor:
    if key not in slices:
        raise GraphValidationError(f"collated graphs have no {key} offsets")
    return slices[key].long()


def _node_ptr(data, slices: Dict[str, Tensor]) -> Tensor:
    if "x" in slices:
        return slices["x"].long()
    counts = data._store.__dict__.get("_num_nodes")  # PyG's collate keeps the per-graph counts there
    if not isinstance(counts, (list, tuple)):
        raise GraphValidationError("graphs have neither x nor num_nodes: node counts unknown")
    ptr = torch.zeros(len(counts) + 1, dtype=torch.long)
    torch.cumsum(torch.as_tensor(counts, dtype=torch.long), 0, out=ptr[1:])
    return ptr


def _check_ptrs(node_ptr: Tensor, edge_ptr: Tensor, x: Tensor, edge_index: Tensor) -> None:
    if node_ptr.dim() != 1 or node_ptr.numel() < 2 or node_ptr.numel() != edge_ptr.numel():
        raise GraphValidationError(f"node_ptr and edge_ptr must be [G + 1] with G >= 1, got "
                                   f"{tuple(node_ptr.shape)} and {tuple(edge_ptr.shape)}")
    for name, ptr, total in (("node_ptr", node_ptr, x.shape[0]), ("edge_ptr", edge_ptr, edge_index.shape[1])):
        if int(ptr[0]) != 0 or int(ptr[-1]) != total or bool((ptr.diff() < 0).any()):
            raise GraphValidationError(f"{name} must rise from 0 to {total}, got {int(ptr[0])}..{int(ptr[-1])}")
    if x.dim() != 2:
        raise GraphValidationError(f"x must be [N, F], got {tuple(x.shape)}")
    if edge_index.dim() != 2 or edge_index.shape[0] != 2:
        raise GraphValidationError(f"edge_index must be [2, E], got {tuple(edge_index.shape)}")
    if edge_index.is_floating_point():
        raise GraphValidationError(f"edge_index must hold integer node ids, got {edge_index.dtype}")


def _check_edges(ei: Tensor, node_ptr: Tensor, graph_of_edge: Tensor) -> None:
    """Every edge of graph ``g`` joins two nodes of ``g`` (global ids in its node range)."""
    if ei.shape[1] == 0:
        return
    lo, hi = node_ptr[graph_of_edge], node_ptr[graph_of_edge + 1]
    bad = ((ei < lo) | (ei >= hi)).any(0)
    if bool(bad.any()):
        e = int(bad.nonzero()[0, 0])
        g = int(graph_of_edge[e])
        raise GraphValidationError(f"graph {g}: an edge joins local nodes "
                                   f"{(ei[:, e] - lo[e]).tolist()} outside its {int(hi[e] - lo[e])} nodes "
                                   f"({int(bad.sum())} such edges)")


def _check_labels(y: Tensor, g: int, task: str, num_classes: Optional[int]):
    if task not in TASKS:
        raise GnnkitError(f"unknown graph task {task!r}; known: {', '.join(TASKS)}")
    if y.shape[0] != g:
        raise GraphValidationError(f"y has {y.shape[0]} rows for {g} graphs (one label per graph)")
    if task == "multiclass":
        if y.dim() != 1 or y.is_floating_point() and not bool((y == y.round()).all()):
            raise GraphValidationError(f"multiclass y must be [G] class ids, got {tuple(y.shape)} {y.dtype}")
        y = y.long()
        if g and int(y.min()) < 0:
            raise GraphValidationError(f"graph {int((y < 0).nonzero()[0, 0])} has no label (y < 0)")
        k = int(y.max()) + 1 if g else 0
        if num_classes is not None and k > num_classes:
            raise GraphValidationError(f"y holds class {k - 1} but num_classes is {num_classes}")
        return y, int(num_classes or k)
    y = y.float().view(g, -1)
    known = ~torch.isnan(y)
    if task == "binary" and bool(((y[known] != 0) & (y[known] != 1)).any()):
        raise GraphValidationError("binary targets must be 0, 1 or NaN (missing)")
    if not bool(known.any(0).all()):
        raise GraphValidationError(f"target {int((~known.any(0)).nonzero()[0, 0])} has no label on any graph")
    return y, int(num_classes or (2 if task == "binary" else 0))
