"""The neighbor-sampled GraphSAGE step against its floor (what the machine cannot do faster).

Setting (as ``benchmarks/pipeline.py``): csbm (default 2.4M nodes, average degree 26, 100
features, 47 classes), GraphSAGE hidden 256, two layers, dropout 0.5, fanouts 15,10, batch 1024,
the run's optimizer (``RunContext.make_optimizer``: fused Adam), ``--threads`` torch threads. The
step is the models' own (``gnnkit.models``, whose dropout is :mod:`gnnkit.models.dropout`).

Floor of one step = FLOP time + byte time, the two kinds of work being separate kernels on the
same cores:

* FLOP time: the FLOPs of the step's dense products, forward and backward, counted by
  ``torch.utils.flop_counter.FlopCounterMode`` (``mm``/``addmm``: ``2·m·n·k`` each), over the
  machine's GEMM rate measured here on the step's own largest product shape (in float32, and in
  bfloat16 for the ``bf16-mixed`` row);
* byte time: the bytes the step must move, over the machine's copy bandwidth measured here (a
  ``copy_`` of 256 MiB into a buffer already mapped: read + write). Counted: the input features
  read once (``n_in·F·s``) and, for every block product (forward, and backward where its input
  needs a gradient), the rows it gathers and the block itself (``nnz·(d·s + 8)``) and the rows it
  writes (``n_out·d·s``), with ``s`` = 4 bytes per value (2 for ``bf16-mixed``); the small dense
  activations are left out, so the floor is a lower bound.

Variants, run on the same batches interleaved in ``--rounds`` rounds (the step's median over all
rounds; one warm-up step each first): ``32`` (float32, the models as they are), ``torch-dropout``
(the same with ``torch.nn.functional.dropout``: the figure before :mod:`gnnkit.models.dropout`),
``bf16-mixed`` (features held in bfloat16 as a bf16 store gathers them, autocast, as the Trainer's
``--precision bf16-mixed``) and, with ``--compile``, ``32-compiled`` and ``bf16-compiled``
(``torch.compile(model, dynamic=True)``; their first pass over the batches is the compile, timed
apart). The GEMM rates and the bandwidth are measured before and after every round and the best
is used (the machine is shared). Printed: each variant's step (median and fastest) and its ratio
to its floor; last ``ratio_bf16=`` and ``ratio=X`` (float32; measured / floor; the issue's goal is 2),
the operators by self time (``torch.profiler``) of ``32`` and ``bf16-mixed``, the threads, the load
average and ``THP_MEM_ALLOC_ENABLE`` (torch's transparent-huge-page allocation, read at start).

    flock /tmp/gnnkit-heavy.lock python benchmarks/step_floor.py --compile
    python benchmarks/step_floor.py --num-nodes 100000 --batches 3 --rounds 1     # a quick trial
"""
from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import time
from dataclasses import replace

import torch
from torch.utils.flop_counter import FlopCounterMode

import gnnkit.models.base as model_base
from gnnkit.context import RunContext
from gnnkit.data.csbm import csbm
from gnnkit.models import build_model
from gnnkit.precision import autocast, no_autocast
from gnnkit.samplers.neighbor import NeighborSampler
from gnnkit.stores import from_data
from gnnkit.tasks.node import NodeClassification

PRECISION = {"32": "32", "torch-dropout": "32", "bf16-mixed": "bf16-mixed", "32-compiled": "32",
             "bf16-compiled": "bf16-mixed"}


def best_of(fn, repeats: int = 5) -> float:
    fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def gemm_rate(m: int, k: int, n: int, dtype: torch.dtype) -> float:
    """FLOP/s of ``[m, k] @ [k, n]`` in ``dtype`` (into a preallocated output)."""
    a, b = torch.randn(m, k).to(dtype), torch.randn(k, n).to(dtype)
    out = torch.empty(m, n, dtype=dtype)
    return 2.0 * m * k * n / best_of(lambda: torch.mm(a, b, out=out))


def copy_bandwidth() -> float:
    """Bytes/s of a 256 MiB ``copy_`` (read + write) into a buffer already mapped."""
    src = torch.empty(64 << 20)
    src.fill_(1.0)
    dst = torch.empty_like(src)
    return 2.0 * src.numel() * 4 / best_of(lambda: dst.copy_(src))


def must_move(batch, features: int, hidden: int, size: int = 4) -> float:
    """The bytes counted by the floor (module docstring) for ``batch``'s blocks ``[layer 0, layer 1]``,
    ``size`` bytes per value."""
    total = batch.n_id.numel() * features * float(size)
    for i, adj in enumerate(batch.adj):
        d = features if i == 0 else hidden
        passes = 1 if i == 0 else 2  # layer 0's input (features) needs no gradient
        total += passes * (adj.nnz * (d * size + 8) + adj.num_rows * d * size)
    return total


@contextlib.contextmanager
def torch_dropout(on: bool):
    """The models' dropout (and fused ReLU + dropout) replaced by ``torch.nn.functional.dropout``
    while inside (when ``on``)."""
    old = model_base.dropout, model_base.relu_dropout
    if on:
        model_base.dropout = torch.nn.functional.dropout
        model_base.relu_dropout = lambda z, p, training: torch.nn.functional.dropout(torch.relu(z), p, training)
    try:
        yield
    finally:
        model_base.dropout, model_base.relu_dropout = old


def step_parts(model, opt, task, batch, precision: str) -> tuple[float, float, float]:
    """Forward, backward, optimizer seconds of one step (as the Trainer: autocast, then backward)."""
    opt.zero_grad(set_to_none=True)
    t0 = time.perf_counter()
    with autocast(precision, "cpu"):
        loss, _ = task.training_step(model, batch)
    t1 = time.perf_counter()
    with no_autocast("cpu"):
        loss.backward()
    t2 = time.perf_counter()
    opt.step()
    return t1 - t0, t2 - t1, time.perf_counter() - t2


def run_variant(name: str, models: dict, opt, task, batches) -> list:
    """Step parts of ``name`` over ``batches``."""
    b_list = batches["bf16"] if PRECISION[name] == "bf16-mixed" else batches["32"]
    with torch_dropout(name == "torch-dropout"):
        return [step_parts(models[name], opt, task, b, PRECISION[name]) for b in b_list]


def profile_variant(name: str, models: dict, opt, task, batches, rows: int = 10) -> None:
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        run_variant(name, models, opt, task, batches)
    print(f"{name}: operators by self CPU time over {len(batches['32'])} steps (torch.profiler):")
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=rows))


def machine_rates(m: int, features: int, hidden: int, best: dict = None) -> dict:
    """GEMM FLOP/s (float32, bfloat16) on ``[m, features] @ [features, hidden]`` and the copy
    bandwidth, each the best of this and the earlier measurements in ``best`` (the machine is
    shared: the floor takes the fastest rate seen, so it stays a lower bound)."""
    now = {"32": gemm_rate(m, features, hidden, torch.float32),
           "bf16-mixed": gemm_rate(m, features, hidden, torch.bfloat16), "bandwidth": copy_bandwidth()}
    return {k: max(v, (best or {}).get(k, 0.0)) for k, v in now.items()}


def count_flops(batch, model, task) -> float:
    with FlopCounterMode(display=False) as counter:
        loss, _ = task.training_step(model, batch)
        loss.backward()
    model.zero_grad(set_to_none=True)
    return float(counter.get_total_flops())


def floors(batch, flops: float, rates: dict, features: int, hidden: int) -> dict:
    """``{"32": seconds, "bf16-mixed": seconds}``, printed with their parts."""
    m, bandwidth = batch.adj[0].num_rows, rates["bandwidth"]
    moved = {"32": must_move(batch, features, hidden, 4), "bf16-mixed": must_move(batch, features, hidden, 2)}
    out = {}
    print(f"machine: copy bandwidth {bandwidth / 1e9:.1f} GB/s; dense FLOPs of one step {flops / 1e9:.2f} GFLOP "
          f"(rates: the best of {rates.get('times', 1)} measurements, before, between and after the rounds)")
    for p in ("32", "bf16-mixed"):
        out[p] = flops / rates[p] + moved[p] / bandwidth
        print(f"floor {p}: GEMM {rates[p] / 1e9:.1f} GFLOP/s ([{m}, {features}] @ [{features}, {hidden}]) -> "
              f"{1e3 * flops / rates[p]:.1f} ms; {moved[p] / 1e6:.0f} MB moved -> {1e3 * moved[p] / bandwidth:.1f} ms; "
              f"floor {1e3 * out[p]:.1f} ms", flush=True)
    return out


def setup(args):
    data = csbm(num_nodes=args.num_nodes, num_classes=47, avg_degree=args.avg_degree, num_features=100, seed=0)
    torch.manual_seed(0)
    model = build_model("sage", data.num_features, 47, hidden=args.hidden, num_layers=2, dropout=0.5)
    graph, features = from_data(data)
    ctx = RunContext(device=torch.device("cpu"), graph=graph, features=features, adj_norm=model.adj_norm)
    sampler = NeighborSampler(fanouts=(15, 10), batch_size=args.batch_size)
    sampler.setup(ctx, model)
    sampler.set_epoch(0)
    it = iter(sampler)
    b32 = [next(it) for _ in range(args.batches + 1)]
    bf16 = [replace(b, x=b.x.to(torch.bfloat16)) for b in b32]  # what a bf16 store gathers
    return data, model, ctx, {"32": b32[1:], "bf16": bf16[1:]}, {"32": b32[:1], "bf16": bf16[:1]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--num-nodes", type=int, default=2_400_000)
    p.add_argument("--avg-degree", type=float, default=26.0)
    p.add_argument("--batch-size", type=int, default=1024)
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--batches", type=int, default=5, help="timed batches per round")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--compile", action="store_true", help="also time torch.compile(model, dynamic=True)")
    p.add_argument("--no-profile", action="store_true")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    print(f"date {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; torch {torch.__version__}; threads "
          f"{torch.get_num_threads()}; cores {os.cpu_count()}; load average {os.getloadavg()[0]:.2f}; "
          f"THP_MEM_ALLOC_ENABLE={os.environ.get('THP_MEM_ALLOC_ENABLE', 'unset')}", flush=True)
    data, model, ctx, batches, warm = setup(args)
    b = batches["32"][0]
    print(f"batch: {b.n_id.numel()} input rows, block nnz {[a.nnz for a in b.adj]}, rows {[a.num_rows for a in b.adj]}")
    task = NodeClassification()
    flops = count_flops(b, model, task)
    shape = (b.adj[0].num_rows, data.num_features, args.hidden)
    rates = machine_rates(*shape)
    names = ["32", "torch-dropout", "bf16-mixed"] + (["32-compiled", "bf16-compiled"] if args.compile else [])
    models = {n: model for n in names}
    if args.compile:
        compiled = torch.compile(model, dynamic=True)
        models.update({"32-compiled": compiled, "bf16-compiled": compiled})
    opt = ctx.make_optimizer(model.parameters())
    for n in names:
        t = time.perf_counter()
        run_variant(n, models, opt, task, warm if "compiled" not in n else batches)
        print(f"{n}: warm-up {time.perf_counter() - t:.1f} s", flush=True)
    parts = {n: [] for n in names}
    for _ in range(args.rounds):
        for n in names:
            parts[n] += run_variant(n, models, opt, task, batches)
        rates = machine_rates(*shape, rates)
    rates["times"] = args.rounds + 1
    floor = floors(b, flops, rates, data.num_features, args.hidden)
    report(names, parts, floor, args)
    if not args.no_profile:
        for n in ("32", "bf16-mixed"):
            profile_variant(n, models, opt, task, batches)
    print(f"load average {os.getloadavg()[0]:.2f}")


def report(names, parts, floor, args) -> None:
    steps = {}
    for n in names:
        totals = [sum(q) for q in parts[n]]
        steps[n] = statistics.median(totals)
        med = [1e3 * statistics.median(q[i] for q in parts[n]) for i in range(3)]
        fl = floor[PRECISION[n]]
        print(f"{n}: step {1e3 * steps[n]:.1f} ms (forward {med[0]:.1f}, backward {med[1]:.1f}, optimizer "
              f"{med[2]:.1f}; median of {len(totals)} over {args.rounds} rounds; fastest {1e3 * min(totals):.1f}) "
              f"ratio={steps[n] / fl:.2f} (fastest {min(totals) / fl:.2f}; floor {PRECISION[n]} {1e3 * fl:.1f} ms)",
              flush=True)
    print(f"bf16-mixed against the float32 floor: {steps['bf16-mixed'] / floor['32']:.2f}; "
          f"torch-dropout / 32: {steps['torch-dropout'] / steps['32']:.2f}; "
          f"bf16-mixed / 32: {steps['bf16-mixed'] / steps['32']:.2f}")
    if args.compile:
        print(f"32-compiled / 32: {steps['32-compiled'] / steps['32']:.2f}; "
              f"bf16-compiled / bf16-mixed: {steps['bf16-compiled'] / steps['bf16-mixed']:.2f}")
    print(f"ratio_bf16={steps['bf16-mixed'] / floor['bf16-mixed']:.2f}")
    print(f"ratio={steps['32'] / floor['32']:.2f}")


if __name__ == "__main__":
    main()
