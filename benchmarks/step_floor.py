"""The neighbor-sampled GraphSAGE step against its floor (what the machine cannot do faster).

Setting (as ``benchmarks/pipeline.py``): csbm (default 2.4M nodes, average degree 26, 100
features, 47 classes), GraphSAGE hidden 256, two layers, dropout 0.5, fanouts 15,10, batch 1024,
the run's optimizer (``RunContext.make_optimizer``: fused Adam), ``--threads`` torch threads.

Floor of one step = FLOP time + byte time, the two kinds of work being separate kernels on the
same cores:

* FLOP time: the FLOPs of the step's dense products, forward and backward, counted by
  ``torch.utils.flop_counter.FlopCounterMode`` (``mm``/``addmm``: ``2·m·n·k`` each), over the
  machine's GEMM rate measured here on the step's own largest product shape;
* byte time: the bytes the step must move, over the machine's copy bandwidth measured here (a
  ``copy_`` of 256 MiB: read + write). Counted: the input features read once (``n_in·F·4``) and,
  for every block product (forward, and backward where its input needs a gradient), the rows it
  gathers and the block itself (``nnz·(d·4 + 8)``) and the rows it writes (``n_out·d·4``); the
  small dense activations are left out, so the floor is a lower bound.

Printed: the measured step (forward, backward, optimizer; median over ``--batches`` batches after
one warm-up), the floor and ``ratio=X`` (measured / floor; the issue's goal is 2), then the step's
time by operator (cProfile's own time of torch's entry points: where the gap is). ``--fast-dropout``
runs the same batches again with the dropout of :func:`fast_dropout` (16-bit random thresholds
instead of ``bernoulli_``; the proposed fix, BENCHMARKS.md) and prints its ratio too.

    flock /tmp/gnnkit-heavy.lock python benchmarks/step_floor.py --fast-dropout
    python benchmarks/step_floor.py --num-nodes 100000 --batches 3     # a quick trial
"""
from __future__ import annotations

import argparse
import contextlib
import cProfile
import io
import os
import pstats
import statistics
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from gnnkit.context import RunContext
from gnnkit.data.csbm import csbm
from gnnkit.models import build_model
from gnnkit.samplers.neighbor import NeighborSampler
from gnnkit.stores import from_data
from gnnkit.tasks.node import NodeClassification


def fast_dropout(x: torch.Tensor, p: float = 0.5, training: bool = True, inplace: bool = False) -> torch.Tensor:
    """Inverted dropout with ``p`` rounded to ``k / 65536``: element ``i`` is kept when a uniform
    16-bit integer ``r_i >= k - 32768`` (probability ``1 - k/65536``) and scaled by
    ``65536 / (65536 - k)``, so ``E[out] = x`` exactly for the rounded ``p``. The 16-bit draws are
    the four lanes of full-range int64 draws of torch's global generator (one 64-bit draw per four
    elements, instead of ``bernoulli_``'s one per element)."""
    if not training or p == 0.0:
        return x
    k = round(p * 65536)
    if k >= 65536:
        return x * 0.0
    bits = torch.empty((x.numel() + 3) // 4, dtype=torch.int64, device=x.device).random_(-2**63, 2**63 - 1)
    keep = bits.view(torch.int16)[: x.numel()].view(x.shape) >= k - 32768
    return torch.where(keep, x, 0.0).mul_(65536.0 / (65536 - k))


@contextlib.contextmanager
def patched_dropout(on: bool):
    """``torch.nn.functional.dropout`` replaced by :func:`fast_dropout` while inside (when ``on``)."""
    old = torch.nn.functional.dropout
    if on:
        torch.nn.functional.dropout = fast_dropout
    try:
        yield
    finally:
        torch.nn.functional.dropout = old


def best_of(fn, repeats: int = 5) -> float:
    fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def machine_rates(m: int, k: int, n: int) -> tuple[float, float]:
    """``(GEMM FLOP/s on [m, k] @ [k, n], copy bytes/s on 256 MiB)``."""
    a, b = torch.randn(m, k), torch.randn(k, n)
    gemm = 2.0 * m * k * n / best_of(lambda: torch.mm(a, b))
    src = torch.empty(64 << 20)  # 256 MiB of float32
    src.fill_(1.0)
    dst = torch.empty_like(src)
    bandwidth = 2.0 * src.numel() * 4 / best_of(lambda: dst.copy_(src))
    return gemm, bandwidth


def must_move(batch, features: int, hidden: int) -> float:
    """The bytes counted by the floor (module docstring) for ``batch``'s blocks ``[layer 0, layer 1]``."""
    n_in = batch.n_id.numel()
    total = n_in * features * 4.0
    for i, adj in enumerate(batch.adj):
        d = features if i == 0 else hidden
        passes = 1 if i == 0 else 2  # layer 0's input (features) needs no gradient
        total += passes * (adj.nnz * (d * 4 + 8) + adj.num_rows * d * 4)
    return total


def step_parts(model, opt, task, batch) -> tuple[float, float, float]:
    """Forward, backward, optimizer seconds of one step."""
    opt.zero_grad(set_to_none=True)
    t0 = time.perf_counter()
    loss, _ = task.training_step(model, batch)
    t1 = time.perf_counter()
    loss.backward()
    t2 = time.perf_counter()
    opt.step()
    return t1 - t0, t2 - t1, time.perf_counter() - t2


def measure(model, ctx, task, batches, label: str) -> float:
    """Median step seconds over ``batches`` (after one warm-up step), printed by part."""
    opt = ctx.make_optimizer(model.parameters())
    step_parts(model, opt, task, batches[0])
    parts = [step_parts(model, opt, task, b) for b in batches[1:]]
    med = [statistics.median(p[i] for p in parts) for i in range(3)]
    total = statistics.median(sum(p) for p in parts)
    print(f"{label}: step {1e3 * total:.1f} ms (forward {1e3 * med[0]:.1f}, backward {1e3 * med[1]:.1f}, "
          f"optimizer {1e3 * med[2]:.1f})", flush=True)
    return total


def by_operator(model, ctx, task, batches, rows: int = 8) -> None:
    opt = ctx.make_optimizer(model.parameters())
    prof = cProfile.Profile()
    prof.enable()
    for b in batches[1:]:
        step_parts(model, opt, task, b)
    prof.disable()
    out = io.StringIO()
    pstats.Stats(prof, stream=out).sort_stats("tottime").print_stats(rows)
    lines = [ln for ln in out.getvalue().splitlines() if ln.strip() and ("{" in ln or "ncalls" in ln)]
    print("time by operator (cProfile own time over the measured steps):")
    print("\n".join(lines[: rows + 1]))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--num-nodes", type=int, default=2_400_000)
    p.add_argument("--avg-degree", type=float, default=26.0)
    p.add_argument("--batch-size", type=int, default=1024)
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--batches", type=int, default=6)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--fast-dropout", action="store_true", help="also measure with the proposed fast dropout")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    print(f"date {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; torch threads {torch.get_num_threads()}; "
          f"cores {os.cpu_count()}; load average {os.getloadavg()[0]:.2f}", flush=True)
    data = csbm(num_nodes=args.num_nodes, num_classes=47, avg_degree=args.avg_degree, num_features=100, seed=0)
    torch.manual_seed(0)
    model = build_model("sage", data.num_features, 47, hidden=args.hidden, num_layers=2, dropout=0.5)
    graph, features = from_data(data)
    ctx = RunContext(device=torch.device("cpu"), graph=graph, features=features, adj_norm=model.adj_norm)
    sampler = NeighborSampler(fanouts=(15, 10), batch_size=args.batch_size)
    sampler.setup(ctx, model)
    sampler.set_epoch(0)
    it = iter(sampler)
    batches = [next(it) for _ in range(args.batches + 1)]
    b = batches[1]
    print(f"batch: {b.n_id.numel()} input rows, block nnz {[a.nnz for a in b.adj]}, rows {[a.num_rows for a in b.adj]}")
    task = NodeClassification()
    with FlopCounterMode(display=False) as counter:
        loss, _ = task.training_step(model, b)
        loss.backward()
    model.zero_grad(set_to_none=True)
    flops = float(counter.get_total_flops())
    gemm, bandwidth = machine_rates(b.adj[0].num_rows, data.num_features, args.hidden)
    moved = must_move(b, data.num_features, args.hidden)
    floor = flops / gemm + moved / bandwidth
    print(f"machine: GEMM {gemm / 1e9:.1f} GFLOP/s ([{b.adj[0].num_rows}, {data.num_features}] @ "
          f"[{data.num_features}, {args.hidden}]), copy bandwidth {bandwidth / 1e9:.1f} GB/s")
    print(f"floor: {flops / 1e9:.2f} GFLOP dense -> {1e3 * flops / gemm:.1f} ms; {moved / 1e6:.0f} MB moved -> "
          f"{1e3 * moved / bandwidth:.1f} ms; floor {1e3 * floor:.1f} ms")
    step = measure(model, ctx, task, batches, "measured")
    by_operator(model, ctx, task, batches)
    if args.fast_dropout:
        with patched_dropout(True):
            fast = measure(model, ctx, task, batches, "with fast_dropout")
        print(f"ratio_fast_dropout={fast / floor:.2f}")
    print(f"load average {os.getloadavg()[0]:.2f}")
    print(f"ratio={step / floor:.2f}")


if __name__ == "__main__":
    main()
