"""Neighbor sampling time against training step time, at ogbn-products scale (csbm, 2.4M nodes).

Builds the csbm graph (default 2.4M nodes, average degree 26 -> ~62M directed edges, 100
features, 47 classes), sets up :class:`~gnnkit.samplers.neighbor.NeighborSampler` (fanouts 15,10,
batch 1024), then for ``--batches`` batches times (a) sampling the batch (blocks + feature gather)
and (b) one training step on it (GraphSAGE hidden 256: forward, backward, Adam). Prints the mean
milliseconds of each and ``ratio_sample_step=X`` (sampling / step; below 1 means the sampler is
not the bottleneck, even without overlapping it with the step).

    flock /tmp/gnnkit-heavy.lock python benchmarks/neighbor_speed.py
"""
from __future__ import annotations

import argparse
import os
import statistics
import time
import torch

from gnnkit.data.csbm import csbm
from gnnkit.models import build_model
from gnnkit.context import RunContext
from gnnkit.samplers.loader import epoch_generator
from gnnkit.samplers.neighbor import NeighborSampler
from gnnkit.stores import from_data
from gnnkit.tasks.node import NodeClassification


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--num-nodes", type=int, default=2_400_000)
    p.add_argument("--avg-degree", type=float, default=26.0)
    p.add_argument("--batch-size", type=int, default=1024)
    p.add_argument("--fanouts", default="15,10")
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--batches", type=int, default=20)
    args = p.parse_args()
    torch.set_num_threads(max(1, (os.cpu_count() or 2) // 2))
    print(f"date {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; threads {torch.get_num_threads()}", flush=True)
    t = time.perf_counter()
    data = csbm(num_nodes=args.num_nodes, num_classes=47, avg_degree=args.avg_degree, num_features=100, seed=0)
    print(f"graph: {data.num_nodes} nodes, {data.edge_index.shape[1]} directed edges ({time.perf_counter() - t:.1f}s)",
          flush=True)
    model = build_model("sage", data.num_features, 47, hidden=args.hidden, num_layers=2, dropout=0.5)
    sampler = NeighborSampler(fanouts=args.fanouts, batch_size=args.batch_size)
    t = time.perf_counter()
    graph, features = from_data(data)
    sampler.setup(RunContext(device=torch.device("cpu"), graph=graph, features=features, adj_norm=model.adj_norm), model)
    print(f"sampler setup (in-neighbor CSR): {time.perf_counter() - t:.1f}s", flush=True)
    task, opt = NodeClassification(), torch.optim.Adam(model.parameters(), lr=0.01)
    gen = epoch_generator(0, 0, "cpu")
    order = sampler.train[torch.randperm(sampler.train.numel(), generator=gen)]
    sample_ms, step_ms, sizes = [], [], []
    for b in range(args.batches + 1):
        t = time.perf_counter()
        batch = sampler.sample_from_nodes(order[b * args.batch_size:(b + 1) * args.batch_size], gen)
        t1 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss, _ = task.training_step(model, batch)
        loss.backward()
        opt.step()
        t2 = time.perf_counter()
        if b:  # the first batch warms up allocators and kernels
            sample_ms.append(1e3 * (t1 - t))
            step_ms.append(1e3 * (t2 - t1))
            sizes.append(batch.n_id.numel())
    s, st = statistics.fmean(sample_ms), statistics.fmean(step_ms)
    print(f"batch {args.batch_size} seeds, fanouts {args.fanouts}: {statistics.fmean(sizes):.0f} input nodes per batch")
    print(f"sampling {s:.1f} ms/batch (median {statistics.median(sample_ms):.1f})  "
          f"step {st:.1f} ms/batch (median {statistics.median(step_ms):.1f})")
    print(f"ratio_sample_step={s / st:.3f}")


if __name__ == "__main__":
    main()
