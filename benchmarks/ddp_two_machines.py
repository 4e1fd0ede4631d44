"""Two machines simulated on one: two ``torchrun --nnodes 2`` launchers meet at a c10d rendezvous
on 127.0.0.1 and train GCN on Cora; the test accuracy in their one ``results.json`` is compared with
a 1-process run of the same command.

    python benchmarks/ddp_two_machines.py --root /tmp/planetoid   # a copy of ../shared/data/Planetoid

Without ``--root`` it copies ``../shared/data/Planetoid`` into a temporary folder (Planetoid writes
``processed/`` under its root). Last line: ``acc_single=X acc_two_machines=Y gap=Z``.
"""
from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

from _shared import planetoid_root

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--root", default=None)
    p.add_argument("--seeds", type=int, default=3)
    args = p.parse_args()
    work = Path(tempfile.mkdtemp(prefix="ddp_two_machines-"))
    root = planetoid_root(args.root, work)
    train = ["-m", "gnnkit", "train", "--dataset", "Cora", "--root", root, "--model", "gcn", "--hidden", "16",
             "--epochs", "200", "--seeds", str(args.seeds), "--no-progress", "--device", "cpu"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    subprocess.run([sys.executable, *train, "--out", str(work / "single")], env=env, check=True)
    port = free_port()
    procs = [subprocess.Popen([sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--nproc-per-node", "1",
                               "--node-rank", str(r), "--rdzv-backend", "c10d", "--rdzv-endpoint", f"127.0.0.1:{port}",
                               *train, "--out", str(work / "two")], env=env) for r in (0, 1)]
    codes = [p.wait() for p in procs]
    if any(codes):
        sys.exit(f"a launcher failed: exit codes {codes}")
    single = json.loads((work / "single" / "results.json").read_text())["test_mean"]
    two = json.loads((work / "two" / "results.json").read_text())["test_mean"]
    print(f"acc_single={single:.4f} acc_two_machines={two:.4f} gap={abs(single - two):.4f}")


if __name__ == "__main__":
    main()
