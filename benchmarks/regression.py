"""Behaviour kept across refactors: per-seed figures and a hash of the final weights, every axis.

For small seeded graphs, each case trains through the public API (``gnnkit.Trainer``, the plug-in
classes, the models) and records, per seed, the validation and test figures, the selected epoch
and a SHA-256 of the trained model's ``state_dict`` (bytes of every tensor, keys sorted). Two
records made on the same machine with the same torch compare bitwise on CPU::

    python benchmarks/regression.py --out benchmarks/out/regression_before.json      # before a change
    python benchmarks/regression.py --compare benchmarks/out/regression_before.json  # after it

``--compare`` prints one line per case and seed (``same`` / ``DIFFERENT`` with both figures) and
exits 1 when any hash differs. Cases: full batch, Cluster-GCN (plain and diagonal enhancement),
neighbor sampling, MVS, ForwardGNN SF and FF-LA, the MILP escape on a noisy-label graph (HiGHS, deterministic where CBC under load was not), TGN
on a random event stream, and full batch on two gloo processes (rank 0's weights). One thread.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import socket
import sys
import tempfile

import torch
import torch.multiprocessing as mp

SEEDS = (0, 1)


def weights_hash(model: torch.nn.Module) -> str:
    h = hashlib.sha256()
    for k, v in sorted(model.state_dict().items()):
        h.update(k.encode())
        h.update(v.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes()
                 if v.numel() else b"")
    return h.hexdigest()


def small_graph(seed: int = 0, label_noise: float = 0.0):
    from gnnkit.data.csbm import csbm

    return csbm(num_nodes=600, num_classes=4, avg_degree=6.0, num_features=16, label_noise=label_noise,
                seed=seed, split="random", train_frac=0.5, val_frac=0.25)


def gcn(data, seed: int, layers: int = 2, hidden: int = 16, dropout: float = 0.5, **kw):
    from gnnkit.models import GCN

    torch.manual_seed(seed)
    return GCN(data.num_features, hidden, int(data.num_classes), num_layers=layers, dropout=dropout, **kw)


def sage(data, seed: int):
    from gnnkit.models import GraphSAGE as SAGE

    torch.manual_seed(seed)
    return SAGE(data.num_features, 16, int(data.num_classes), num_layers=2, dropout=0.5)


def fit(model, data, seed: int, **trainer_kw) -> dict:
    from gnnkit import Trainer

    kw = dict(max_epochs=20, lr=0.01, weight_decay=5e-4, seed=seed, progress=False, device="cpu")
    kw.update(trainer_kw)
    result = Trainer(**kw).fit(model, data)
    return {"val": result["val"], "test": result["test"], "best_epoch": result["best_epoch"],
            "epochs": result["epochs"], "weights": weights_hash(model),
            "escape_accepted": sum(bool(r.get("accepted")) for r in result.get("escape", []))}


def case_full(seed):
    data = small_graph()
    return fit(gcn(data, seed), data, seed)


def case_cluster(seed):
    from gnnkit.samplers.cluster import ClusterSampler

    data = small_graph()
    with tempfile.TemporaryDirectory() as cache:
        return fit(gcn(data, seed), data, seed, sampler=ClusterSampler(num_parts=8, clusters_per_batch=2, cache_dir=cache))


def case_cluster_diag(seed):
    from gnnkit.samplers.cluster import ClusterSampler

    data = small_graph()
    model = gcn(data, seed)
    try:  # models that take the operator at construction (after the redesign)
        model = gcn(data, seed, adj_norm="diag", diag_lambda=1e-4)
    except TypeError:
        pass
    with tempfile.TemporaryDirectory() as cache:
        return fit(model, data, seed, sampler=ClusterSampler(num_parts=8, clusters_per_batch=2, diag_lambda=1e-4,
                                                             cache_dir=cache))


def case_neighbor(seed):
    from gnnkit.samplers.neighbor import NeighborSampler

    data = small_graph()
    return fit(sage(data, seed), data, seed, sampler=NeighborSampler(fanouts=(5, 3), batch_size=64))


def case_mvs(seed):
    from gnnkit.samplers.mvs import MVSSampler

    data = small_graph()
    return fit(gcn(data, seed), data, seed, sampler=MVSSampler(batch_size=64, refresh=4), lr=1e-3)


def _forward(seed, variant):
    from gnnkit.strategies.forward import ForwardLearning

    data = small_graph()
    model = gcn(data, seed, layers=3, hidden=32, dropout=0.0)
    strategy = ForwardLearning(variant=variant, patience=5, layer_epochs=6)
    return fit(model, data, seed, strategy=strategy, max_epochs=18, lr=0.01)


def case_forward_sf(seed):
    return _forward(seed, "sf")


def case_forward_ffla(seed):
    return _forward(seed, "ff-la")


def case_escape(seed):
    from gnnkit.escape.milp import MILPEscape

    from gnnkit.data.csbm import csbm

    # the escape benchmark's noisy-label graph, smaller: calls are accepted on it
    data = csbm(num_nodes=1000, num_classes=5, avg_degree=8, num_features=32, homophily=0.6, label_noise=0.3,
                seed=seed, split="random", train_frac=0.6, val_frac=0.2, split_seed=10_000 + seed)
    escape = MILPEscape(solver="highs", radius=0.05, time_limit=60, nodes=48, max_calls=3, patience=5)
    return fit(gcn(data, seed), data, seed, escape=escape, max_epochs=60)


def case_tgn(seed):
    from gnnkit.samplers.temporal import TemporalSampler
    from gnnkit.tasks.temporal_link import TemporalLinkPrediction
    from gnnkit.temporal.events import make_stream
    from gnnkit.temporal.model import TGN

    g = torch.Generator().manual_seed(7)
    n, e = 30, 600
    src = torch.randint(n, (e,), generator=g)
    dst = (src + torch.randint(1, 3, (e,), generator=g)) % n  # a learnable stream: near neighbors talk
    t = torch.sort(torch.randint(0, 10 * e, (e,), generator=g).double()).values
    stream = make_stream(src, dst, t, torch.randn(e, 2, generator=g), num_nodes=n)
    dims = dict(memory_dim=16, time_dim=8, embedding_dim=16)
    torch.manual_seed(seed)
    task = TemporalLinkPrediction(num_neighbors=4, eval_batch_size=40, **dims)
    model = TGN(stream.msg_dim, **dims)
    return fit(model, stream, seed, task=task, sampler=TemporalSampler(40), max_epochs=3, lr=1e-3, weight_decay=0.0)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ddp_worker(rank: int, world: int, port: int, seed: int, out: str) -> None:
    torch.set_num_threads(1)
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port))
    data = small_graph()
    record = fit(gcn(data, seed), data, seed)
    if rank == 0:
        with open(out, "w") as f:
            json.dump(record, f)


def case_two_processes(seed):
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "rank0.json")
        mp.spawn(_ddp_worker, args=(2, _free_port(), seed, out), nprocs=2, join=True)
        with open(out) as f:
            return json.load(f)


CASES = {name[5:]: fn for name, fn in sorted(globals().items()) if name.startswith("case_")}


def run(cases) -> dict:
    out = {}
    for name in cases:
        for seed in SEEDS:
            key = f"{name}/seed{seed}"
            try:
                out[key] = CASES[name](seed)
            except Exception as exc:  # a broken case is recorded, not fatal: the others still compare
                out[key] = {"error": f"{type(exc).__name__}: {exc}"}
            print(key, json.dumps(out[key]), flush=True)
    return out


def compare(before: dict, after: dict) -> int:
    differ = 0
    for key in sorted(set(before) | set(after)):
        a, b = before.get(key, {}), after.get(key, {})
        same = "weights" in a and a.get("weights") == b.get("weights")
        differ += not same
        fig = lambda r: r.get("error") or f"val {r.get('val')} test {r.get('test')} best {r.get('best_epoch')}"  # noqa: E731
        print(f"{key:28s} {'same' if same else 'DIFFERENT'}  before: {fig(a)}  after: {fig(b)}")
    print(f"{differ} of {len(set(before) | set(after))} differ")
    return 1 if differ else 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default=None, help="write the record here (JSON)")
    p.add_argument("--compare", default=None, help="a record to compare this run with")
    p.add_argument("--cases", default=",".join(CASES), help=f"comma-separated, from: {', '.join(CASES)}")
    args = p.parse_args()
    torch.set_num_threads(1)
    cases = [c for c in args.cases.split(",") if c]
    unknown = [c for c in cases if c not in CASES]
    if unknown:
        p.error(f"unknown cases: {', '.join(unknown)}")
    record = {"torch": torch.__version__, "results": run(cases)}
    if args.out:
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        with open(args.out, "w") as f:
            json.dump(record, f, indent=1)
    if args.compare:
        with open(args.compare) as f:
            before = json.load(f)["results"]
        return compare({k: v for k, v in before.items() if k.split("/")[0] in cases}, record["results"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
