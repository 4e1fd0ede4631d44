"""A synthetic co-authorship graph in ogbl-collab's exact on-disk layout, read by ``gnnkit info`` and
trained by ``gnnkit train --dataset ogbl-collab --root R`` (OGB's loader, OGB's Evaluator: Hits@50),
against a random scorer on the same split.

The folder (a temporary one, apart from the project, unless ``--root``) is what OGB's zip unpacks
to, at ogbl-collab's sizes by default (235,868 nodes, 128 features, 1,179,052 training rows,
60,084 / 46,329 validation / test edges, 100,000 negatives each)::

    R/ogbl_collab/RELEASE_v1.txt
    R/ogbl_collab/raw/{edge, num-node-list, num-edge-list, node-feat, edge_weight, edge_year}.csv.gz
    R/ogbl_collab/split/time/{train, valid, test}.pt   # torch.save of dicts of int64 numpy arrays

as in the release: csv rows without a header, one row per collaboration *and year* (a pair that
collaborated in several years appears once per year, with that year's paper count as ``weight``),
the time split (training years up to 2017, validation 2018, test 2019), ``edge_neg`` random pairs,
the split files pickling numpy arrays as ``numpy.core.multiarray._reconstruct`` (numpy 1.x names).
Authors belong to one of ``--communities`` groups; 90% of collaborations stay inside the group and
the features are the group's centroid plus noise, so links are learnable.

    flock /tmp/gnnkit-heavy.lock python benchmarks/link_ogbl_layout.py [--nodes 235868] [--epochs 50]
        [--sampler full|neighbor|cluster] [--keep R] [--out FILE.json]
"""
from __future__ import annotations

import argparse
import gzip
import io
import json
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np
import torch

SIZES = {"nodes": 235_868, "train": 1_179_052, "valid": 60_084, "test": 46_329, "neg": 100_000}


def _csv(path: Path, rows: np.ndarray, fmt: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wb", compresslevel=1) as f:
        np.savetxt(f, rows.reshape(len(rows), -1), fmt=fmt, delimiter=",")


def _save_numpy1(path: Path, obj: dict) -> None:
    """``torch.save(obj)`` with numpy arrays pickled under numpy 1.x's module name, as OGB's files are."""
    buf = io.BytesIO()
    torch.save(obj, buf)
    src = zipfile.ZipFile(io.BytesIO(buf.getvalue()))
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as out:
        for info in src.infolist():
            data = src.read(info.filename)
            if info.filename.endswith("data.pkl"):
                data = data.replace(b"numpy._core.multiarray\n", b"numpy.core.multiarray\n")
            out.writestr(info, data)


def collaborations(rng, n: int, count: int, communities: int):
    """``count`` author pairs ``[count, 2]`` (90% inside a community; ``u != v``)."""
    u = rng.integers(0, n, count)
    inside = rng.random(count) < 0.9
    members = (n - 1 - u % communities) // communities + 1  # authors of u's community
    v = np.where(inside, u % communities + communities * (rng.random(count) * members).astype(np.int64),
                 rng.integers(0, n, count))
    v = np.where(v == u, (v + communities) % n, v)
    return np.stack([u, v], 1)


def write_collab(root: Path, nodes: int, features: int, communities: int, seed: int = 0) -> dict:
    """The folder ``root/ogbl_collab`` (module docstring); returns the split sizes."""
    rng = np.random.default_rng(seed)
    scale = nodes / SIZES["nodes"]
    counts = {k: max(60, int(SIZES[k] * scale)) for k in ("train", "valid", "test", "neg")}
    pairs = collaborations(rng, nodes, counts["train"] * 3 // 4, communities)
    repeat = pairs[rng.integers(0, len(pairs), counts["train"] - len(pairs))]  # the same pair, another year
    train = np.concatenate([pairs, repeat])
    years = {"train": rng.integers(1963, 2018, len(train)), "valid": 2018, "test": 2019}
    folder = root / "ogbl_collab"
    raw = folder / "raw"
    (folder).mkdir(parents=True, exist_ok=True)
    (folder / "RELEASE_v1.txt").write_text("synthetic graph in ogbl-collab's layout (gnnkit benchmark)\n")
    centroids = rng.normal(size=(communities, features)).astype(np.float32)
    x = centroids[np.arange(nodes) % communities] + rng.normal(scale=1.0, size=(nodes, features)).astype(np.float32)
    _csv(raw / "node-feat.csv.gz", x, "%.6f")
    weight = rng.integers(1, 4, len(train))
    _csv(raw / "edge.csv.gz", train, "%d")
    _csv(raw / "edge_weight.csv.gz", weight, "%d")
    _csv(raw / "edge_year.csv.gz", years["train"], "%d")
    _csv(raw / "num-node-list.csv.gz", np.array([nodes]), "%d")
    _csv(raw / "num-edge-list.csv.gz", np.array([len(train)]), "%d")
    _save_numpy1(folder / "split" / "time" / "train.pt",
                 {"edge": train.astype(np.int64), "weight": weight.astype(np.int64), "year": years["train"]})
    for name in ("valid", "test"):
        edge = collaborations(rng, nodes, counts[name], communities)
        _save_numpy1(folder / "split" / "time" / f"{name}.pt", {
            "edge": edge.astype(np.int64), "weight": rng.integers(1, 4, len(edge)).astype(np.int64),
            "year": np.full(len(edge), years[name], dtype=np.int64),
            "edge_neg": rng.integers(0, nodes, (counts["neg"], 2)).astype(np.int64)})
    return counts


def random_scorer(root: Path) -> dict:
    """Hits@50 of uniform random scores on the same split (OGB's Evaluator)."""
    from gnnkit.link import ogbl_score
    from gnnkit.link.ogbl import load_ogbl

    _, split = load_ogbl("ogbl-collab", root)
    gen = torch.Generator().manual_seed(0)
    return {s: ogbl_score("ogbl-collab", torch.rand(split.positives(s).shape[1], generator=gen),
                          torch.rand(split.negatives(s).shape[1], generator=gen))["hits@50"] for s in ("val", "test")}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--nodes", type=int, default=SIZES["nodes"])
    p.add_argument("--features", type=int, default=128)
    p.add_argument("--communities", type=int, default=2000)
    p.add_argument("--epochs", type=int, default=50)
    p.add_argument("--sampler", default="full", help="full, neighbor or cluster (default full)")
    p.add_argument("--train-args", default="--hidden 64 --lr 0.01 --weight-decay 0",
                   help="more gnnkit train flags (default: %(default)s)")
    p.add_argument("--keep", default=None, help="build the folder here and keep it (default: a temporary folder)")
    p.add_argument("--out", default=None, help="write the figures as JSON here")
    args = p.parse_args()
    root = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="ogbl_layout-"))
    t0 = time.time()
    counts = write_collab(root, args.nodes, args.features, args.communities)
    built = time.time() - t0
    gnnkit = [sys.executable, "-m", "gnnkit"]
    info = subprocess.run([*gnnkit, "info", "ogbl-collab", "--root", str(root), "--json"], check=True,
                          capture_output=True, text=True).stdout
    info = json.loads(info[info.index("{"):])
    run = root / "run"
    t1 = time.time()
    subprocess.run([*gnnkit, "train", "--dataset", "ogbl-collab", "--root", str(root), "--epochs", str(args.epochs),
                    "--sampler", args.sampler, *args.train_args.split(), "--seeds", "1", "--threads", "1",
                    "--no-progress", "--out", str(run), "--overwrite"], check=True)
    trained = time.time() - t1
    result = json.loads((run / "results.json").read_text())
    rand = random_scorer(root)
    rows = {"root": str(root), "sizes": counts, "info": info, "metric": result["metric"], "sampler": args.sampler,
            "val": result["val_mean"], "test": result["test_mean"], "random_val": rand["val"],
            "random_test": rand["test"], "build_seconds": round(built, 1), "train_seconds": round(trained, 1),
            "epochs": args.epochs, "train_args": args.train_args}
    print(f"ogbl-collab layout, {info['nodes']} nodes, {info['edges']} message edges: {args.sampler} "
          f"{result['metric']} val {rows['val']:.4f} test {rows['test']:.4f} | random scorer val "
          f"{rand['val']:.4f} test {rand['test']:.4f} (built in {built:.0f} s, trained in {trained:.0f} s)")
    if args.out:
        from gnnkit.fileio import atomic_write_json

        atomic_write_json(args.out, rows)
    if not args.keep:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
