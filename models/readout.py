"""Graph-level readouts and GCN / GraphSAGE graph classifiers.

:class:`LayerReadout` maps the node representations of several layers to graph logits:
``logits = Σ_{l ∈ L} dropout(W_l · pool(h_l) + b_l)`` ``[B, C]``, with ``pool`` a segment
reduction over each graph's rows (``sum``/``mean``/``max``, :func:`gnnkit.graphs.pool`) and ``L``
every layer (the GIN paper's readout, input features included) or only the last.

:class:`GraphConvNet`: ``num_layers`` GCN (``Â = D^-1/2 (A+I) D^-1/2``) or GraphSAGE-mean layers,
``h_{l+1} = dropout(ReLU(norm(conv_l(h_l, Â))))``, then :class:`LayerReadout` (mean pooling by
default). Inputs: ``x`` ``[n_b, F]``, ``adj`` the batch's block-diagonal
:class:`~gnnkit.sparse.Adjacency` ``[n_b, n_b]`` normalized as ``adj_norm`` says (the batcher
builds it with that norm), ``ptr`` ``[B + 1]`` each graph's row range. Output ``[B, C]``.
"""
from __future__ import annotations

from typing import Optional, Sequence

import torch
from torch import Tensor, nn

from gnnkit.errors import GnnkitError
from gnnkit.graphs.pooling import check_pool, pool
from gnnkit.precision import as_float, match_input

from .base import check_sizes
from .dropout import dropout
from .gcn import GCNConv
from .sage import SAGEConv


class LayerReadout(nn.Module):
    """``Σ_l dropout(Linear_l(pool(h_l)))`` over the given layers' widths ``dims`` (see module doc)."""

    def __init__(self, dims: Sequence[int], out_dim: int, pooling: str = "sum", dropout: float = 0.5):
        super().__init__()
        check_pool(pooling)
        self.pooling, self.dropout = pooling, dropout
        self.linears = nn.ModuleList([nn.Linear(d, out_dim) for d in dims])

    def forward(self, hs: Sequence[Tensor], ptr: Tensor) -> Tensor:
        if len(hs) != len(self.linears):
            raise GnnkitError(f"readout built for {len(self.linears)} layers, got {len(hs)}")
        out = 0
        for lin, h in zip(self.linears, hs):
            out = out + dropout(lin(pool(h, self.pooling, ptr=ptr)), self.dropout, self.training)
        return out


class GraphConvNet(nn.Module):
    """GCN or GraphSAGE layers with a graph readout (see the module docstring).

    ``conv``: ``"gcn"`` or ``"sage"``; ``readout``: ``"last"`` (the last layer only) or ``"all"``
    (every layer, input included); ``norm``: ``"batch"`` or ``None`` between layers.
    """

    def __init__(self, in_dim: int, hidden: int, out_dim: int, *, conv: str = "gcn", num_layers: int = 3,
                 dropout: float = 0.5, pooling: str = "mean", readout: str = "last", norm: Optional[str] = "batch"):
        super().__init__()
        check_sizes(in_dim, hidden, out_dim, num_layers, dropout)
        if conv not in ("gcn", "sage"):
            raise GnnkitError(f"unknown graph conv {conv!r}; known: gcn, sage")
        if readout not in ("last", "all"):
            raise GnnkitError(f"unknown readout {readout!r}; known: last, all")
        self.adj_norm = "gcn" if conv == "gcn" else "mean"
        make = GCNConv if conv == "gcn" else SAGEConv
        dims = [in_dim] + [hidden] * num_layers
        self.convs = nn.ModuleList([make(dims[i], dims[i + 1]) for i in range(num_layers)])
        self.norms = nn.ModuleList([nn.BatchNorm1d(hidden) if norm == "batch" else nn.Identity()
                                    for _ in range(num_layers)])
        self.dropout, self.readout_kind = dropout, readout
        self.readout = LayerReadout(dims if readout == "all" else dims[-1:], out_dim, pooling, dropout)

    def forward(self, x: Tensor, adj, ptr: Tensor, **_edges) -> Tensor:
        hs = [match_input(x, self.readout.linears[0].weight)]
        for conv, norm in zip(self.convs, self.norms):
            h = torch.relu(norm(conv(hs[-1], adj)))
            hs.append(dropout(h, self.dropout, self.training))
        return as_float(self.readout(hs if self.readout_kind == "all" else hs[-1:], ptr))  # float32 logits
