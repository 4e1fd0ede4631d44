"""Graph classification throughput: gnnkit's block-diagonal batching + GIN against PyG's
``DataLoader`` + ``GINConv``, side by side in one run, one thread.

    python benchmarks/graph_vs_pyg.py                          # MUTAG and ENZYMES, 10 folds, 100 epochs
    python benchmarks/graph_vs_pyg.py --folds 2 --epochs 5     # smoke

Data: ``../shared/data/TU/{MUTAG,ENZYMES}`` copied to a temporary folder (PyG writes ``processed/``
beside ``raw/``), or ``--root``. Both sides read the same processed files: gnnkit through
:func:`gnnkit.graphs.load_tu` (one concatenation, then slicing), PyG through ``TUDataset``.

Equal settings on both sides: the same stratified folds (:func:`gnnkit.graphs.stratified_kfold`),
GIN with 5 layers of width 64, each ``MLP = Linear → BatchNorm → ReLU → Linear`` then
``BatchNorm → ReLU``, ε = 0, readout ``Σ_l dropout(Linear_l(sum_pool(h_l)))`` over the input and
every layer, dropout 0.5, Adam (lr 0.01), batches of 128 graphs shuffled every epoch, the
cross-entropy loss; the same initial weights (PyG's model is loaded from gnnkit's ``state_dict``).
gnnkit: ``GraphBatcher(coll, "sum")`` + :class:`~gnnkit.models.gin.GIN` (CSR products);
PyG: ``torch_geometric.loader.DataLoader`` (collates ``Data`` objects per batch) +
``torch_geometric.nn.GINConv`` (gather/scatter) + ``global_add_pool``.

Measured per fold, both variants alternating: ``train`` seconds of the training epochs (batch
assembly, forward, backward, optimizer step; evaluation excluded), ``load`` seconds of the same
epochs' batches without a model (batch assembly alone), and the test accuracy after the last
epoch. Reported: training graphs per second (``graphs × epochs / train seconds``), loading graphs
per second, the mean ± std test accuracy over folds, and ``speedup`` = gnnkit graphs/s divided by
PyG's. Results go to stdout and ``--out`` (JSON).
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from gnnkit.fileio import writable_copy

from _graph import evaluate, train_epoch

SHARED_TU = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "TU"


class PygGIN(nn.Module):
    """The same network as :class:`gnnkit.models.gin.GIN`, on PyG's ``GINConv`` (parameter names
    match, so gnnkit's ``state_dict`` loads into it)."""

    def __init__(self, in_dim: int, hidden: int, out_dim: int, num_layers: int, dropout: float):
        super().__init__()
        from torch_geometric.nn import GINConv

        from gnnkit.models.gin import gin_mlp

        dims = [in_dim] + [hidden] * num_layers
        self.convs = nn.ModuleList([GINConv(gin_mlp(dims[i], hidden, hidden), eps=0.0) for i in range(num_layers)])
        self.norms = nn.ModuleList([nn.BatchNorm1d(hidden) for _ in range(num_layers)])
        self.linears = nn.ModuleList([nn.Linear(d, out_dim) for d in dims])
        self.dropout = dropout

    def forward(self, x, edge_index, batch, num_graphs: int):
        from torch_geometric.nn import global_add_pool

        hs = [x]
        for conv, norm in zip(self.convs, self.norms):
            hs.append(torch.relu(norm(conv(hs[-1], edge_index))))
        out = 0
        for lin, h in zip(self.linears, hs):
            out = out + F.dropout(lin(global_add_pool(h, batch, num_graphs)), self.dropout, self.training)
        return out


def pyg_state(gnnkit_model) -> dict:
    """gnnkit GIN's ``state_dict`` renamed for :class:`PygGIN` (``readout.linears`` -> ``linears``;
    ``mlp`` -> ``nn``, PyG's name for the GINConv's MLP; the fixed ``eps`` buffer keeps its name)."""
    out = {}
    for k, v in gnnkit_model.state_dict().items():
        k = k.replace("readout.linears", "linears").replace(".mlp.", ".nn.")
        out[k] = v.clone()
    return out


def run_gnnkit(model, batcher, train_ids, test_ids, args, seed: int):
    from gnnkit.graphs import GraphLoader

    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    loader = GraphLoader(batcher, train_ids, args.batch_size, seed=seed)
    t0 = time.perf_counter()
    for epoch in range(args.epochs):
        train_epoch(model, loader, opt, epoch)
    train_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    for epoch in range(args.epochs):
        loader.set_epoch(epoch)
        for b in loader:
            pass
    load_s = time.perf_counter() - t0
    acc = evaluate(model, batcher, test_ids)
    return train_s, load_s, acc


def run_pyg(model, dataset, train_ids, test_ids, args, seed: int):
    from torch_geometric.loader import DataLoader

    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    gen = torch.Generator().manual_seed(seed)
    loader = DataLoader(dataset[train_ids], batch_size=args.batch_size, shuffle=True, generator=gen)
    t0 = time.perf_counter()
    for _ in range(args.epochs):
        model.train()
        for d in loader:
            opt.zero_grad()
            F.cross_entropy(model(d.x, d.edge_index, d.batch, d.num_graphs), d.y).backward()
            opt.step()
    train_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    for _ in range(args.epochs):
        for d in loader:
            pass
    load_s = time.perf_counter() - t0
    model.eval()
    with torch.no_grad():
        d = next(iter(DataLoader(dataset[test_ids], batch_size=len(test_ids))))
        acc = float((model(d.x, d.edge_index, d.batch, d.num_graphs).argmax(1) == d.y).float().mean())
    return train_s, load_s, acc


def bench_dataset(name: str, root: str, args) -> dict:
    from torch_geometric.datasets import TUDataset

    from gnnkit.graphs import GraphBatcher, load_tu, stratified_kfold
    from gnnkit.models.gin import GIN

    coll = load_tu(name, root)
    dataset = TUDataset(root, name)
    assert torch.equal(dataset._data.y, coll.y), "gnnkit and PyG read different labels"
    batcher = GraphBatcher(coll, "sum")
    rec = {k: [] for k in ("gnnkit_train_s", "gnnkit_load_s", "gnnkit_acc", "pyg_train_s", "pyg_load_s", "pyg_acc")}
    graphs = 0
    for fold, (train_ids, test_ids) in enumerate(stratified_kfold(coll.y, args.folds, seed=args.seed)):
        torch.manual_seed(args.seed + fold)
        ours = GIN(coll.num_features, args.hidden, coll.num_classes, num_layers=args.layers, dropout=0.5)
        theirs = PygGIN(coll.num_features, args.hidden, coll.num_classes, args.layers, 0.5)
        theirs.load_state_dict(pyg_state(ours), strict=True)
        for side in (("gnnkit", "pyg") if fold % 2 == 0 else ("pyg", "gnnkit")):
            torch.manual_seed(args.seed + fold)  # same dropout stream start on both sides
            out = (run_gnnkit(ours, batcher, train_ids, test_ids, args, args.seed + fold) if side == "gnnkit"
                   else run_pyg(theirs, dataset, train_ids, test_ids, args, args.seed + fold))
            for key, value in zip(("train_s", "load_s", "acc"), out):
                rec[f"{side}_{key}"].append(value)
        graphs += train_ids.numel() * args.epochs
        print(f"{name} fold {fold}: gnnkit {rec['gnnkit_train_s'][-1]:.2f}s acc {rec['gnnkit_acc'][-1]:.3f} | "
              f"pyg {rec['pyg_train_s'][-1]:.2f}s acc {rec['pyg_acc'][-1]:.3f}", flush=True)
    return summarize(name, rec, graphs)


def summarize(name: str, rec: dict, graphs: int) -> dict:
    def sd(v):
        return statistics.pstdev(v) if len(v) > 1 else 0.0

    out = {"dataset": name, "training_graphs": graphs, "folds": len(rec["gnnkit_acc"])}
    for side in ("gnnkit", "pyg"):
        out[f"{side}_graphs_per_s"] = graphs / sum(rec[f"{side}_train_s"])
        out[f"{side}_load_graphs_per_s"] = graphs / sum(rec[f"{side}_load_s"])
        out[f"{side}_acc_mean"] = statistics.fmean(rec[f"{side}_acc"])
        out[f"{side}_acc_std"] = sd(rec[f"{side}_acc"])
    out["speedup"] = out["gnnkit_graphs_per_s"] / out["pyg_graphs_per_s"]
    out["load_speedup"] = out["gnnkit_load_graphs_per_s"] / out["pyg_load_graphs_per_s"]
    print(f"{name}: train graphs/s gnnkit {out['gnnkit_graphs_per_s']:.0f} pyg {out['pyg_graphs_per_s']:.0f} "
          f"speedup={out['speedup']:.2f} | loading graphs/s gnnkit {out['gnnkit_load_graphs_per_s']:.0f} "
          f"pyg {out['pyg_load_graphs_per_s']:.0f} load_speedup={out['load_speedup']:.2f} | test acc gnnkit "
          f"{out['gnnkit_acc_mean']:.3f}±{out['gnnkit_acc_std']:.3f} pyg {out['pyg_acc_mean']:.3f}±"
          f"{out['pyg_acc_std']:.3f}", flush=True)
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--datasets", nargs="+", default=["MUTAG", "ENZYMES"])
    p.add_argument("--root", help="a writable folder holding <NAME>/raw (default: a copy of ../shared/data/TU)")
    p.add_argument("--folds", type=int, default=10)
    p.add_argument("--epochs", type=int, default=100)
    p.add_argument("--layers", type=int, default=5)
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=0.01)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", help="write the figures as JSON here")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    from gnnkit.fileio import atomic_write_json

    with tempfile.TemporaryDirectory() as work:
        root = args.root
        if root is None:
            if not SHARED_TU.is_dir():
                print(f"skipped: {SHARED_TU} is absent; pass --root", file=sys.stderr)
                return 0
            root = os.path.join(work, "TU")
            writable_copy(SHARED_TU, root)
        results = [bench_dataset(name, root, args) for name in args.datasets]
    record = {"settings": vars(args), "torch": torch.__version__, "threads": torch.get_num_threads(),
              "results": results}
    if args.out:
        atomic_write_json(args.out, record)
    return 0


if __name__ == "__main__":
    sys.exit(main())
