"""ForwardGNN memory: peak memory of one training epoch, forward (SF) vs backprop, deep GCN on csbm.

    flock /tmp/gnnkit-heavy.lock python benchmarks/forward_memory.py [--num-nodes 1000000] [--layers 8]

Each measurement runs in a fresh process on the same seeded csbm graph (``--num-nodes`` nodes,
average degree 10, 100 features, 10 classes) and the same GCN (``--layers`` graph layers of width
``--hidden``, no dropout, Adam). The process's peak resident memory is reset (``/proc/self/
clear_refs``) after the graph, the model and the full-graph adjacency exist, then one training
epoch runs (full batch: one step) and ``VmHWM`` is read: the peak of the epoch itself, graph
included. Backprop: one step through all layers. Forward (SF, sequential schedule): one step of
the deepest layer, whose input the frozen layers below compute first (as at that layer's start),
with and without cached aggregation; then a second step, the steady per-epoch time.

Accuracy gap: training either model to convergence on the big graph does not fit this machine's
time, so ``acc_gap`` (backprop minus SF test accuracy, points) comes from full runs of the same
architecture on a smaller csbm (``--acc-nodes``), early-stopped as in the reference (checks every 2
epochs). Last line: ``acc_gap=X mem_ratio=Y`` with ``mem_ratio`` = SF epoch peak / backprop
epoch peak (goal <= 0.5).
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys

_CHILD = r"""
import json, sys, time, torch
from gnnkit.data.csbm import csbm
from gnnkit.models import build_model
from gnnkit.strategies.forward import ForwardLearning
from gnnkit.trainer import Trainer
from gnnkit.callbacks import Callback

cfg = json.loads(sys.argv[1])
mode = cfg["mode"]

def hwm_mb():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM"):
            return int(line.split()[1]) / 1024
def reset_hwm():
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")

class Abort(Exception):
    pass

data = csbm(num_nodes=cfg["nodes"], num_classes=10, avg_degree=10.0, num_features=100, seed=0)
forward = mode != "backprop"
torch.manual_seed(0)
model = build_model("gcn", 100, cfg["hidden"] if forward else 10, hidden=cfg["hidden"],
                    num_layers=cfg["layers"], dropout=0.0)
out = {"mode": mode}

class Measure(Callback):
    def on_fit_start(self, trainer):
        st, batch = trainer.strategy, trainer.sampler.batch
        if forward:
            st.sched.layer = st.sched.num_layers - 1  # the deepest layer: its input runs through all frozen layers
            st.sched.budget = 10**9
        base = hwm_mb()
        out["base_mb"] = base
        reset_hwm()
        t0 = time.perf_counter()
        st.step(trainer.ctx, trainer.model, batch, trainer.task)
        t1 = time.perf_counter()
        st.step(trainer.ctx, trainer.model, batch, trainer.task)
        t2 = time.perf_counter()
        out.update(epoch_peak_mb=hwm_mb(), first_epoch_s=t1 - t0, epoch_s=t2 - t1)
        raise Abort

strategy = ForwardLearning("sf", cache=cfg.get("cache", "auto")) if forward else "backprop"
t = Trainer(strategy=strategy, max_epochs=cfg["layers"], lr=1e-3, weight_decay=5e-4, progress=False,
            device="cpu", callbacks=[Measure()], eval_every=10**9)
try:
    t.fit(model, data)
except Abort:
    pass
print(json.dumps(out))
"""

_ACC = r"""
import json, sys, torch
from gnnkit.data.csbm import csbm
from gnnkit.models import build_model
from gnnkit.strategies.forward import ForwardLearning
from gnnkit.trainer import Trainer
cfg = json.loads(sys.argv[1])
data = csbm(num_nodes=cfg["nodes"], num_classes=10, avg_degree=10.0, num_features=100, seed=0)
torch.manual_seed(0)
fw = cfg["mode"] == "sf"
model = build_model("gcn", 100, cfg["hidden"] if fw else 10, hidden=cfg["hidden"], num_layers=cfg["layers"],
                    dropout=0.0)
common = dict(lr=1e-3, weight_decay=5e-4, progress=False, device="cpu", seed=0)
if fw:
    st = ForwardLearning("sf", patience=cfg["patience"], layer_epochs=cfg["epochs"])
    t = Trainer(strategy=st, max_epochs=cfg["layers"] * cfg["epochs"], eval_every=10**9, **common)
else:
    t = Trainer(max_epochs=cfg["epochs"], eval_every=2, patience=cfg["patience"], **common)
r = t.fit(model, data)
print(json.dumps({"mode": cfg["mode"], "test": r["test"], "val": r["val"], "epochs": r["epochs"]}))
"""


def child(code: str, cfg: dict) -> dict:
    out = subprocess.run([sys.executable, "-c", code, json.dumps(cfg)], capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise SystemExit(f"run {cfg} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--num-nodes", type=int, default=1_000_000)
    p.add_argument("--layers", type=int, default=8)
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--acc-nodes", type=int, default=5_000, help="csbm size of the accuracy runs")
    p.add_argument("--acc-epochs", type=int, default=100, help="max epochs (per layer for SF) of the accuracy runs")
    p.add_argument("--acc-patience", type=int, default=20, help="checks (every 2 epochs) of the accuracy runs")
    args = p.parse_args()
    base = {"nodes": args.num_nodes, "layers": args.layers, "hidden": args.hidden}
    runs = [child(_CHILD, {**base, "mode": "backprop"}),
            child(_CHILD, {**base, "mode": "sf-cached", "cache": "auto"}),
            child(_CHILD, {**base, "mode": "sf-uncached", "cache": "off"})]
    print(f"csbm {args.num_nodes} nodes, GCN {args.layers} layers x {args.hidden}; one training epoch per process")
    for r in runs:
        print(f"  {r['mode']:12s} peak {r['epoch_peak_mb']:9.0f} MB (graph+model before the epoch {r['base_mb']:7.0f} MB)"
              f"  first epoch {r['first_epoch_s']:7.2f} s  steady epoch {r['epoch_s']:7.2f} s")
    bp, sf, sf_off = runs
    mem_ratio = sf["epoch_peak_mb"] / bp["epoch_peak_mb"]
    print(f"  steady epoch time: SF cached / uncached = {sf['epoch_s'] / sf_off['epoch_s']:.2f}, "
          f"SF cached / backprop = {sf['epoch_s'] / bp['epoch_s']:.2f}")
    acc = {m: child(_ACC, {"nodes": args.acc_nodes, "layers": args.layers, "hidden": args.hidden, "mode": m,
                          "epochs": args.acc_epochs, "patience": args.acc_patience}) for m in ("backprop", "sf")}
    for m, r in acc.items():
        print(f"  accuracy csbm {args.acc_nodes} nodes {m:9s} test {100 * r['test']:.2f} val {100 * r['val']:.2f} "
              f"epochs {r['epochs']}")
    acc_gap = 100 * (acc["backprop"]["test"] - acc["sf"]["test"])
    print(f"acc_gap={acc_gap:.2f} mem_ratio={mem_ratio:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
