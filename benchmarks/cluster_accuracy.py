"""Cluster-GCN vs full-batch training of the same GCN: test accuracy over seeds, side by side.

On one csbm graph (default 100k nodes, avg degree 10, 10 classes, 100 features, homophily 0.8,
60/20/20 split) both train the same GCN (``--layers``, ``--hidden``) for ``--epochs`` epochs with
Adam; the weights with the best validation accuracy (evaluated every ``--eval-every`` epochs on the
full graph, layer by layer) are tested. Seeds 0..S-1 seed the model and the batches; the graph is
the same. The partition is computed once and then read from the cache.

    flock /tmp/gnnkit-heavy.lock python benchmarks/cluster_accuracy.py

Last line: ``full=X cluster=Y diff_points=Z`` (mean test accuracies, in percent; Z = full - cluster).
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import torch

from gnnkit.data.csbm import csbm
from gnnkit.models import build_model
from gnnkit.samplers.cluster import ClusterSampler
from gnnkit.trainer import Trainer, seed_everything


def train(data, sampler, seed: int, a) -> dict:
    seed_everything(seed)
    diag = a.diag_lambda is not None and sampler != "full"  # the cluster run's operator, fixed at build time
    model = build_model("gcn", data.num_features, int(data.num_classes), hidden=a.hidden, num_layers=a.layers,
                        dropout=a.dropout, **(dict(adj_norm="diag", diag_lambda=a.diag_lambda) if diag else {}))
    trainer = Trainer(sampler=sampler, max_epochs=a.epochs, lr=a.lr, eval_every=a.eval_every, seed=seed,
                      progress=False, device="cpu")
    return trainer.fit(model, data)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--num-nodes", type=int, default=100_000)
    p.add_argument("--avg-degree", type=float, default=10.0)
    p.add_argument("--num-parts", type=int, default=100)
    p.add_argument("--clusters-per-batch", type=int, default=10)
    p.add_argument("--diag-lambda", type=float, default=None)
    p.add_argument("--scope", choices=("whole", "train"), default="whole")
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--dropout", type=float, default=0.5)
    p.add_argument("--lr", type=float, default=0.01)
    p.add_argument("--epochs", type=int, default=60)
    p.add_argument("--eval-every", type=int, default=5)
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1: the cores are shared)")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    data = csbm(num_nodes=a.num_nodes, avg_degree=a.avg_degree, seed=0)
    print(f"# {time.strftime('%Y-%m-%d %H:%M')} csbm nodes={data.num_nodes} edges={data.edge_index.shape[1]} "
          f"GCN layers={a.layers} hidden={a.hidden} epochs={a.epochs} parts={a.num_parts} "
          f"q={a.clusters_per_batch} scope={a.scope} diag_lambda={a.diag_lambda}", flush=True)
    acc = {"full": [], "cluster": []}
    with tempfile.TemporaryDirectory(prefix="cluster_acc-") as cache:
        for seed in range(a.seeds):
            for name in ("full", "cluster"):
                sampler = "full" if name == "full" else ClusterSampler(
                    num_parts=a.num_parts, clusters_per_batch=a.clusters_per_batch, diag_lambda=a.diag_lambda,
                    partition_scope=a.scope, cache_dir=cache)
                r = train(data, sampler, seed, a)
                acc[name].append(100 * r["test"])
                print(f"seed {seed} {name:8s} test {100 * r['test']:.2f}  val {100 * r['val']:.2f}  "
                      f"best epoch {r['best_epoch']}  {r['seconds']:.1f}s", flush=True)
    full, clus = statistics.fmean(acc["full"]), statistics.fmean(acc["cluster"])
    print(f"full={full:.2f} cluster={clus:.2f} diff_points={full - clus:.2f}")


if __name__ == "__main__":
    main()
