"""GIN with edge features for ogbg-mol* (the OGB baselines, Hu et al., NeurIPS 2020), with or
without a virtual node.

Atoms and bonds enter through OGB's categorical encoders (``ogb.graphproppred.mol_encoder``):
``AtomEncoder(d)(x)`` ``[n_b, 9] int64 → [n_b, d]`` and ``BondEncoder(d)(e)`` ``[e_b, 3] → [e_b, d]``
(a sum of one embedding per feature column).

Layer (:class:`GINEConv`, OGB's ``GINConv``): ``h_i' = MLP((1 + ε) h_i + Σ_{(j → i)} ReLU(h_j +
bond(e_ji)))`` with ``MLP = Linear(d, 2d) → BatchNorm → ReLU → Linear(2d, d)`` and ``ε`` learned;
the sum runs over the batch's ``edge_index`` ``[2, e_b]`` (one ``index_add`` into the targets).

:class:`MolGIN` (OGB's ``GNN_node`` / ``GNN_node_Virtualnode``): ``h^0 = atom(x)``; for each layer
``l``: with a virtual node, ``h^l ← h^l + v^l[batch]``; ``h^{l+1} = dropout(ReLU(BN(conv(h^l))))``
(no ReLU after the last); with a virtual node (all but the last layer)
``v^{l+1} = dropout(MLP_v(Σ_{i ∈ g} h_i^l + v^l))`` with ``v^0 = 0`` (a learned embedding
initialized to zero), ``MLP_v = Linear(d, 2d) → BN → ReLU → Linear(2d, d) → BN → ReLU``. Readout:
``Linear(pool(h^L))`` ``[B, T]`` with mean pooling by default.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from gnnkit.errors import GnnkitError
from gnnkit.graphs.pooling import check_pool, pool
from gnnkit.precision import as_float

from .base import check_sizes
from .dropout import dropout


class GINEConv(nn.Module):
    """OGB's GIN layer with bond features (see the module docstring): ``h`` ``[n, d]``,
    ``edge_index`` ``[2, e]`` (``j -> i``), ``edge_attr`` ``[e, 3]`` int64 → ``[n, d]``."""

    def __init__(self, emb_dim: int):
        super().__init__()
        from ogb.graphproppred.mol_encoder import BondEncoder

        self.mlp = nn.Sequential(nn.Linear(emb_dim, 2 * emb_dim), nn.BatchNorm1d(2 * emb_dim), nn.ReLU(),
                                 nn.Linear(2 * emb_dim, emb_dim))
        self.eps = nn.Parameter(torch.zeros(1))
        self.bond_encoder = BondEncoder(emb_dim)

    def forward(self, h: Tensor, edge_index: Tensor, edge_attr: Tensor) -> Tensor:
        msg = torch.relu(h.index_select(0, edge_index[0]) + self.bond_encoder(edge_attr))
        agg = torch.zeros_like(h).index_add_(0, edge_index[1], msg)
        return self.mlp((1 + self.eps) * h + agg)


def _vn_mlp(d: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(d, 2 * d), nn.BatchNorm1d(2 * d), nn.ReLU(),
                         nn.Linear(2 * d, d), nn.BatchNorm1d(d), nn.ReLU())


class MolGIN(nn.Module):
    """GIN with atom/bond encoders and an optional virtual node (see the module docstring).

    ``forward(x, adj, ptr, edge_index=, edge_attr=)``: ``x`` ``[n_b, 9]`` int64 atom features,
    ``edge_index`` ``[2, e_b]`` batch-local, ``edge_attr`` ``[e_b, 3]`` int64, ``ptr`` ``[B + 1]``;
    ``adj`` is unused (the batcher needs ``edges=True``). Output ``[B, out_dim]``.
    """

    adj_norm = "sum"
    needs_edges = True

    def __init__(self, out_dim: int, hidden: int = 300, *, num_layers: int = 5, dropout: float = 0.5,
                 virtual_node: bool = False, pooling: str = "mean"):
        super().__init__()
        from ogb.graphproppred.mol_encoder import AtomEncoder

        check_sizes(1, hidden, out_dim, num_layers, dropout)
        check_pool(pooling)
        self.num_layers, self.dropout, self.pooling, self.virtual_node = num_layers, dropout, pooling, virtual_node
        self.atom_encoder = AtomEncoder(hidden)
        self.convs = nn.ModuleList([GINEConv(hidden) for _ in range(num_layers)])
        self.norms = nn.ModuleList([nn.BatchNorm1d(hidden) for _ in range(num_layers)])
        if virtual_node:
            self.vn_embedding = nn.Embedding(1, hidden)
            nn.init.zeros_(self.vn_embedding.weight)
            self.vn_mlps = nn.ModuleList([_vn_mlp(hidden) for _ in range(num_layers - 1)])
        self.head = nn.Linear(hidden, out_dim)

    def forward(self, x: Tensor, adj, ptr: Tensor, *, edge_index: Tensor = None, edge_attr: Tensor = None) -> Tensor:
        if edge_index is None or edge_attr is None:
            raise GnnkitError("MolGIN needs edge_index and edge_attr (build the batcher with edges=True)")
        h = self.atom_encoder(x)
        b = ptr.numel() - 1
        batch = torch.repeat_interleave(torch.arange(b, device=h.device), ptr.diff(), output_size=h.shape[0])
        vn = self.vn_embedding.weight.expand(b, -1) if self.virtual_node else None
        for layer in range(self.num_layers):
            if vn is not None:
                h = h + vn.index_select(0, batch)
            out = self.norms[layer](self.convs[layer](h, edge_index, edge_attr))
            if layer < self.num_layers - 1:
                out = torch.relu(out)
            out = dropout(out, self.dropout, self.training)
            if vn is not None and layer < self.num_layers - 1:
                vn = dropout(self.vn_mlps[layer](pool(h, "sum", ptr=ptr) + vn), self.dropout, self.training)
            h = out
        return as_float(self.head(pool(h, self.pooling, ptr=ptr)))  # float32 logits under autocast
