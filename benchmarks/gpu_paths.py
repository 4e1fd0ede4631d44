"""Every training path on the CPU and on a CUDA GPU of the same machine, side by side.

    python benchmarks/gpu_paths.py                       # csbm 200k nodes, 5 epochs per run
    python benchmarks/gpu_paths.py --nodes 2400000 --devices cuda --methods full,cluster,neighbor,mvs

Each run is one ``python -m gnnkit train`` process (1 seed, a fixed number of epochs: patience equals
the epochs, so nothing stops early) on the same seeded csbm graph, or on CollegeMsg for the temporal
link task (``$GNNKIT_SHARED_DATA/temporal/CollegeMsg``, default ``../shared/data``). Per run it
reports seconds per epoch (ForwardGNN: 3 layers x ``--epochs`` layer epochs; training and the evaluation after every epoch, as ``results.json``
counts them), the test figure (accuracy; AP for temporal links), the process's peak RSS and, on the
GPU, the peak of ``torch.cuda.max_memory_allocated``. The CPU runs use every core torch sees. The
last line is ``speedup_<method>=X ...``: CPU seconds per epoch over GPU seconds per epoch, for the
methods run on both devices.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SHARED = Path(os.environ.get("GNNKIT_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
METHODS = {
    "full": [],
    "cluster": ["--sampler", "cluster", "--num-parts", "{parts}", "--clusters-per-batch", "{cpb}"],
    "neighbor": ["--sampler", "neighbor", "--fanouts", "10,10,5", "--batch-size", "1024"],
    "mvs": ["--sampler", "mvs", "--batch-size", "1024"],
    "forward-sf": ["--strategy", "forward", "--forward-variant", "sf", "--forward-layer-epochs", "{epochs}",
                   "--epochs", "{layers_epochs}", "--patience", "{layers_epochs}"],
    "milp": ["--escape", "milp", "--escape-patience", "2", "--escape-max-calls", "1", "--escape-time-limit", "20"],
    "tgn": ["--task", "temporal-link", "--sampler", "temporal", "--dataset", str(SHARED / "temporal" / "CollegeMsg"),
            "--lr", "1e-4", "--weight-decay", "0"],
}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--nodes", type=int, default=200_000, help="csbm nodes (default 200k)")
    p.add_argument("--degree", type=float, default=25.0, help="csbm average degree")
    p.add_argument("--features", type=int, default=100)
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--methods", default=",".join(METHODS), help="comma list of: " + ", ".join(METHODS))
    p.add_argument("--devices", default="cpu,cuda")
    p.add_argument("--timeout", type=float, default=900.0, help="seconds per run")
    p.add_argument("--json", help="write every run's figures here")
    return p.parse_args(argv)


def command(method: str, device: str, args, out: Path) -> list:
    parts = max(2, args.nodes // 2000)
    fill = dict(parts=parts, cpb=max(1, parts // 20), epochs=args.epochs, layers_epochs=3 * args.epochs)
    argv = [sys.executable, "-m", "gnnkit", "train", "--device", device, "--epochs", str(args.epochs),
            "--patience", str(args.epochs), "--seeds", "1", "--no-progress", "--out", str(out),
            "--root", str(out.parent / "data")]
    if method != "tgn":
        argv += ["--dataset", "csbm", "--num-nodes", str(args.nodes), "--avg-degree", str(args.degree),
                 "--num-features", str(args.features), "--hidden", "128", "--layers", "3"]
    return argv + [a.format(**fill) for a in METHODS[method]]


def run(method: str, device: str, args, work: Path) -> dict:
    out = work / f"{method}-{device}"
    started = time.perf_counter()
    proc = subprocess.run(command(method, device, args, out), capture_output=True, text=True, timeout=args.timeout)
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        lines = (proc.stderr or proc.stdout).strip().splitlines()
        return {"method": method, "device": device, "error": lines[-1] if lines else f"exit {proc.returncode}"}
    r = json.loads((out / "results.json").read_text())["runs"][0]
    return {"method": method, "device": device, "epochs": r["epochs"], "s_per_epoch": r["seconds"] / r["epochs"],
            "test": r["test"], "peak_rss_mb": r["peak_rss_mb"], "peak_cuda_mb": r.get("peak_cuda_mb"),
            "wall_s": wall}


def main(argv=None) -> int:
    args = parse_args(argv)
    methods = [m for m in args.methods.split(",") if m]
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        sys.exit(f"unknown method(s) {unknown}; choose from {list(METHODS)}")
    devices = [d for d in args.devices.split(",") if d]
    import torch
    if any(d.startswith("cuda") for d in devices) and not torch.cuda.is_available():
        sys.exit("skipped: no CUDA device")
    if torch.cuda.is_available():
        print(f"GPU: {torch.cuda.get_device_name(0)}, torch {torch.__version__}, CPU threads {torch.get_num_threads()}")
    print(f"csbm nodes={args.nodes} avg_degree={args.degree} features={args.features}, GCN 3 layers hidden 128, "
          f"{args.epochs} epochs per run", flush=True)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for m in methods:
            for d in devices:
                row = run(m, d, args, Path(tmp))
                rows.append(row)
                print(json.dumps(row), flush=True)
    print("\n| method | device | s/epoch | test | peak RSS MB | peak CUDA MB |\n|---|---|---|---|---|---|")
    for r in rows:
        if "error" in r:
            print(f"| {r['method']} | {r['device']} | failed: {r['error']} | | | |")
        else:
            cuda = "" if r["peak_cuda_mb"] is None else f"{r['peak_cuda_mb']:.0f}"
            print(f"| {r['method']} | {r['device']} | {r['s_per_epoch']:.3f} | {r['test']:.4f} | "
                  f"{r['peak_rss_mb']:.0f} | {cuda} |")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    by = {(r["method"], r["device"]): r for r in rows if "error" not in r}
    ratios = [f"speedup_{m}={by[(m, 'cpu')]['s_per_epoch'] / by[(m, 'cuda')]['s_per_epoch']:.2f}"
              for m in methods if (m, "cpu") in by and (m, "cuda") in by]
    print(" ".join(ratios) if ratios else "speedup: no method ran on both devices")
    return 0 if all("error" not in r for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
