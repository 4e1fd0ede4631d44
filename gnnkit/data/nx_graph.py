"""A ``networkx.Graph``/``DiGraph`` with node attributes as a gnnkit graph.

Nodes are numbered ``0..N-1`` in ``G.nodes`` order. Node attribute ``x`` (a number or a vector
per node) becomes ``x`` float32 ``[N, F]``, ``y`` (an int, or None for unlabeled) becomes ``y``
int64 ``[N]``; other names can be given with ``x_key``/``y_key``. When every node has
``train_mask``/``val_mask``/``test_mask`` attributes they are the split, otherwise a seeded one is
drawn (random 60/20/20 of the labeled nodes by default). An undirected ``Graph`` gives both
directions of each edge; a ``DiGraph`` keeps its edges ``u -> v`` as ``edge_index[:, e] = (u, v)``.

networkx holds its graph in Python dicts, so reading it is a pass over them (``G.edges``, the
attribute dicts); everything after that is tensor operations.
"""
from __future__ import annotations

import numpy as np
from torch_geometric.data import Data

from gnnkit.errors import GnnkitError

from .graph import labels_as_long, make_graph

_MASKS = ("train_mask", "val_mask", "test_mask")


def _node_attribute(G, key: str, nodes):
    values = [G.nodes[v].get(key) for v in nodes]
    n_missing = sum(v is None for v in values)
    return values, n_missing


def load_networkx(G, x_key: str = "x", y_key: str = "y", name: str = "networkx", split: str = "random",
                  **split_options) -> Data:
    """Convert ``G`` (see the module docstring)."""
    import networkx as nx

    if not isinstance(G, (nx.Graph, nx.DiGraph)) or G.is_multigraph():
        raise GnnkitError(f"expected a networkx Graph or DiGraph, got {type(G).__name__}")
    nodes = list(G.nodes)
    n = len(nodes)
    if n == 0:
        raise GnnkitError("networkx graph has no nodes")
    index = {v: i for i, v in enumerate(nodes)}
    edges = np.array([(index[u], index[v]) for u, v in G.edges], dtype=np.int64).reshape(-1, 2).T
    feats, missing = _node_attribute(G, x_key, nodes)
    if 0 < missing < n:
        raise GnnkitError(f"node attribute {x_key!r} is missing on {missing} of {n} nodes")
    x = None
    if missing == 0:
        try:
            x = np.asarray(feats, dtype=np.float32).reshape(n, -1)
        except ValueError as exc:
            raise GnnkitError(f"node attribute {x_key!r} must be a number or an equal-length vector "
                              f"on every node ({exc})") from None
    labels, missing = _node_attribute(G, y_key, nodes)
    y = None if missing == n else labels_as_long(np.array([-1 if v is None else v for v in labels]), n,
                                                 f"node attribute {y_key!r}")
    masks = None
    if all(all(k in G.nodes[v] for v in nodes) for k in _MASKS):
        masks = [np.array([bool(G.nodes[v][k]) for v in nodes]) for k in _MASKS]
    return make_graph(edges, n, x, y, name=name, undirected=not G.is_directed(), masks=masks, split=split,
                      **split_options)
