"""The sampling pipeline at ogbn-products scale: does sampling hide behind the step?

Builds csbm (default 2.4M nodes, average degree 26, 100 features, 47 classes), a GraphSAGE (hidden
256, two layers, dropout 0.5) and the neighbor sampler (fanouts 15,10, batch 1024), then times the
first ``--steps`` batches of an epoch four ways, from the same initial weights and seeds, in
``--rounds`` rounds (epoch ``r`` in round ``r``; the four measurements interleaved so that the load
swings of a shared machine hit them all):

* ``sampling``: the sampler alone (blocks + feature gather), the batches kept;
* ``steps``: the training steps alone on those kept batches (forward, backward, the run's Adam);
* ``serial``: sample then step, one after the other in one thread (``num_workers=0``);
* ``pipelined``: the same through :func:`gnnkit.samplers.pipeline.epoch_batches`
  (``num_workers=1``: one background thread samples ``--prefetch`` batches ahead).

Prints each round in ms per batch, the medians, ``ratio=X`` = the median over rounds of
pipelined / max(sampling, steps) (goal <= 1.15),
whether the pipelined and the serial run end with bitwise the same weights, the torch thread count
(``--threads``, default 1: the loop's thread and the sampling thread each run kernels on one core),
the cores the process got (its CPU seconds, all threads, per wall second: up to 2 when the pipeline
overlaps on two free cores, at most 1 serially) and the load average (the machine is shared).
Heavy (about 4 GiB at full scale):

    flock /tmp/gnnkit-heavy.lock python benchmarks/pipeline.py
    python benchmarks/pipeline.py --num-nodes 100000 --rounds 2     # a quick trial
"""
from __future__ import annotations

import argparse
import copy
import itertools
import os
import statistics
import time

import torch

from gnnkit.context import RunContext
from gnnkit.data.csbm import csbm
from gnnkit.models import build_model
from gnnkit.samplers.neighbor import NeighborSampler
from gnnkit.samplers.pipeline import epoch_batches
from gnnkit.stores import from_data
from gnnkit.tasks.node import NodeClassification


CPU_SHARE: list = []  # per timed run: the process's CPU seconds (all threads) per wall second


def step(model, opt, task, batch) -> None:
    opt.zero_grad(set_to_none=True)
    loss, _ = task.training_step(model, batch)
    loss.backward()
    opt.step()


def timed_run(model0, ctx, sampler, task, batches, n: int):
    """Train a copy of ``model0`` on ``n`` batches from ``batches`` (an iterator); ``(ms/batch, model)``."""
    model = copy.deepcopy(model0)
    opt = ctx.make_optimizer(model.parameters())
    torch.manual_seed(1)  # the same dropout draws in every run
    t, cpu = time.perf_counter(), time.process_time()
    for batch in itertools.islice(batches, n):
        step(model, opt, task, batch)
    wall = time.perf_counter() - t
    CPU_SHARE.append((time.process_time() - cpu) / wall)
    return 1e3 * wall / n, model


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--num-nodes", type=int, default=2_400_000)
    p.add_argument("--avg-degree", type=float, default=26.0)
    p.add_argument("--batch-size", type=int, default=1024)
    p.add_argument("--fanouts", default="15,10")
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--steps", type=int, default=4, help="batches per round")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--prefetch", type=int, default=2)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    print(f"date {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; torch threads {torch.get_num_threads()} "
          f"per thread of work (loop + 1 sampling thread); cores {os.cpu_count()}; "
          f"load average {os.getloadavg()[0]:.2f}", flush=True)
    t = time.perf_counter()
    data = csbm(num_nodes=args.num_nodes, num_classes=47, avg_degree=args.avg_degree, num_features=100, seed=0)
    print(f"graph: {data.num_nodes} nodes, {data.edge_index.shape[1]} directed edges ({time.perf_counter() - t:.1f}s)",
          flush=True)
    torch.manual_seed(0)
    model0 = build_model("sage", data.num_features, 47, hidden=args.hidden, num_layers=2, dropout=0.5)
    graph, features = from_data(data)
    del data
    ctx = RunContext(device=torch.device("cpu"), graph=graph, features=features, adj_norm=model0.adj_norm,
                     num_workers=1, prefetch=args.prefetch)
    sampler = NeighborSampler(fanouts=args.fanouts, batch_size=args.batch_size)
    sampler.setup(ctx, model0)
    task, n = NodeClassification(), min(args.steps, len(sampler) - 1)
    sampler.set_epoch(0)
    warm = next(iter(sampler))  # allocators, kernels, the lazily built CSR
    step(copy.deepcopy(model0), ctx.make_optimizer(copy.deepcopy(model0).parameters()), task, warm)
    del warm
    rows, same = [], True
    for r in range(args.rounds):  # the four measurements interleaved, round after round: load swings hit all
        sampler.set_epoch(r)
        t = time.perf_counter()
        kept = list(itertools.islice(iter(sampler), n))
        sampling = 1e3 * (time.perf_counter() - t) / n
        steps, _ = timed_run(model0, ctx, sampler, task, iter(kept), n)
        if r == 0:
            rows_in = sum(b.n_id.numel() for b in kept) / n
            print(f"{n} batches per round, {rows_in:.0f} input nodes per batch", flush=True)
        del kept
        serial, m_serial = timed_run(model0, ctx, sampler, task, iter(sampler), n)
        with epoch_batches(sampler, ctx) as batches:  # leaves early after n batches: the thread is joined
            piped, m_piped = timed_run(model0, ctx, sampler, task, batches, n)
        same = same and all(torch.equal(a, b) for a, b in zip(m_serial.state_dict().values(),
                                                              m_piped.state_dict().values()))
        rows.append((sampling, steps, serial, piped))
        print(f"round {r}: sampling {sampling:.1f}  steps {steps:.1f}  serial {serial:.1f}  pipelined {piped:.1f} "
              f"ms/batch  ratio {piped / max(sampling, steps):.3f}  load {os.getloadavg()[0]:.2f}  cores used: "
              f"serial {CPU_SHARE[-2]:.2f}, pipelined {CPU_SHARE[-1]:.2f}", flush=True)
    med = [statistics.median(r[i] for r in rows) for i in range(4)]
    ratio = statistics.median(r[3] / max(r[0], r[1]) for r in rows)
    print(f"median: sampling {med[0]:.1f}  steps {med[1]:.1f}  serial {med[2]:.1f}  pipelined {med[3]:.1f} ms/batch; "
          f"serial / max(sampling, steps) {statistics.median(r[2] / max(r[0], r[1]) for r in rows):.3f}")
    print(f"same_weights={same}; load average {os.getloadavg()[0]:.2f} (1 min), {os.getloadavg()[1]:.2f} (5 min)")
    print(f"ratio={ratio:.3f}")


if __name__ == "__main__":
    main()
