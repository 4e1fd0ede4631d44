"""GIN, the graph isomorphism network (Xu et al., "How Powerful are Graph Neural Networks?",
ICLR 2019).

Layer ``l``: ``h_i^{l+1} = MLP_l((1 + ε_l) · h_i^l + Σ_{j ∈ N(i)} h_j^l)``, i.e.
``MLP_l((1 + ε_l) h + A h)`` with ``A`` the batch's block-diagonal adjacency *unnormalized*
(``adj_norm = "sum"``, no self-loops) ``[n_b, n_b]``. ``ε_l`` is learned (``train_eps=True``,
GIN-ε) or fixed at ``eps`` (GIN-0 by default). ``MLP_l``: ``Linear → BatchNorm → ReLU → Linear``,
followed by ``BatchNorm → ReLU`` as in the authors' code.

Readout from every layer (the paper's eq. 4.2): ``logits = Σ_{l=0}^{L} dropout(W_l ·
pool(h^l))`` with ``h^0 = x`` and ``pool`` a sum (default, the injective choice) or mean over each
graph's rows. Inputs: ``x`` ``[n_b, F]``, ``adj`` ``[n_b, n_b]``, ``ptr`` ``[B + 1]``; output
``[B, C]``.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from gnnkit.precision import as_float, match_input

from .base import check_sizes
from .readout import LayerReadout


def gin_mlp(in_dim: int, hidden: int, out_dim: int) -> nn.Sequential:
    """``Linear(in, hidden) → BatchNorm → ReLU → Linear(hidden, out)``."""
    return nn.Sequential(nn.Linear(in_dim, hidden), nn.BatchNorm1d(hidden), nn.ReLU(), nn.Linear(hidden, out_dim))


class GINConv(nn.Module):
    """``MLP((1 + ε) h + A h)``: ``h`` ``[n, d_in]``, ``adj`` ``[n, n]`` (sum) → ``[n, d_out]``."""

    def __init__(self, mlp: nn.Module, eps: float = 0.0, train_eps: bool = False):
        super().__init__()
        self.mlp = mlp
        if train_eps:
            self.eps = nn.Parameter(torch.tensor([float(eps)]))
        else:
            self.register_buffer("eps", torch.tensor([float(eps)]))

    def forward(self, h: Tensor, adj) -> Tensor:
        return self.mlp((1 + self.eps) * h + adj @ h)


class GIN(nn.Module):
    """``num_layers`` GIN layers of width ``hidden`` and a readout from every layer."""

    adj_norm = "sum"

    def __init__(self, in_dim: int, hidden: int, out_dim: int, *, num_layers: int = 5, dropout: float = 0.5,
                 train_eps: bool = False, eps: float = 0.0, pooling: str = "sum"):
        super().__init__()
        check_sizes(in_dim, hidden, out_dim, num_layers, dropout)
        dims = [in_dim] + [hidden] * num_layers
        self.convs = nn.ModuleList([GINConv(gin_mlp(dims[i], hidden, hidden), eps, train_eps)
                                    for i in range(num_layers)])
        self.norms = nn.ModuleList([nn.BatchNorm1d(hidden) for _ in range(num_layers)])
        self.readout = LayerReadout(dims, out_dim, pooling, dropout)

    def embeddings(self, x: Tensor, adj) -> list:
        """``[h^0 = x, h^1, ..., h^L]``, each ``[n_b, d_l]``."""
        hs = [match_input(x, self.readout.linears[0].weight)]
        for conv, norm in zip(self.convs, self.norms):
            hs.append(torch.relu(norm(conv(hs[-1], adj))))
        return hs

    def forward(self, x: Tensor, adj, ptr: Tensor, **_edges) -> Tensor:
        return as_float(self.readout(self.embeddings(x, adj), ptr))  # float32 logits under autocast
