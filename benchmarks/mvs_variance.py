"""Gradient variance of MVS vs uniform node sampling (same historical embeddings) vs neighbor
sampling, at a trained state, plus convergence curves (validation accuracy vs steps and seconds).

For each dataset (csbm with noisy labels, Cora): train a GCN full-batch for ``--pretrain-epochs``,
then measure :func:`gnnkit.diagnostics.gradient_stats` of the three samplers at that fixed state
with the same expected batch size ``B``; then train from scratch with MVS, uniform, neighbor and
full batch, recording the validation accuracy every ``--curve-every`` steps (evaluation time
excluded from the seconds). Prints one line per measurement and, last, ``ratio_mvs_uniform=X``
for csbm (variance of MVS / variance of uniform). Saves the curves as a PNG.

    flock /tmp/gnnkit-heavy.lock python benchmarks/mvs_variance.py
"""
from __future__ import annotations

import argparse
import os
import time

import torch

from gnnkit.callbacks import Callback
from gnnkit.data import load
from gnnkit.data.csbm import csbm
from gnnkit.diagnostics import gradient_stats
from gnnkit.models import build_model
from gnnkit.samplers.mvs import MVSSampler
from gnnkit.samplers.neighbor import NeighborSampler
from gnnkit.trainer import Trainer


class ValidationCurve(Callback):
    """Validation accuracy every ``every`` steps; seconds exclude the evaluations themselves."""

    def __init__(self, every: int):
        self.every, self.points, self.steps, self.eval_s = every, [], 0, 0.0

    def on_fit_start(self, trainer) -> None:
        self.t0 = time.perf_counter()

    def on_batch_end(self, trainer, batch, outputs) -> None:
        self.steps += 1
        if self.steps % self.every:
            return
        t = time.perf_counter()
        elapsed = t - self.t0 - self.eval_s  # training seconds so far, evaluations excluded
        val = trainer.evaluate("val")["val_accuracy"]
        trainer.raw_model.train()
        self.eval_s += time.perf_counter() - t
        self.points.append((self.steps, elapsed, val))


def datasets(args):
    out = []
    if "csbm" in args.datasets:
        data = csbm(num_nodes=args.num_nodes, num_classes=10, avg_degree=10, label_noise=args.label_noise, seed=0)
        out.append(("csbm", data, dict(hidden=64, B=args.csbm_batch, K=20, gamma=args.csbm_gamma,
                                       fanouts=[10, 10], curve_steps=args.csbm_curve_steps,
                                       full_steps=args.csbm_full_steps)))
    if "cora" in args.datasets:
        data = load("Cora", root=args.cora_root)
        out.append(("Cora", data, dict(hidden=16, B=32, K=10, gamma=1.0, fanouts=[10, 10], curve_steps=400,
                                       full_steps=200)))
    return out


def samplers(cfg):
    return {"mvs": lambda: MVSSampler(batch_size=cfg["B"], refresh=cfg["K"], candidates=cfg["gamma"]),
            "uniform": lambda: MVSSampler(batch_size=cfg["B"], refresh=cfg["K"], candidates=cfg["gamma"], uniform=True),
            "neighbor": lambda: NeighborSampler(fanouts=cfg["fanouts"], batch_size=cfg["B"])}


def model_for(data, cfg, seed):
    torch.manual_seed(seed)
    return build_model("gcn", data.num_features, int(data.num_classes), hidden=cfg["hidden"], num_layers=2,
                       dropout=0.5)


def measure(name, data, cfg, args):
    model = model_for(data, cfg, 0)
    Trainer(max_epochs=args.pretrain_epochs, progress=False, device="cpu", weight_decay=5e-4).fit(model, data)
    out = {}
    for kind, make in samplers(cfg).items():
        t = time.perf_counter()
        st = gradient_stats(model, data, make(), draws=args.draws, seed=1)
        out[kind] = st["variance"]
        print(f"{name} variance {kind:8s} {st['variance']:.4f}  bias {st['bias']:.4f}  "
              f"batch {st['mean_batch_size']:.1f}  draws {st['draws']}  ({time.perf_counter() - t:.1f}s)", flush=True)
    print(f"{name} ratio mvs/uniform {out['mvs'] / out['uniform']:.3f}  mvs/neighbor {out['mvs'] / out['neighbor']:.3f}",
          flush=True)
    return out


def curves(name, data, cfg, args):
    res = {}
    n_train = int(data.train_mask.sum())
    per_epoch = -(-n_train // cfg["B"])
    for kind, make in list(samplers(cfg).items()) + [("full", lambda: None)]:
        sampler = make()
        if sampler is None:  # full batch: one step per epoch
            steps, epoch_steps = cfg["full_steps"], 1
        else:
            steps = cfg["curve_steps"]
            epoch_steps = cfg["K"] * -(-per_epoch // cfg["K"]) if kind != "neighbor" else per_epoch
        cb = ValidationCurve(max(1, steps // 20))
        trainer = Trainer(sampler=sampler, max_epochs=-(-steps // epoch_steps), progress=False, device="cpu",
                          callbacks=[cb], weight_decay=5e-4, eval_every=10**9)
        trainer.fit(model_for(data, cfg, 0), data)
        res[kind] = cb.points
        last = cb.points[-1]
        print(f"{name} curve {kind:8s} steps {last[0]}  seconds {last[1]:.1f}  val {last[2]:.4f}", flush=True)
    return res


def plot(all_curves, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(all_curves), 2, figsize=(10, 3.6 * len(all_curves)), squeeze=False)
    for row, (name, res) in enumerate(all_curves.items()):
        for kind, pts in res.items():
            s, sec, v = zip(*pts)
            axes[row, 0].plot(s, v, label=kind)
            axes[row, 1].plot(sec, v, label=kind)
        axes[row, 0].set(title=f"{name}: validation accuracy vs steps", xlabel="steps", ylabel="val accuracy")
        axes[row, 1].set(title=f"{name}: vs seconds (2-core CPU)", xlabel="seconds", ylabel="val accuracy")
        axes[row, 0].legend()
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = path + ".tmp.png"
    fig.savefig(tmp, dpi=110)
    os.replace(tmp, path)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--datasets", default="cora,csbm")
    p.add_argument("--num-nodes", type=int, default=100_000)
    p.add_argument("--label-noise", type=float, default=0.3)
    p.add_argument("--csbm-batch", type=int, default=512)
    p.add_argument("--csbm-gamma", type=float, default=0.1)
    p.add_argument("--csbm-curve-steps", type=int, default=240)
    p.add_argument("--csbm-full-steps", type=int, default=40)
    p.add_argument("--pretrain-epochs", type=int, default=20)
    p.add_argument("--draws", type=int, default=100)
    p.add_argument("--cora-root", default=os.environ.get("GNNKIT_CORA_ROOT", "../shared/data/Planetoid"))
    p.add_argument("--no-curves", action="store_true")
    p.add_argument("--png", default="benchmarks/out/mvs_curves.png")
    args = p.parse_args()
    torch.set_num_threads(max(1, (os.cpu_count() or 2) // 2))
    print(f"date {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; threads {torch.get_num_threads()}", flush=True)
    ratio, all_curves = None, {}
    for name, data, cfg in datasets(args):
        v = measure(name, data, cfg, args)
        if name == "csbm":
            ratio = v["mvs"] / v["uniform"]
        if not args.no_curves:
            all_curves[name] = curves(name, data, cfg, args)
            plot(all_curves, args.png)
    if all_curves:
        print(f"curves -> {args.png}")
    if ratio is not None:
        print(f"ratio_mvs_uniform={ratio:.3f}")


if __name__ == "__main__":
    main()
