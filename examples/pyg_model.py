"""Your PyG model in gnnkit's Trainer: a GATConv stack, full batch, then neighbor and cluster batches.

Any ``torch.nn.Module`` whose ``forward`` takes ``(x, edge_index)`` (optionally ``edge_weight`` /
``edge_attr``) trains as it is: the Trainer wraps it (``gnnkit.models.PyGModel``), the samplers hand
it the batch's ``edge_index`` in local ids (PyG's ``NeighborLoader`` subgraph for the neighbor
sampler) and the module keeps the selected weights after ``fit``. A ``Data`` with ``edge_weight``
passes the weights to a module that takes them. MVS and ForwardGNN need gnnkit's own models.

    python examples/pyg_model.py --root /path/with/Planetoid/Cora/raw
"""
import argparse

import torch
import torch.nn.functional as F
from torch_geometric.nn import GATConv

import gnnkit
from gnnkit.data import load
from gnnkit.samplers.cluster import ClusterSampler
from gnnkit.samplers.neighbor import NeighborSampler


class GAT(torch.nn.Module):
    def __init__(self, in_dim, hidden, out_dim, heads=8):
        super().__init__()
        self.conv1 = GATConv(in_dim, hidden, heads=heads, dropout=0.6)
        self.conv2 = GATConv(hidden * heads, out_dim, heads=1, dropout=0.6)

    def forward(self, x, edge_index):
        x = F.dropout(x, 0.6, self.training)
        x = F.dropout(F.elu(self.conv1(x, edge_index)), 0.6, self.training)
        return self.conv2(x, edge_index)


parser = argparse.ArgumentParser()
parser.add_argument("--root", default=None, help="folder holding Cora/raw (default: gnnkit's data root)")
parser.add_argument("--epochs", type=int, default=200)
args = parser.parse_args()

data = load("Cora", root=args.root)
for name, sampler in (("full", "full"), ("neighbor", NeighborSampler(fanouts=[10, 10], batch_size=128)),
                      ("cluster", ClusterSampler(num_parts=20, clusters_per_batch=4))):
    torch.manual_seed(0)  # the model's initial weights
    model = GAT(data.num_features, 8, data.num_classes)
    trainer = gnnkit.Trainer(sampler=sampler, max_epochs=args.epochs, lr=0.005, weight_decay=5e-4, seed=0,
                             progress=False)
    result = trainer.fit(model, data)
    print(f"{name:9s} val {result['val']:.4f}  test {result['test']:.4f}  (epoch {result['best_epoch']})")
