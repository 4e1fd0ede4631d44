"""Models (installed as ``gnnkit.models``): GCN, GraphSAGE, MLP and the contract they share; a
PyG-style module (``forward(x, edge_index)``) trains as :class:`~gnnkit.models.pyg.PyGModel`."""
from __future__ import annotations

from gnnkit.errors import GnnkitError

from .base import GNN
from .gcn import GCN, GCNConv
from .mlp import MLP
from .pyg import PyGModel, as_model
from .sage import GraphSAGE, SAGEConv

MODELS = {"gcn": GCN, "sage": GraphSAGE, "mlp": MLP}


def build_model(name: str, in_dim: int, out_dim: int, **kwargs) -> GNN:
    """A model by name (``gcn``, ``sage``, ``mlp``) with the given widths and options
    (``hidden``, ``num_layers``, ``dropout``, ``norm``, ``residual``, ``adj_norm``, ``diag_lambda``)."""
    try:
        cls = MODELS[name]
    except KeyError:
        raise GnnkitError(f"unknown model {name!r}; known: {', '.join(sorted(MODELS))}") from None
    return cls(in_dim, kwargs.pop("hidden", 64), out_dim, **kwargs)


__all__ = ["GNN", "GCN", "GCNConv", "GraphSAGE", "SAGEConv", "MLP", "MODELS", "build_model", "PyGModel", "as_model"]
