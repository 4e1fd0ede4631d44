"""Kipf & Welling's GCN on Cora (Planetoid split), 10 seeds.

    python examples/cora_gcn.py --root /path/with/Planetoid/Cora/raw
"""
import argparse
import statistics


import gnnkit
from gnnkit.data import load
from gnnkit.models import GCN

parser = argparse.ArgumentParser()
parser.add_argument("--root", default=None, help="folder holding Cora/raw (default: gnnkit's data root)")
parser.add_argument("--seeds", type=int, default=10)
args = parser.parse_args()

data = load("Cora", root=args.root)
tests = []
for seed in range(args.seeds):
    gnnkit.seed_everything(seed)  # before the model: its initial weights come from this seed
    model = GCN(data.num_features, 16, data.num_classes, num_layers=2, dropout=0.5)
    trainer = gnnkit.Trainer(max_epochs=200, lr=0.01, weight_decay=5e-4, seed=seed, progress=False)
    tests.append(trainer.fit(model, data)["test"])
    print(f"seed {seed}: test accuracy {tests[-1]:.4f}")
print(f"mean {statistics.fmean(tests):.4f} ± {statistics.stdev(tests) if len(tests) > 1 else 0.0:.4f}")
