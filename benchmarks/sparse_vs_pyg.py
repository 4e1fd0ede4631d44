"""One GCN layer, forward + backward: gnnkit's CSR product against PyG's ``GCNConv``.

    python benchmarks/sparse_vs_pyg.py                 # smoke: 20k nodes, ~200k edges, 32 features
    python benchmarks/sparse_vs_pyg.py --full          # 1M nodes, ~20M edges, 128 -> 128 features
    python benchmarks/sparse_vs_pyg.py --full --device cuda

Graph: :func:`gnnkit.data.csbm.csbm` (undirected, ``avg_degree = edges / nodes``, both directions
stored, sorted by source), features ``x`` ``[N, F]`` float32 from the same generator. It is drawn
once, in its own process, and saved to a temporary file that every variant loads.

The layer is ``out = Â (x W) + b``, ``Â = D^-1/2 (A + I) D^-1/2``, ``W`` ``[F, F_out]``; the loss is
``out.sum()``; the gradient reaches ``W`` and ``b`` through the sparse product's backward
(``Â^T`` times ``[N, F_out]``). Variants, each in a fresh process (peak memory is that process's
``ru_maxrss``: interpreter + torch + graph + features + the variant's own work):

* ``gnnkit``: ``Adjacency.from_edge_index(..., norm="gcn", symmetric=True)`` (the graph is
  undirected, so ``Â^T = Â`` and the sorted-by-source edge list needs no sort) and
  ``gnnkit.models.gcn.GCNConv``.
* ``gnnkit_shuffled``: the same on a randomly permuted edge list with ``symmetric=False``: the
  general path (one sort by target, the transpose built for the backward), counted in ``build``.
* ``pyg_edge_index``: PyG ``GCNConv`` on ``edge_index`` (gather/scatter message passing).
* ``pyg_csr``: PyG ``GCNConv`` on a ``torch.sparse_csr_tensor`` ``adj_t`` (PyG's fused
  ``torch.sparse.mm`` path; torch-sparse's ``SparseTensor`` is not needed), autograd by torch.

Fairness: normalization is precomputed once for every variant and timed separately as ``build``
(gnnkit: the ``Adjacency``, incl. its transpose; PyG: ``gcn_norm``, which is what ``cached=True``
stores, plus ``to_torch_csr_tensor`` for ``pyg_csr``); ``step`` is forward + backward with it
cached. ``step+build`` is the per-step cost when nothing is cached (PyG ``cached=False``).
All variants use the same ``W`` (seeded), so ``checksum`` (sum of the output) must agree.
The last line is ``speedup=X mem_ratio=Y``: ``pyg_edge_index`` step time / ``gnnkit`` step time,
and ``gnnkit`` peak memory / ``pyg_edge_index`` peak memory. Each variant runs under an
address-space limit (``--max-gb``, default 90% of the memory available at start) so that a
variant too big for the machine fails with an allocation error instead of waking the OOM killer;
when ``pyg_edge_index`` fails so, ``mem_ratio=<B`` is the bound ``gnnkit peak / limit``.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

VARIANTS = ("gnnkit", "gnnkit_shuffled", "pyg_edge_index", "pyg_csr")
FULL = dict(nodes=1_000_000, edges=20_000_000, features=128)
SMOKE = dict(nodes=20_000, edges=200_000, features=32)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--full", action="store_true", help="1M nodes, 20M edges, 128 features")
    p.add_argument("--nodes", type=int)
    p.add_argument("--edges", type=int, help="directed edges (both directions of each undirected one)")
    p.add_argument("--features", type=int, help="input width F (output width defaults to F)")
    p.add_argument("--out-features", type=int)
    p.add_argument("--repeats", type=int, default=3, help="timed steps after one warm-up step (min is shown)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=0, help="torch.set_num_threads (0: torch's default)")
    p.add_argument("--variants", default=",".join(VARIANTS))
    p.add_argument("--max-gb", type=float, default=0.0,
                   help="address-space limit per variant process (default: 90%% of available memory)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--child", nargs=2, metavar=("ROLE", "PATH"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    size = FULL if args.full else SMOKE
    for key, value in size.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    args.out_features = args.out_features or args.features
    return args


# -- child processes ------------------------------------------------------------------------------
def prepare(args, path):
    import torch
    from gnnkit.data.csbm import csbm
    data = csbm(num_nodes=args.nodes, avg_degree=args.edges / args.nodes, num_features=args.features,
                num_classes=10, seed=args.seed)
    torch.save({"edge_index": data.edge_index, "x": data.x}, path)
    return {"nodes": args.nodes, "edges": int(data.edge_index.shape[1])}


def make_variant(name, edge_index, x, n, sync):
    """Build the variant's cached normalization (timed) and return ``(seconds, layer, call)``."""
    import torch
    from torch_geometric.nn import GCNConv as PygGCNConv
    from torch_geometric.nn.conv.gcn_conv import gcn_norm
    from torch_geometric.utils import to_torch_csr_tensor

    from gnnkit.models.gcn import GCNConv
    from gnnkit.sparse import Adjacency
    f_in, f_out = x.shape[1], ARGS.out_features
    if name == "gnnkit_shuffled":
        edge_index = edge_index[:, torch.randperm(edge_index.shape[1], device=edge_index.device)]
    sync()
    t0 = time.perf_counter()
    if name.startswith("gnnkit"):
        graph = Adjacency.from_edge_index(edge_index, n, norm="gcn", symmetric=name == "gnnkit")
        graph.csr_t  # the backward's transpose: free when symmetric, built here otherwise
        layer = GCNConv(f_in, f_out)
        call = lambda: layer(x, graph)  # noqa: E731
    else:
        ei, ew = gcn_norm(edge_index, None, n, add_self_loops=True)
        layer = PygGCNConv(f_in, f_out, normalize=False)
        if name == "pyg_csr":
            adj_t = to_torch_csr_tensor(ei.flip(0), ew, size=(n, n))  # row = target
            del ei, ew
            call = lambda: layer(x, adj_t)  # noqa: E731
        else:
            call = lambda: layer(x, ei, ew)  # noqa: E731
    sync()
    seconds = time.perf_counter() - t0
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():  # the same W [f_out, f_in] and b = 0 in every variant
        layer.lin.weight.copy_(torch.randn(f_out, f_in, generator=gen) / f_in ** 0.5)
        layer.bias.zero_()
    return seconds, layer.to(x.device), call


def run_variant(name, path):
    import torch
    if ARGS.threads:
        torch.set_num_threads(ARGS.threads)
    dev = torch.device(ARGS.device)
    sync = (lambda: torch.cuda.synchronize(dev)) if dev.type == "cuda" else (lambda: None)
    saved = torch.load(path, weights_only=True)
    edge_index, x = saved["edge_index"].to(dev), saved["x"].to(dev)
    del saved
    n = x.shape[0]
    build, layer, call = make_variant(name, edge_index, x, n, sync)
    fwd, bwd = [], []
    for _ in range(ARGS.repeats + 1):
        layer.zero_grad(set_to_none=True)
        sync()
        t0 = time.perf_counter()
        out = call()
        sync()
        t1 = time.perf_counter()
        out.sum().backward()
        sync()
        fwd.append(t1 - t0)
        bwd.append(time.perf_counter() - t1)
        checksum = float(out.detach().double().sum())
        del out
    steps = [a + b for a, b in zip(fwd[1:], bwd[1:])]
    best = min(range(len(steps)), key=steps.__getitem__)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    result = {"variant": name, "build_s": build, "step_s": steps[best], "fwd_s": fwd[1:][best],
              "bwd_s": bwd[1:][best], "steps_s": steps, "peak_bytes": peak, "checksum": checksum,
              "threads": torch.get_num_threads(), "mkl": torch.backends.mkl.is_available()}
    if dev.type == "cuda":
        result["cuda_peak_bytes"] = torch.cuda.max_memory_allocated(dev)
    return result


# -- parent ---------------------------------------------------------------------------------------
def child(role, path, args, limit_bytes):
    """Run ``role`` in a fresh interpreter; its last stdout line is a JSON result."""
    def limit():
        if limit_bytes:
            resource.setrlimit(resource.RLIMIT_AS, (limit_bytes, limit_bytes))
    argv = [sys.executable, os.path.abspath(__file__), *ARGV, "--child", role, path]
    proc = subprocess.run(argv, capture_output=True, text=True, preexec_fn=limit)
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
        return {"variant": role, "error": f"exit {proc.returncode}: {tail}"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def available_bytes():
    with open("/proc/meminfo") as f:
        info = {line.split(":")[0]: int(line.split()[1]) * 1024 for line in f}
    return info.get("MemAvailable", 0)


def report(prep, results, args, limit):
    gib = 1024 ** 3
    print(f"graph: csbm, {prep['nodes']:,} nodes, {prep['edges']:,} directed edges; GCN layer "
          f"{args.features} -> {args.out_features}; device {args.device}; min of {args.repeats} steps")
    print(f"{'variant':16s} {'build s':>8s} {'step s':>8s} {'fwd s':>7s} {'bwd s':>7s} "
          f"{'step+build':>10s} {'peak GiB':>8s}  checksum")
    for r in results.values():
        if "error" in r:
            print(f"{r['variant']:16s} failed: {r['error']}")
            continue
        peak = r.get("cuda_peak_bytes", r["peak_bytes"]) / gib
        print(f"{r['variant']:16s} {r['build_s']:8.3f} {r['step_s']:8.3f} {r['fwd_s']:7.3f} {r['bwd_s']:7.3f} "
              f"{r['step_s'] + r['build_s']:10.3f} {peak:8.2f}  {r['checksum']:.6g}")
    ours, pyg = results.get("gnnkit", {}), results.get("pyg_edge_index", {})
    key = "cuda_peak_bytes" if "cuda_peak_bytes" in ours else "peak_bytes"
    if "step_s" in ours and "memory" in pyg.get("error", "").lower() and limit:
        # PyG's peak exceeds the limit, so gnnkit / PyG is below gnnkit / limit; no time to compare
        print(f"pyg_edge_index ran out of memory at the {limit / gib:.1f} GiB limit: mem_ratio is a bound")
        print(f"speedup=nan mem_ratio=<{ours[key] / limit:.2f}")
        return
    if "step_s" not in ours or "step_s" not in pyg:
        print("speedup=nan mem_ratio=nan")
        return
    incl = (pyg["step_s"] + pyg["build_s"]) / (ours["step_s"] + ours["build_s"])
    print(f"speedup incl. normalization (step+build)={incl:.2f}")
    print(f"speedup={pyg['step_s'] / ours['step_s']:.2f} mem_ratio={ours[key] / pyg[key]:.2f}")


def main(argv=None):
    global ARGS, ARGV
    ARGV = list(sys.argv[1:] if argv is None else argv)
    ARGS = args = parse_args(ARGV)
    if args.child:
        role, path = args.child
        out = prepare(args, path) if role == "prepare" else run_variant(role, path)
        print(json.dumps(out))
        return
    limit = int((args.max_gb * 1024 ** 3) if args.max_gb else 0.9 * available_bytes())
    with tempfile.TemporaryDirectory(prefix="gnnkit-bench-") as tmp:
        path = os.path.join(tmp, "graph.pt")
        prep = child("prepare", path, args, 0)
        if "error" in prep:
            sys.exit(f"graph generation failed: {prep['error']}")
        results = {}
        for name in args.variants.split(","):
            results[name] = child(name, path, args, limit)
            print(f"  {name}: {json.dumps(results[name])}", file=sys.stderr, flush=True)
    report(prep, results, args, limit)


ARGS = ARGV = None
if __name__ == "__main__":
    main()
