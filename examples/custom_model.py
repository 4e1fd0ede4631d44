"""A custom model: any module with ``layers``, ``head``, ``embed``, ``forward`` and ``inference``.

Subclassing :class:`gnnkit.models.GNN` gives all of them; only the layer is new. Here a layer
mixes the mean of the neighbors with the node's own features through a learned gate.

    python examples/custom_model.py
"""
import torch
from torch import nn

import gnnkit
from gnnkit.data.csbm import csbm
from gnnkit.models import GNN


class GatedMean(nn.Module):
    """``h'_i = g ⊙ W_n mean_j h_j + (1 - g) ⊙ W_s h_i`` with ``g = σ(W_g h_i)``."""

    def __init__(self, in_dim, out_dim):
        super().__init__()
        self.neigh, self.self_, self.gate = (nn.Linear(in_dim, out_dim) for _ in range(3))

    def forward(self, h, adj, root=None):
        root = h[: adj.num_rows] if root is None else root
        g = torch.sigmoid(self.gate(root))
        return g * self.neigh(adj @ h) + (1 - g) * self.self_(root)


class GatedGNN(GNN):
    adj_norm = "mean"  # the samplers build row-normalized adjacencies for this model

    def make_layer(self, in_dim, out_dim):
        return GatedMean(in_dim, out_dim)


data = csbm(num_nodes=5000, num_classes=5, avg_degree=10, num_features=32, seed=0)
model = GatedGNN(data.num_features, 64, data.num_classes, num_layers=3, dropout=0.2)
result = gnnkit.Trainer(max_epochs=50, lr=0.01, seed=0).fit(model, data)
print(f"val {result['val']:.4f}  test {result['test']:.4f}")
