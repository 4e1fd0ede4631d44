"""Scan-ahead (``Trainer(scan_group=G)``) against plain gathers (``scan_group=0``) on an on-disk store.

K training steps per run (3-layer GraphSAGE hidden 256, fanouts 15,10,5, batch 1024), the runs
interleaved in the order of MODES (default ``0,G,0,G``); each prints the wall seconds per step over
steps 2..K+1, the bytes read from disk per step (``/proc/self/io``), a hash of the weights after K
steps (equal in every mode: the same batches) and the load average. The store must have 100 features
and 47 classes (``benchmarks/out_of_core.py --preset products`` builds one):

    flock /tmp/gnnkit-heavy.lock python benchmarks/scan_ahead.py STORE_DIR 4 4
"""
import hashlib
import os
import sys
import time

import torch

STORE = sys.argv[1]
K, G = int(sys.argv[2]), int(sys.argv[3])
MODES = [int(m) for m in (sys.argv[4] if len(sys.argv) > 4 else "0,G,0,G").replace("G", str(G)).split(",")]


class Enough(Exception):
    pass


def read_bytes():
    for line in open("/proc/self/io"):
        if line.startswith("read_bytes"):
            return int(line.split()[1])


def run(group):
    from gnnkit import Trainer
    from gnnkit.callbacks import Callback
    from gnnkit.samplers.neighbor import NeighborSampler
    from gnnkit.stores.ondisk import open_store
    from gnnkit.models import build_model

    marks = []

    class Stop(Callback):
        def on_batch_end(self, trainer, batch, outputs):
            marks.append((time.perf_counter(), read_bytes()))
            if len(marks) == K + 1:
                raise Enough

    torch.manual_seed(0)
    model = build_model("sage", 100, 47, hidden=256, num_layers=3)
    t = Trainer(sampler=NeighborSampler(fanouts=[15, 10, 5], batch_size=1024), max_epochs=1, seed=0, progress=False,
                device="cpu", scan_group=group, callbacks=[Stop()])
    t0 = time.perf_counter()
    try:
        t.fit(model, open_store(STORE))
    except Enough:
        pass
    h = hashlib.sha256(b"".join(p.detach().numpy().tobytes() for p in model.parameters())).hexdigest()[:16]
    (a, ra), (b, rb) = marks[0], marks[-1]  # steps 2..K+1 (the first step after setup is left out)
    print(f"scan_group={group}: first step at {a - t0:.1f} s after fit(); steps 2..{K + 1}: {(b - a) / K:.2f} s/step, "
          f"{(rb - ra) / K / 2**20:.1f} MiB read/step; weights {h}; load {os.getloadavg()[0]:.2f}", flush=True)
    return h


print(f"threads {torch.get_num_threads()}, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}, "
      f"load {os.getloadavg()[0]:.2f}, K={K}, G={G}, modes {MODES}", flush=True)
hashes = [run(g) for g in MODES]
print("weights equal across modes:", len(set(hashes)) == 1)
