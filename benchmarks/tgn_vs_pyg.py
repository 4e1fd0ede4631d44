"""gnnkit's TGN against PyG's TGN, side by side in one run.

Part 1 (CollegeMsg, ``--seeds`` runs each): the settings of PyG's ``examples/tgn.py`` on both
sides — memory, time and embedding 100, batch 200, the last 10 neighbors, a ``TransformerConv``-style
attention with 2 heads (gnnkit: ``embedding="transformer"``), Adam 1e-4, one negative per positive,
identity message, last aggregator — and the same constant 1-wide message (PyG's TGN breaks on
width 0). Both train on the same split (gnnkit's chronological 70/85 split with the run's seed) and
are scored on the same seeded validation and test negatives, test continuing from validation
memory; each side reports the test figures of its epoch with the best validation AP (the Trainer's
rule). gnnkit's ``transformer`` layer takes the example's link time feature ``φ(t_last(neighbor) −
t_link)`` (its parity with ``TransformerConv`` is tested). gnnkit trains through ``Trainer.fit``
with the ``temporal-link`` task. Reported per side:
training events per second, peak RSS of the process (each run in its own child process), test AP.
The authors' TGN-attn embedding (gnnkit's default) is run beside them for reference.

Part 2 (synthetic stream, 1M nodes, 2M events): one gnnkit epoch through the Trainer, and the
switch from training to evaluation (the end of the last training batch to the start of the first
validation batch); for PyG, ``TGNMemory.train(False)`` (its flush of all N nodes) after a few
hundred training batches, and both sides' memory reset.

gnnkit's optimizer is the run's (``RunContext.make_optimizer``: fused Adam); PyG's example loop keeps
its plain ``torch.optim.Adam``.

gnnkit runs at each precision of ``--precisions`` (default ``32,bf16-mixed``: the Trainer's
``precision``; under ``bf16-mixed`` TGN's dense products run in bfloat16 with float32 results and
float32 memory, :mod:`gnnkit.temporal.mixed`; evaluation is float32 either way); PyG at float32,
its example's only precision. Per seed the runs go back to back (gnnkit at each precision, then
PyG), and each precision's ratio is that seed's gnnkit events/s over PyG's. Also printed: events per
CPU-second of the process (``time.process_time`` over the training epochs; both sides run one
thread, so on an oversubscribed machine this is the less load-exposed figure), each epoch's
seconds and CPU-seconds, and the CPU ratio over epochs 2+ (what a ``+compile`` variant, e.g. ``bf16-mixed+compile``,
gives once compiled: its first epoch holds the compile).

Usage: ``flock /tmp/gnnkit-heavy.lock python benchmarks/tgn_vs_pyg.py [--epochs 3] [--seeds 3]``.
The last line is ``speedup=X ap_gap=Y`` for the first precision (``speedup_<precision>=`` and
``ap_gap_<precision>=`` for each): X the median over seeds of the per-seed ratio, Y gnnkit's mean test
AP minus PyG's in points.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import resource
import statistics
import subprocess
import sys
import time

import torch

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COLLEGE = os.path.join(REPO, "..", "shared", "data", "temporal", "CollegeMsg", "CollegeMsg.txt")
DIM, BATCH, K = 100, 200, 10


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def stream_for(args, seed):
    from gnnkit.temporal.events import load_events, make_stream
    from gnnkit.temporal.split import temporal_split

    if args.dataset == "synthetic":
        g = torch.Generator().manual_seed(0)
        n, e = args.num_nodes, args.num_events
        s = make_stream(torch.randint(n, (e,), generator=g), torch.randint(n, (e,), generator=g),
                        torch.arange(e, dtype=torch.float64), torch.ones(e, 1), num_nodes=n, name="synthetic")
    else:
        s = load_events(args.dataset)
        s = s.replace(msg=torch.ones(s.num_events, 1))  # the same constant 1-wide message on both sides
    return temporal_split(s, seed=seed)


# -- gnnkit side --------------------------------------------------------------------------------
def run_gnnkit(args, seed):
    from gnnkit.callbacks import Callback
    from gnnkit.samplers.temporal import TemporalSampler
    from gnnkit.tasks.temporal_link import TemporalLinkPrediction
    from gnnkit.temporal.model import TGN
    from gnnkit.trainer import Trainer

    class Timed(TemporalLinkPrediction):
        """Times the epoch-start reset and the train -> eval switch (``mark``: the end of the epoch's
        training, set by ``Clock`` below, the first callback the loop calls after the last batch)."""
        switch, reset, mark = [], [], None

        def on_epoch_start(self, ctx, epoch):
            t0 = time.perf_counter()
            super().on_epoch_start(ctx, epoch)
            self.reset.append(time.perf_counter() - t0)

        def _pass(self, model, split):
            if self.mark is not None:
                self.switch.append(time.perf_counter() - self.mark)
                self.mark = None
            return super()._pass(model, split)

    class Clock(Callback):
        seconds, cpu, events, epochs, epochs_cpu = 0.0, 0.0, 0, [], []

        def on_epoch_start(self, trainer, epoch):
            self.t0, self.c0 = time.perf_counter(), time.process_time()

        def on_batch_end(self, trainer, batch, outputs):
            self.events += batch.num_events

        def on_epoch_end(self, trainer, epoch, logs):
            task.mark = time.perf_counter()  # tasks get no on_epoch_end since the redesign
            self.seconds += time.perf_counter() - self.t0
            self.cpu += time.process_time() - self.c0
            self.epochs.append(time.perf_counter() - self.t0)
            self.epochs_cpu.append(time.process_time() - self.c0)

    data = stream_for(args, seed)
    torch.manual_seed(seed)
    task = Timed(memory_dim=DIM, time_dim=DIM, embedding_dim=DIM, num_neighbors=K, embedding=args.embedding)
    clock = Clock()
    trainer = Trainer(task=task, sampler=TemporalSampler(BATCH), max_epochs=args.epochs, lr=1e-4, device="cpu",
                      progress=False, seed=seed, callbacks=[clock], precision=args.precision)
    model = TGN(1, memory_dim=DIM, time_dim=DIM, embedding_dim=DIM, embedding=args.embedding, compile=args.compile)
    r = trainer.fit(model, data)
    m = r["metrics"]
    return {"events_per_s": clock.events / clock.seconds, "events_per_cpu_s": clock.events / clock.cpu,
            "epoch_s": clock.epochs, "epoch_cpu_s": clock.epochs_cpu, "test_ap": m["test_ap"], "test_auc": m["test_auc"],
            "inductive_ap": m["test_new_ap"], "val_ap": m["val_ap"], "switch_s": max(task.switch),
            "reset_s": max(task.reset), "epochs": r["epochs"], "peak_rss_mb": peak_mb()}


# -- PyG side (the loop of PyG's examples/tgn.py, on the same split and negatives) ----------------
def run_pyg(args, seed):
    from torch.nn import Linear
    from torch_geometric.nn import TGNMemory, TransformerConv
    from torch_geometric.nn.models.tgn import IdentityMessage, LastAggregator, LastNeighborLoader

    from gnnkit.tasks.temporal_link import evaluation_sets
    from gnnkit.temporal.metrics import average_precision, roc_auc

    data = stream_for(args, seed)
    torch.manual_seed(seed)
    n, t, msg = data.num_nodes, data.t.long(), data.msg

    class Embed(torch.nn.Module):
        def __init__(self, time_enc):
            super().__init__()
            self.time_enc = time_enc
            self.conv = TransformerConv(DIM, DIM // 2, heads=2, dropout=0.1, edge_dim=1 + DIM)

        def forward(self, x, last_update, edge_index, t_e, msg_e):
            rel = self.time_enc((last_update[edge_index[0]] - t_e).to(x.dtype))
            return self.conv(x, edge_index, torch.cat([rel, msg_e], -1))

    class Predict(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.src, self.dst, self.out = Linear(DIM, DIM), Linear(DIM, DIM), Linear(DIM, 1)

        def forward(self, a, b):
            return self.out((self.src(a) + self.dst(b)).relu())

    memory = TGNMemory(n, 1, DIM, DIM, IdentityMessage(1, DIM, DIM), LastAggregator())
    gnn, pred = Embed(memory.time_enc), Predict()
    params = set(memory.parameters()) | set(gnn.parameters()) | set(pred.parameters())
    opt = torch.optim.Adam(params, lr=1e-4)
    loader = LastNeighborLoader(n, size=K)
    assoc = torch.empty(n, dtype=torch.long)
    bce = torch.nn.BCEWithLogitsLoss()
    train_e = data.train_mask.nonzero().view(-1)
    cand = torch.unique(data.dst[train_e])
    # LastNeighborLoader numbers events in insertion order: keep a map to the stream's event ids
    order = torch.empty(data.num_events, dtype=torch.long)

    def step(e, neg, train):
        src, dst = data.src[e], data.dst[e]
        n_id = torch.cat([src, dst, neg]).unique()
        n_id, edge_index, e_id = loader(n_id)
        assoc[n_id] = torch.arange(n_id.numel())
        z, last = memory(n_id)
        z = gnn(z, last, edge_index, t[order[e_id]], msg[order[e_id]])
        pos, negl = pred(z[assoc[src]], z[assoc[dst]]), pred(z[assoc[src]], z[assoc[neg]])
        memory.update_state(src, dst, t[e], msg[e])
        order[loader.cur_e_id: loader.cur_e_id + e.numel()] = e
        loader.insert(src, dst)
        return pos.view(-1), negl.view(-1)

    if args.keep_heap:  # the allocator setting gnnkit's temporal-link task applies (gnnkit.temporal.heap)
        from gnnkit.temporal.heap import keep_freed_memory
        keep_freed_memory()
    seconds = events = cpu = 0
    epoch_s, epoch_cpu = [], []
    switch = reset = 0.0
    best = None  # the epoch with the best validation AP, as the Trainer selects gnnkit's
    for _ in range(args.epochs):
        memory.train(), gnn.train(), pred.train()
        t0, c0 = time.perf_counter(), time.process_time()
        memory.reset_state()
        loader.reset_state()
        reset = max(reset, time.perf_counter() - t0)
        for lo in range(0, train_e.numel(), BATCH):
            e = train_e[lo: lo + BATCH]
            opt.zero_grad()
            pos, negl = step(e, cand[torch.randint(cand.numel(), (e.numel(),))], True)
            loss = bce(pos, torch.ones_like(pos)) + bce(negl, torch.zeros_like(negl))
            loss.backward()
            opt.step()
            memory.detach()
            events += e.numel()
        seconds += time.perf_counter() - t0
        cpu += time.process_time() - c0
        epoch_s.append(time.perf_counter() - t0)
        epoch_cpu.append(time.process_time() - c0)
        t1 = time.perf_counter()
        memory.eval(), gnn.eval(), pred.eval()  # TGNMemory flushes every node's messages here
        switch = max(switch, time.perf_counter() - t1)
        sets = evaluation_sets(data)
        figures = {}
        with torch.no_grad():
            for split in ("val", "test"):
                e_all, neg_all = sets[split]
                aps, aucs = [], []
                for lo in range(0, e_all.numel(), BATCH):
                    pos, negl = step(e_all[lo: lo + BATCH], neg_all[lo: lo + BATCH], False)
                    score = torch.cat([pos, negl]).sigmoid()
                    label = torch.cat([torch.ones_like(pos), torch.zeros_like(negl)])
                    aps.append(average_precision(score, label))
                    aucs.append(roc_auc(score, label))
                figures[split] = (sum(aps) / len(aps), sum(aucs) / len(aucs))
        if best is None or figures["val"][0] > best["val"][0]:
            best = figures
    return {"events_per_s": events / seconds, "events_per_cpu_s": events / cpu, "epoch_s": epoch_s,
            "epoch_cpu_s": epoch_cpu,
            "test_ap": best["test"][0], "test_auc": best["test"][1],
            "val_ap": best["val"][0], "switch_s": switch, "reset_s": reset, "peak_rss_mb": peak_mb()}


def pyg_switch(args):
    """PyG on the synthetic stream: ``args.batches`` training batches, then the train -> eval switch."""
    from torch_geometric.nn import TGNMemory
    from torch_geometric.nn.models.tgn import IdentityMessage, LastAggregator

    data = stream_for(args, 0)
    n = data.num_nodes
    memory = TGNMemory(n, 1, DIM, DIM, IdentityMessage(1, DIM, DIM), LastAggregator())
    t0 = time.perf_counter()
    memory.reset_state()
    reset = time.perf_counter() - t0
    train_e = data.train_mask.nonzero().view(-1)
    with torch.no_grad():
        for lo in range(0, args.batches * BATCH, BATCH):
            e = train_e[lo: lo + BATCH]
            memory(torch.cat([data.src[e], data.dst[e]]).unique())
            memory.update_state(data.src[e], data.dst[e], data.t[e].long(), data.msg[e])
    t1 = time.perf_counter()
    memory.eval()
    return {"switch_s": time.perf_counter() - t1, "reset_s": reset, "peak_rss_mb": peak_mb()}


# -- driver -------------------------------------------------------------------------------------
def child(args, side, seed, **extra):
    cmd = [sys.executable, os.path.abspath(__file__), "--child", side, "--seed", str(seed), "--epochs",
           str(args.epochs), "--threads", str(args.threads), "--dataset", extra.get("dataset", args.dataset),
           "--num-nodes", str(args.num_nodes), "--num-events", str(args.num_events),
           "--batches", str(args.batches), "--embedding", extra.get("embedding", "transformer"),
           "--precision", extra.get("precision", "32")] + (["--compile"] if extra.get("compile") else []) \
        + (["--keep-heap"] if args.pyg_keep_heap else [])
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": REPO})
    return json.loads(out.stdout.strip().splitlines()[-1])


def mean(rows, key):
    vals = [r[key] for r in rows]
    return statistics.fmean(vals), (statistics.stdev(vals) if len(vals) > 1 else 0.0)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", default=COLLEGE)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--threads", type=int, default=1, help="torch threads in every child (the same on both sides)")
    p.add_argument("--num-nodes", type=int, default=1_000_000)
    p.add_argument("--num-events", type=int, default=2_000_000)
    p.add_argument("--batches", type=int, default=300, help="PyG training batches before its switch (part 2)")
    p.add_argument("--reference-seeds", type=int, default=1, help="seeds of the authors'-attention reference run")
    p.add_argument("--skip-synthetic", action="store_true")
    p.add_argument("--child", default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--embedding", default="transformer")
    p.add_argument("--precisions", default="32,bf16-mixed",
                   help="gnnkit's variants, comma-separated: a precision, '+compile' for TGN(compile=True)")
    p.add_argument("--pyg-keep-heap", action="store_true",
                   help="PyG's child keeps freed memory in the heap too (gnnkit.temporal.heap), for comparison")
    p.add_argument("--precision", default="32", help=argparse.SUPPRESS)  # a child's
    p.add_argument("--compile", action="store_true", help=argparse.SUPPRESS)  # a child's
    p.add_argument("--keep-heap", action="store_true", help=argparse.SUPPRESS)  # a child's
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    if args.child:
        fn = {"gnnkit": run_gnnkit, "pyg": run_pyg}.get(args.child)
        print(json.dumps(fn(args, args.seed) if fn else pyg_switch(args)))
        return
    missing = [m for m in ("torch_scatter", "torch_sparse", "pyg_lib") if importlib.util.find_spec(m) is None]
    print(f"# {time.strftime('%Y-%m-%d %H:%M %Z')}; load average {os.getloadavg()[0]:.2f}; "
          f"{os.cpu_count()}-core CPU, torch {torch.__version__}, "
          f"{args.threads} thread(s) per run; not installed: {', '.join(missing) or 'none'} "
          f"(PyG's TGN pieces run on torch_geometric.utils.scatter)", flush=True)
    precs = [q.strip() for q in args.precisions.split(",") if q.strip()]
    sides = [f"gnnkit-{q}" for q in precs]
    rows = {**{k: [] for k in sides}, "pyg": [], "gnnkit-attn": []}
    for seed in range(args.seeds):
        for q, side in zip(precs, sides):
            rows[side].append(child(args, "gnnkit", seed, precision=q.split("+")[0], compile=q.endswith("+compile")))
        rows["pyg"].append(child(args, "pyg", seed))
        if seed < args.reference_seeds:
            rows["gnnkit-attn"].append(child(args, "gnnkit", seed, embedding="attention"))
        for side in [k for k in rows if len(rows[k]) == seed + 1]:
            r = rows[side][-1]
            print(f"seed {seed} {side:25s} events/s {r['events_per_s']:8.0f}  per CPU-s {r['events_per_cpu_s']:8.0f}  "
                  f"test AP {r['test_ap']:.4f}  AUC {r['test_auc']:.4f}  peak RSS {r['peak_rss_mb']:.0f} MB  "
                  f"epochs (s) {' '.join(f'{x:.1f}' for x in r['epoch_s'])} (CPU-s) "
                  f"{' '.join(f'{x:.1f}' for x in r['epoch_cpu_s'])}", flush=True)
        print(f"seed {seed} ratios: " + ", ".join(
            f"{q} {rows[side][-1]['events_per_s'] / rows['pyg'][-1]['events_per_s']:.2f}" for q, side in zip(precs, sides))
            + f"; load average {os.getloadavg()[0]:.2f}; {time.strftime('%H:%M:%S %Z')}", flush=True)
    print(f"## {os.path.basename(args.dataset)}, {args.epochs} epochs, {args.seeds} seeds (mean ± std), "
          f"{args.threads} thread(s) per run")
    labels = [(side, f"gnnkit TGN (transformer, {q})") for q, side in zip(precs, sides)]
    for side, label in labels + [("pyg", "PyG TGN (float32)"), ("gnnkit-attn", "gnnkit TGN (authors' attn, 32)")]:
        if not rows[side]:
            continue
        (eps, eps_sd), (ap, ap_sd) = mean(rows[side], "events_per_s"), mean(rows[side], "test_ap")
        print(f"{label:34s} events/s {eps:8.0f} ± {eps_sd:5.0f}  test AP {100 * ap:6.2f} ± {100 * ap_sd:4.2f}  "
              f"peak RSS {max(r['peak_rss_mb'] for r in rows[side]):6.0f} MB", flush=True)
    figures = {}
    for q, side in zip(precs, sides):
        ratios = [g["events_per_s"] / r["events_per_s"] for g, r in zip(rows[side], rows["pyg"])]
        speedup = statistics.median(ratios)  # per seed, the runs back to back: less exposed to load swings
        gap = 100 * (mean(rows[side], "test_ap")[0] - mean(rows["pyg"], "test_ap")[0])
        figures[q] = (speedup, gap)
        cpu = [g["events_per_cpu_s"] / r["events_per_cpu_s"] for g, r in zip(rows[side], rows["pyg"])]
        later = [(sum(r["epoch_cpu_s"][1:]) / sum(g["epoch_cpu_s"][1:])) for g, r in zip(rows[side], rows["pyg"])
                 if len(g["epoch_cpu_s"]) > 1]
        print(f"{q}: events/s ratio per seed: {', '.join(f'{r:.2f}' for r in ratios)}; median {speedup:.2f}; "
              f"ratio of the means {mean(rows[side], 'events_per_s')[0] / mean(rows['pyg'], 'events_per_s')[0]:.2f}; "
              f"per CPU-second: {', '.join(f'{r:.2f}' for r in cpu)} (median {statistics.median(cpu):.2f})"
              + (f"; per CPU-second, epochs 2+ only: {', '.join(f'{r:.2f}' for r in later)} (median "
                 f"{statistics.median(later):.2f})" if later else "")
              + f"; test AP gap {gap:+.2f} points; load average {os.getloadavg()[0]:.2f}", flush=True)
    if not args.skip_synthetic:
        syn = argparse.Namespace(**{**vars(args), "epochs": 1})
        g = child(syn, "gnnkit", 0, dataset="synthetic")
        q = child(syn, "pyg-switch", 0, dataset="synthetic")
        print(f"## synthetic: {args.num_nodes} nodes, {args.num_events} events, 1 epoch")
        print(f"gnnkit: epoch done at {g['events_per_s']:.0f} events/s, test AP {g['test_ap']:.4f}, "
              f"train->eval switch {g['switch_s']:.3f} s, reset {g['reset_s']:.3f} s, peak RSS {g['peak_rss_mb']:.0f} MB")
        print(f"PyG:    train->eval switch {q['switch_s']:.3f} s (after {args.batches} batches), "
              f"reset_state {q['reset_s']:.3f} s, peak RSS {q['peak_rss_mb']:.0f} MB")
    print(" ".join(f"speedup_{q}={v[0]:.2f} ap_gap_{q}={v[1]:.2f}" for q, v in figures.items()))
    print(f"speedup={figures[precs[0]][0]:.2f} ap_gap={figures[precs[0]][1]:.2f}")


if __name__ == "__main__":
    main()
