"""Hostile and malformed inputs through the command line (issue 19): one parametrized catalog.

Every case runs ``gnnkit`` on a crafted input in a fresh temporary folder and asserts: exit status 2,
exactly one line on stderr (``gnnkit: error: ...``), no traceback, the problem named (a substring),
nothing written (no ``results.json``, no ``.tmp`` file, no new file outside PyG's ``processed/``),
and for code-execution payloads that the marker file the payload would create does not exist.
Cases that could crash the interpreter or exhaust memory run in a child process under a memory limit
(all in one child, see ``DRIVER``); the others call :func:`gnnkit.cli.main` in-process (fast). Fixtures are built here, in tmp folders.
"""
from __future__ import annotations

import json
import os
import pickle
import resource
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional

import numpy as np
import pytest

from gnnkit.cli import main

from conftest import shared_data_dir

TINY = ["--dataset", "csbm", "--num-nodes", "60", "--num-classes", "2", "--num-features", "4",
        "--avg-degree", "3", "--epochs", "1", "--no-progress"]
TRAIN = ["train", *TINY]
MEM_LIMIT = 3 << 30  # subprocess cases: 3 GiB of address space beyond what is mapped at start


# ------------------------------------------------------------------------------------ payloads
class Payload:
    """Unpickling this creates ``marker`` (``open(marker, "w")``): proof that a pickle ran code."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def payload_array(marker: Path) -> np.ndarray:
    arr = np.empty(1, dtype=object)
    arr[0] = Payload(marker)
    return arr


# ------------------------------------------------------------------------------------ fixtures
def graph_arrays(n: int = 12, f: int = 3, classes: int = 2) -> Dict[str, np.ndarray]:
    """A valid gnn-benchmark ``.npz`` layout: a ring of ``n`` nodes (both directions), dense features."""
    rows = np.repeat(np.arange(n), 2)
    cols = np.stack([(np.arange(n) + 1) % n, (np.arange(n) - 1) % n], 1).reshape(-1)
    indptr = np.arange(0, 2 * n + 1, 2)
    return {"adj_data": np.ones(2 * n, np.float32), "adj_indices": cols.astype(np.int32),
            "adj_indptr": indptr.astype(np.int32), "adj_shape": np.array([n, n]),
            "attr_matrix": np.random.default_rng(0).standard_normal((n, f)).astype(np.float32),
            "labels": (np.arange(n) % classes).astype(np.int64), "_rows": rows}


def write_npz(path: Path, drop=(), **over) -> Path:
    arrays = {k: v for k, v in graph_arrays().items() if not k.startswith("_") and k not in drop}
    arrays.update(over)
    np.savez(path, **arrays)
    return path


def npz_case(**over) -> Callable[[Path], Dict[str, str]]:
    def setup(tmp: Path) -> Dict[str, str]:
        values = {k: (v(tmp) if callable(v) else v) for k, v in over.items()}
        return {"npz": str(write_npz(tmp / "g.npz", **values))}
    return setup


def events_case(text: str, name: str = "events.txt") -> Callable[[Path], Dict[str, str]]:
    def setup(tmp: Path) -> Dict[str, str]:
        (tmp / name).write_text(text)
        return {"ev": str(tmp / name)}
    return setup


def planetoid_case(edit: Callable[[Path], None]) -> Callable[[Path], Dict[str, str]]:
    """A copy of the shared Cora raw files under ``tmp/root``, then ``edit(raw_dir)``."""
    def setup(tmp: Path) -> Dict[str, str]:
        src = shared_data_dir() / "Planetoid" / "Cora" / "raw"
        if not src.is_dir():
            pytest.skip(f"Planetoid Cora raw files not found under {src}")
        raw = tmp / "root" / "Cora" / "raw"
        shutil.copytree(src, raw)
        edit(raw)
        return {"root": str(tmp / "root")}
    return setup


def _pickle_payload(name: str):
    def edit(raw: Path):
        with open(raw / name, "wb") as f:
            pickle.dump(Payload(raw.parents[2] / "MARKER"), f)
    return edit


def _processed_payload(raw: Path):
    import torch

    proc = raw.parent / "processed"
    proc.mkdir()
    for name in ("data.pt", "pre_transform.pt", "pre_filter.pt"):
        torch.save(Payload(raw.parents[2] / "MARKER"), proc / name)


def _swap(a: str, b: str):
    def edit(raw: Path):
        pa, pb = raw / f"ind.cora.{a}", raw / f"ind.cora.{b}"
        tmp = pa.with_suffix(".swap")
        pa.rename(tmp), pb.rename(pa), tmp.rename(pb)
    return edit


def _truncate(name: str):
    def edit(raw: Path):
        p = raw / f"ind.cora.{name}"
        p.write_bytes(p.read_bytes()[: p.stat().st_size // 2])
    return edit


def _file(name: str, text: str = "x"):
    def setup(tmp: Path) -> Dict[str, str]:
        (tmp / name).write_text(text)
        return {name: str(tmp / name)}
    return setup


def _symlink_loop(tmp: Path) -> Dict[str, str]:
    os.symlink(tmp / "loop_b", tmp / "loop_a")
    os.symlink(tmp / "loop_a", tmp / "loop_b")
    return {"loop": str(tmp / "loop_a")}


def _readonly(tmp: Path) -> Dict[str, str]:
    if os.geteuid() == 0:  # root writes anywhere; /sys refuses even root (a read-only kernel fs)
        if not Path("/sys").is_dir() or os.access("/sys/kernel", os.F_OK) is False:
            pytest.skip("no read-only folder available to root")
        return {"ro": "/sys/gnnkit-test-out"}
    ro = tmp / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    return {"ro": str(ro / "out")}


def _earlier_run(extra: List[str]):
    """An earlier finished run in ``tmp/out`` (``TRAIN`` + ``extra``), made in-process."""
    def setup(tmp: Path) -> Dict[str, str]:
        assert main([*TRAIN, "--out", str(tmp / "out"), *(a.format(tmp=tmp) for a in extra)]) == 0
        return {}
    return setup


# ------------------------------------------------------------------------------------ the catalog
@dataclass
class Case:
    id: str
    group: str        # exec | crash | wrong | traceback | refused
    argv: List[str]   # "{tmp}", "{npz}", ... filled from setup's dict
    expect: str       # substring of the one stderr line
    setup: Optional[Callable[[Path], Dict[str, str]]] = None
    proc: bool = False  # run in a subprocess under a memory limit
    marker: bool = False
    env: Optional[Dict[str, str]] = None  # extra environment (subprocess cases)


def _cases() -> List[Case]:
    info_npz, train_npz = ["info", "{npz}"], ["train", "--dataset", "{npz}", "--epochs", "1", "--no-progress"]
    tl = ["train", "--task", "temporal-link", "--dataset", "{ev}", "--epochs", "1", "--no-progress",
          "--memory-dim", "4", "--time-dim", "4", "--embedding-dim", "4"]
    m = lambda tmp: payload_array(tmp / "MARKER")  # noqa: E731
    c = [
        # -- code runs from a data file ---------------------------------------------------------
        Case("npz-pickle-class-names-info", "exec", info_npz, "class_names", npz_case(class_names=m), marker=True),
        Case("npz-pickle-class-names-train", "exec", train_npz, "class_names", npz_case(class_names=m), marker=True),
        Case("npz-pickle-labels", "exec", info_npz, "labels", npz_case(labels=m), marker=True),
        Case("npz-pickle-adj-matrix", "exec", info_npz, "adj", npz_case(drop=("adj_data", "adj_indices",
             "adj_indptr", "adj_shape"), adj_matrix=m), marker=True),
        Case("npz-pickle-attr-matrix", "exec", info_npz, "attr_matrix", npz_case(attr_matrix=m), marker=True),
        Case("npz-pickle-adj-data", "exec", info_npz, "adj_data", npz_case(adj_data=m), marker=True),
        Case("npz-pickle-idx-to-node", "exec", info_npz, "idx_to_node", npz_case(idx_to_node=m), marker=True),
        Case("planetoid-pickle-x-info", "exec", ["info", "Cora", "--root", "{root}"], "ind.cora.x",
             planetoid_case(_pickle_payload("ind.cora.x")), marker=True),
        Case("planetoid-pickle-x-train", "exec", ["train", "--dataset", "Cora", "--root", "{root}", "--epochs", "1"],
             "ind.cora.x", planetoid_case(_pickle_payload("ind.cora.x")), marker=True),
        Case("planetoid-pickle-graph", "exec", ["info", "Cora", "--root", "{root}"], "ind.cora.graph",
             planetoid_case(_pickle_payload("ind.cora.graph")), marker=True),
        Case("planetoid-pickle-ally", "exec", ["info", "Cora", "--root", "{root}"], "ind.cora.ally",
             planetoid_case(_pickle_payload("ind.cora.ally")), marker=True),
        # -- crashes and runaway memory ---------------------------------------------------------
        Case("npz-indptr-not-monotone", "crash", info_npz, "indptr",
             npz_case(adj_indptr=np.array([0, 4, 2, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24], np.int32)), proc=True),
        Case("npz-indptr-past-end", "crash", info_npz, "indptr",
             npz_case(adj_indptr=np.array([0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 99], np.int32)), proc=True),
        Case("npz-index-out-of-range", "crash", info_npz, "index",
             npz_case(adj_indices=np.full(24, 500, np.int32)), proc=True),
        Case("npz-negative-index", "crash", info_npz, "index",
             npz_case(adj_indices=np.full(24, -3, np.int32)), proc=True),
        Case("npz-label-1e9", "crash", info_npz, "label", npz_case(labels=np.r_[np.zeros(11), 10**9].astype(np.int64)),
             proc=True),
        Case("npz-label-1e9-train", "crash", train_npz, "label",
             npz_case(labels=np.r_[np.zeros(11), 10**9].astype(np.int64)), proc=True),
        Case("npz-shape-1e12", "crash", info_npz, "", npz_case(adj_shape=np.array([10**12, 10**12])), proc=True),
        Case("npz-attr-shape-huge", "crash", info_npz, "features",
             npz_case(drop=("attr_matrix",), attr_data=np.ones(1, np.float32), attr_indices=np.zeros(1, np.int32),
                      attr_indptr=np.r_[0, np.ones(12)].astype(np.int32), attr_shape=np.array([12, 10**11])),
             proc=True),
        Case("events-node-1e12", "crash", tl, "", events_case("0 1 1\n1 1000000000000 2\n2 3 3\n"), proc=True),
        Case("csbm-num-nodes-1e12", "crash", ["train", "--num-nodes", "1e12", "--epochs", "1"], "num_nodes", proc=True),
        Case("csbm-num-nodes-10-12", "crash", ["train", "--num-nodes", "1000000000000", "--epochs", "1"], "",
             proc=True),
        Case("csbm-num-features-1e9", "crash", ["train", "--num-nodes", "100", "--num-features", "1e9"], "features",
             proc=True),
        Case("hidden-1e9", "crash", [*TRAIN, "--hidden", "1e9"], "hidden", proc=True),
        Case("hidden-10-9", "crash", [*TRAIN, "--hidden", "1000000000"], "hidden", proc=True),
        Case("info-num-nodes-1e12", "crash", ["info", "csbm", "--num-nodes", "1000000000000"], "", proc=True),
        Case("partition-num-parts-huge", "crash", ["partition", "csbm", "--num-nodes", "60", "--num-parts",
             "1000000000"], "num-parts"),
        # -- silently wrong ---------------------------------------------------------------------
        Case("npz-float-labels", "wrong", info_npz, "labels",
             npz_case(labels=(np.arange(12) % 2 + 0.7).astype(np.float64))),
        Case("npz-attr-3d", "wrong", info_npz, "attr_matrix",
             npz_case(attr_matrix=np.ones((12, 3, 2), np.float32))),
        Case("npz-labels-wrong-length", "wrong", info_npz, "labels", npz_case(labels=np.zeros(5, np.int64))),
        Case("npz-attr-wrong-rows", "wrong", info_npz, "", npz_case(attr_matrix=np.ones((7, 3), np.float32))),
        Case("npz-nan-features", "wrong", info_npz, "", npz_case(attr_matrix=np.full((12, 3), np.nan, np.float32))),
        Case("split-fractions-over-1", "wrong", [*TRAIN, "--split", "random:0.9,0.5"], "split"),
        Case("split-garbage", "wrong", [*TRAIN, "--split", "random:a,b"], "split"),
        Case("split-negative", "wrong", [*TRAIN, "--split", "random:-0.1,0.5"], "split"),
        Case("out-reused-without-resume", "wrong", [*TRAIN, "--out", "{tmp}/out"], "--overwrite", _earlier_run([])),
        Case("resume-other-dataset-out", "wrong", [*TRAIN, "--graph-seed", "1", "--resume", "--out", "{tmp}/out"],
             "differ", _earlier_run([])),
        Case("resume-other-hidden-out", "wrong", [*TRAIN, "--hidden", "8", "--resume", "--out", "{tmp}/out"],
             "hidden", _earlier_run([])),
        Case("checkpoint-dir-reused", "wrong", [*TRAIN, "--out", "{tmp}/o2", "--checkpoint-dir", "{tmp}/ck"],
             "--checkpoint-dir", _earlier_run(["--checkpoint-dir", "{tmp}/ck"])),
        Case("resume-other-sampler", "wrong", [*TRAIN, "--sampler", "neighbor", "--resume", "--out", "{tmp}/o2",
             "--checkpoint-dir", "{tmp}/ck"], "sampler", _earlier_run(["--checkpoint-dir", "{tmp}/ck"])),
        Case("resume-other-optimizer", "wrong", [*TRAIN, "--optimizer", "sgd", "--resume", "--out", "{tmp}/o2",
             "--checkpoint-dir", "{tmp}/ck"], "optimizer", _earlier_run(["--checkpoint-dir", "{tmp}/ck"])),
        Case("resume-other-graph", "wrong", [*TRAIN, "--graph-seed", "3", "--resume", "--out", "{tmp}/o2",
             "--checkpoint-dir", "{tmp}/ck"], "fingerprint", _earlier_run(["--checkpoint-dir", "{tmp}/ck"])),
        Case("resume-30-epochs-with-epochs-5", "wrong", [*TRAIN, "--epochs", "5", "--resume", "--out", "{tmp}/o2",
             "--checkpoint-dir", "{tmp}/ck"], "epoch", _earlier_run(["--checkpoint-dir", "{tmp}/ck", "--epochs", "30"])),
        # -- tracebacks where one line belongs --------------------------------------------------
        Case("device-foo", "traceback", [*TRAIN, "--device", "foo"], "--device"),
        Case("device-cuda-absent", "traceback", [*TRAIN, "--device", "cuda:99"], "cuda"),
        Case("ufactor-negative", "traceback", ["partition", "csbm", "--num-nodes", "60", "--num-parts", "2",
             "--ufactor", "-5"], "--ufactor"),
        Case("inference-batch-size-negative", "traceback", [*TRAIN, "--inference-batch-size", "-1"],
             "--inference-batch-size"),
        Case("nproc-negative", "traceback", [*TRAIN, "--nproc", "-1"], "--nproc"),
        Case("nproc-zero", "traceback", [*TRAIN, "--nproc", "0"], "--nproc"),
        Case("epochs-zero", "traceback", [*TRAIN[:-3], "--epochs", "0"], "--epochs"),
        Case("lr-negative", "traceback", [*TRAIN, "--lr", "-1"], "--lr"),
        Case("lr-nan", "traceback", [*TRAIN, "--lr", "nan"], "--lr"),
        Case("lr-gamma-over-1", "traceback", [*TRAIN, "--lr-step", "2", "--lr-gamma", "2"], "--lr-gamma"),
        Case("weight-decay-negative", "traceback", [*TRAIN, "--weight-decay", "-1"], "--weight-decay"),
        Case("hidden-zero", "traceback", [*TRAIN, "--hidden", "0"], "--hidden"),
        Case("layers-zero", "traceback", [*TRAIN, "--layers", "0"], "--layers"),
        Case("dropout-over-1", "traceback", [*TRAIN, "--dropout", "1.5"], "--dropout"),
        Case("eval-every-zero", "traceback", [*TRAIN, "--eval-every", "0"], "--eval-every"),
        Case("patience-zero", "traceback", [*TRAIN, "--patience", "0"], "--patience"),
        Case("batch-size-zero", "traceback", [*TRAIN, "--sampler", "neighbor", "--batch-size", "0"], "batch"),
        Case("fanouts-garbage", "traceback", [*TRAIN, "--sampler", "neighbor", "--fanouts", "a,b"], "fanouts"),
        Case("num-parts-zero", "traceback", [*TRAIN, "--sampler", "cluster", "--num-parts", "0"], "num"),
        Case("optimizer-unknown", "traceback", [*TRAIN, "--optimizer", "foo"], "optimizer"),
        Case("model-unknown", "traceback", [*TRAIN, "--model", "foo"], "model"),
        Case("metric-unknown", "traceback", [*TRAIN, "--metric", "foo"], "metric"),
        Case("out-is-file", "traceback", [*TRAIN, "--out", "{f}"], "--out", _file("f")),
        Case("out-under-file", "traceback", [*TRAIN, "--out", "{f}/sub"], "--out", _file("f")),
        Case("out-read-only", "traceback", [*TRAIN, "--out", "{ro}"], "--out", _readonly),
        Case("checkpoint-dir-is-file", "traceback", [*TRAIN, "--out", "{tmp}/o", "--checkpoint-dir", "{f}"],
             "--checkpoint-dir", _file("f")),
        Case("checkpoint-dir-under-file", "traceback", [*TRAIN, "--out", "{tmp}/o", "--checkpoint-dir", "{f}/ck"],
             "--checkpoint-dir", _file("f")),
        Case("log-dir-is-file", "traceback", [*TRAIN, "--out", "{tmp}/o", "--log-dir", "{f}"], "--log-dir",
             _file("f")),
        Case("log-dir-under-file", "traceback", [*TRAIN, "--out", "{tmp}/o", "--log-dir", "{f}/logs"], "--log-dir",
             _file("f")),
        Case("log-dir-read-only", "traceback", [*TRAIN, "--out", "{tmp}/o", "--log-dir", "{ro}"], "--log-dir",
             _readonly),
        Case("root-symlink-loop", "traceback", ["train", "--dataset", "Cora", "--root", "{loop}"], "loop",
             _symlink_loop),
        Case("info-root-symlink-loop", "traceback", ["info", "Cora", "--root", "{loop}"], "loop", _symlink_loop),
        Case("planetoid-swapped-x-graph", "traceback", ["info", "Cora", "--root", "{root}"], "ind.cora",
             planetoid_case(_swap("x", "graph"))),
        Case("planetoid-swapped-y-ty", "traceback", ["info", "Cora", "--root", "{root}"], "ind.cora",
             planetoid_case(_swap("y", "ty"))),
        Case("planetoid-truncated-graph", "traceback", ["info", "Cora", "--root", "{root}"], "ind.cora.graph",
             planetoid_case(_truncate("graph"))),
        Case("planetoid-truncated-allx", "traceback", ["info", "Cora", "--root", "{root}"], "ind.cora.allx",
             planetoid_case(_truncate("allx"))),
        Case("planetoid-test-index-garbage", "traceback", ["info", "Cora", "--root", "{root}"], "test.index",
             planetoid_case(lambda raw: (raw / "ind.cora.test.index").write_text("a\nb\n"))),
        Case("npz-not-a-zip", "traceback", info_npz, "", lambda tmp: {"npz": _file("g.npz", "hello")(tmp)["g.npz"]}),
        Case("npz-truncated", "traceback", info_npz, "", lambda tmp: _truncated_npz(tmp)),
        Case("npz-is-directory", "traceback", info_npz, "", lambda tmp: {"npz": str(_mkdir(tmp / "d.npz"))}),
        Case("npz-no-adjacency", "traceback", info_npz, "adjacency",
             npz_case(drop=("adj_data", "adj_indices", "adj_indptr", "adj_shape"))),
        Case("npz-adj-not-square", "traceback", info_npz, "square", npz_case(adj_shape=np.array([12, 13]))),
        Case("npz-shape-negative", "traceback", info_npz, "", npz_case(adj_shape=np.array([-12, -12]))),
        Case("events-missing-file", "traceback", ["train", "--task", "temporal-link", "--dataset", "{tmp}/nope.txt",
             "--epochs", "1"], "nope.txt"),
        Case("events-garbage", "traceback", tl, "events.txt", events_case("a b c\nd e f\n")),
        Case("events-empty", "traceback", tl, "events.txt", events_case("")),
        Case("events-negative-id", "traceback", tl, "", events_case("0 1 1\n-4 2 2\n2 3 3\n")),
        Case("events-nan-time", "traceback", tl, "", events_case("0 1 1\n1 2 nan\n2 3 3\n")),
        Case("events-too-few-columns", "traceback", tl, "", events_case("0 1\n1 2\n")),
        Case("task-temporal-on-csbm", "traceback", ["train", "--task", "temporal-link", "--epochs", "1"], "dataset"),
        Case("info-unknown-dataset", "traceback", ["info", "Nope"], "unknown dataset 'Nope'; known: Cora"),
        Case("info-csbm-option-on-cora", "traceback", ["info", "Cora", "--root", "{tmp}", "--num-nodes", "5"],
             "--num-nodes: csbm options, but the dataset is 'Cora'"),
        Case("info-pubmed-absent", "traceback", ["info", "PubMed", "--root", "{tmp}"],
             "PubMed not found: expected ind.pubmed.x"),
        Case("train-unknown-sampler", "traceback", [*TRAIN, "--sampler", "nope"], "unknown sampler 'nope'; known:"),
        Case("dataset-unknown", "traceback", ["train", "--dataset", "NoSuchGraph", "--epochs", "1"], "NoSuchGraph"),
        Case("seeds-zero", "traceback", [*TRAIN, "--seeds", "0"], "--seeds"),
        Case("bench-jobs-zero", "traceback", ["bench", "--datasets", "csbm", "--jobs", "0", "--out", "{tmp}/b"],
             "--jobs"),
        Case("bench-bad-config", "traceback", ["bench", "--datasets", "csbm", "--config", "{f}", "--out", "{tmp}/b"],
             "TOML", _file("f", "[[[")),
        Case("bench-out-is-file", "traceback", ["bench", "--datasets", "csbm", "--methods", "full", "--seeds", "1",
             "--out", "{f}"], "--out", _file("f")),
        # -- the data layer's cases (helper C1's list) ------------------------------------------
        Case("npz-labels-2d", "wrong", info_npz, "labels must be one class id per node",
             npz_case(labels=np.zeros((12, 2), np.int64))),
        Case("npz-adj-shape-3", "traceback", info_npz, "shape", npz_case(adj_shape=np.array([12, 12, 12]))),
        Case("npz-float-indices", "wrong", info_npz, "integer",
             npz_case(adj_indices=graph_arrays()["adj_indices"].astype(np.float64))),
        Case("npz-attr-indptr-huge", "crash", info_npz, "indptr",
             npz_case(drop=("attr_matrix",), attr_data=np.ones(4, np.float32), attr_indices=np.array([0, 1, 0, 1]),
                      attr_indptr=np.r_[0, 10**9, np.full(11, 4)].astype(np.int64), attr_shape=np.array([12, 2])),
             proc=True),
        Case("npz-header-shape-huge", "crash", info_npz, "labels.npy", lambda tmp: _huge_header_npz(tmp), proc=True),
        Case("npz-memory-limit", "crash", info_npz, "64 B", npz_case(), proc=True, env={"GNNKIT_MEMORY_LIMIT": "64"}),
        Case("planetoid-x-truncated-1000", "traceback", ["info", "Cora", "--root", "{root}"], "ind.cora.x",
             planetoid_case(lambda raw: (raw / "ind.cora.x").write_bytes((raw / "ind.cora.x").read_bytes()[:1000]))),
        Case("planetoid-graph-a-list", "traceback", ["info", "Cora", "--root", "{root}"], "ind.cora.graph",
             planetoid_case(_pickled("ind.cora.graph", [1, 2]))),
        Case("planetoid-graph-out-of-range", "crash", ["info", "Cora", "--root", "{root}"], "ind.cora.graph",
             planetoid_case(_pickled("ind.cora.graph", {0: [1, 99999]}))),
        Case("planetoid-crafted-csc", "crash", ["info", "Cora", "--root", "{root}"], "ind.cora.x",
             planetoid_case(_crafted_csc), proc=True),
        Case("planetoid-cora-self-symlink", "traceback", ["info", "Cora", "--root", "{root}"], "Cora",
             lambda tmp: _self_symlink(tmp)),
        Case("events-unsorted", "wrong", tl, "earlier", events_case("0 1 5\n1 2 3\n2 3 7\n")),
        Case("events-sparse-20g", "crash", tl, "needs", _sparse_events, proc=True),
    ]
    return c


def _pickled(name: str, obj):
    def edit(raw: Path):
        with open(raw / name, "wb") as f:
            pickle.dump(obj, f, protocol=2)
    return edit


def _crafted_csc(raw: Path):
    import scipy.sparse as sp

    m = sp.csc_matrix(np.eye(140, 1433, dtype=np.float32))
    m.indptr = m.indptr.copy()
    m.indptr[1] = 10**9
    with open(raw / "ind.cora.x", "wb") as f:
        pickle.dump(m, f, protocol=2)


def _self_symlink(tmp: Path) -> Dict[str, str]:
    (tmp / "root").mkdir()
    os.symlink(tmp / "root" / "Cora", tmp / "root" / "Cora")
    return {"root": str(tmp / "root")}


def _sparse_events(tmp: Path) -> Dict[str, str]:
    path = tmp / "events.txt"
    with open(path, "wb") as f:
        f.truncate(20 << 30)
    return {"ev": str(path)}


def _huge_header_npz(tmp: Path) -> Dict[str, str]:
    """A valid graph whose ``labels.npy`` member announces 9999999999 entries (it holds 12)."""
    import io
    import zipfile

    path = write_npz(tmp / "g.npz")
    with zipfile.ZipFile(path) as z:
        members = {n: z.read(n) for n in z.namelist()}
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": "<i8", "fortran_order": False, "shape": (9999999999,)})
    members["labels.npy"] = buf.getvalue() + np.zeros(12, np.int64).tobytes()
    with zipfile.ZipFile(path, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
    return {"npz": str(path)}


def _mkdir(p: Path) -> Path:
    p.mkdir()
    return p


def _truncated_npz(tmp: Path) -> Dict[str, str]:
    p = write_npz(tmp / "g.npz")
    p.write_bytes(p.read_bytes()[:200])
    return {"npz": str(p)}


CASES = _cases()
GROUPS = {"exec", "crash", "wrong", "traceback"}


def test_catalog_covers_every_group():
    assert len(CASES) >= 60 and {c.group for c in CASES} == GROUPS
    assert len({c.id for c in CASES}) == len(CASES)


# ------------------------------------------------------------------------------------ running
# Cases that could crash the interpreter (segfault) or exhaust memory run in one child process, all
# of them in turn (one import of torch), under a memory limit; each case's stderr goes to its own
# file (fd 2, so C-level output counts too). A case the child did not finish (it crashed there) is
# run again alone in its own process and judged by that.
DRIVER = """
import json, os, resource, sys
lim = int(sys.argv[2])
resource.setrlimit(resource.RLIMIT_AS, (lim, lim))
import logging
from gnnkit.cli import main


class ToStderr(logging.StreamHandler):  # writes to whatever sys.stderr is now (each case's file)
    stream = property(lambda self: sys.stderr, lambda self, value: None)


logging.basicConfig(handlers=[ToStderr()], level=logging.INFO, format="gnnkit: %(message)s")
for case in json.load(open(sys.argv[1])):
    os.chdir(case["cwd"])
    env = {k: os.environ.get(k) for k in case["env"]}
    os.environ.update(case["env"])
    fd = os.open(case["err"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    saved = os.dup(2)
    os.dup2(fd, 2)
    sys.stderr = os.fdopen(os.dup(2), "w", buffering=1)
    try:
        rc = main(case["argv"])
    except SystemExit as exc:
        rc = exc.code
    sys.stderr.flush()
    os.dup2(saved, 2)
    sys.stderr = sys.__stderr__
    for k, v in env.items():
        os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)
    open(case["err"] + ".rc", "w").write(str(rc))
"""


def _child_env(extra: Optional[Dict[str, str]] = None) -> Dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore", **(extra or {})}


def _limit_memory():  # pragma: no cover - runs in the child
    resource.setrlimit(resource.RLIMIT_AS, (MEM_LIMIT + (1 << 30), MEM_LIMIT + (1 << 30)))


def run_alone(argv: List[str], cwd: Path, env: Optional[Dict[str, str]] = None) -> tuple:
    """(exit status, stderr text) of ``python -m gnnkit ARGV`` in its own process."""
    out = subprocess.run([sys.executable, "-m", "gnnkit", *argv], cwd=cwd, capture_output=True, text=True,
                         timeout=300, preexec_fn=_limit_memory, env=_child_env(env))
    return out.returncode, out.stderr


def run_cli(argv: List[str], cwd: Path, capfd) -> tuple:
    """(exit status, stderr text) of ``gnnkit.cli.main(ARGV)`` in this process, in ``cwd``."""
    old = os.getcwd()
    os.chdir(cwd)
    try:
        try:
            rc = main(argv)
        except SystemExit as exc:
            rc = exc.code
    finally:
        os.chdir(old)
    return rc, capfd.readouterr().err


def _snapshot(root: Path) -> Dict[str, tuple]:
    out = {}
    for p in root.rglob("*"):
        if p.is_file() and not p.is_symlink():
            st = p.stat()
            out[str(p.relative_to(root))] = (st.st_size, st.st_mtime_ns)
    return out


def _prepare(case: Case, tmp: Path) -> tuple:
    values = {"tmp": str(tmp)}
    if case.setup is not None:
        values.update(case.setup(tmp))
    return [a.format(**values) for a in case.argv], _snapshot(tmp)


@pytest.fixture(scope="module")
def child_results(tmp_path_factory):
    """``{case id: (tmp, before snapshot, exit status, stderr)}`` of the subprocess cases, run in one child."""
    prepared, jobs = {}, []
    for case in (c for c in CASES if c.proc):
        tmp = tmp_path_factory.mktemp(case.id)
        try:
            argv, before = _prepare(case, tmp)
        except pytest.skip.Exception:
            continue
        err = str(tmp_path_factory.mktemp("stderr") / "err")
        prepared[case.id] = (tmp, before, argv, err)
        jobs.append({"cwd": str(tmp), "argv": argv, "env": case.env or {}, "err": err})
    spec = tmp_path_factory.mktemp("driver") / "cases.json"
    spec.write_text(json.dumps(jobs))
    subprocess.run([sys.executable, "-c", DRIVER, str(spec), str(MEM_LIMIT + (1 << 30))], timeout=600,
                   env=_child_env(), capture_output=True)
    results = {}
    for cid, (tmp, before, argv, err) in prepared.items():
        if os.path.exists(err + ".rc"):
            results[cid] = (tmp, before, int(Path(err + ".rc").read_text()), Path(err).read_text())
        else:  # the child died on this case: run it alone to see how
            case = next(c for c in CASES if c.id == cid)
            results[cid] = (tmp, before, *run_alone(argv, tmp, case.env))
    return results


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_hostile_input_is_refused_in_one_line(case: Case, tmp_path: Path, capfd, request):
    if case.proc:
        results = request.getfixturevalue("child_results")
        if case.id not in results:
            pytest.skip("fixture unavailable (see the setup's skip reason)")
        tmp_path, before, rc, err = results[case.id]
    else:
        argv, before = _prepare(case, tmp_path)
        capfd.readouterr()
        rc, err = run_cli(argv, tmp_path, capfd)
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert rc == 2, f"exit {rc}, stderr: {err[-2000:]}"
    assert "Traceback" not in err
    assert len(lines) == 1 and lines[0].startswith("gnnkit: error: "), err[-2000:]
    assert case.expect.lower() in lines[0].lower(), lines[0]
    if case.marker:
        assert not list(tmp_path.rglob("MARKER")), "the payload ran"
    after = _snapshot(tmp_path)
    changed = [p for p, v in after.items() if before.get(p) != v and "processed" not in Path(p).parts]
    assert not changed, f"written: {changed}"


# ------------------------------------------------------------------------------------ exit 0 cases
def test_info_describes_a_valid_four_node_graph(tmp_path, capfd):
    arrays = {"adj_data": np.ones(4, np.float32), "adj_indices": np.array([1, 0, 3, 2], np.int32),
              "adj_indptr": np.array([0, 1, 2, 3, 4], np.int32), "adj_shape": np.array([4, 4]),
              "attr_matrix": np.eye(4, dtype=np.float32), "labels": np.array([0, 0, 1, 1])}
    np.savez(tmp_path / "four.npz", **arrays)
    assert main(["info", str(tmp_path / "four.npz"), "--json"]) == 0
    info = json.loads(capfd.readouterr().out)
    assert info["nodes"] == 4 and info["classes"] == 2


def test_crafted_processed_cache_runs_no_code(tmp_path, capfd):
    """PyG's ``processed/data.pt`` holding a pickle payload: rebuilt from the raw files or refused,
    never loaded unsafely (the payload creates no marker)."""
    root = planetoid_case(_processed_payload)(tmp_path)["root"]
    rc, err = run_cli(["info", "Cora", "--root", root], tmp_path, capfd)
    assert rc in (0, 2) and "Traceback" not in err
    assert not list(tmp_path.rglob("MARKER")), "the payload ran"


def test_val_frac_zero_writes_valid_json(tmp_path):
    out = tmp_path / "out"
    assert main([*TRAIN, "--val-frac", "0", "--out", str(out)]) == 0
    text = (out / "results.json").read_text()
    results = json.loads(text, parse_constant=lambda c: pytest.fail(f"{c} in results.json"))
    assert results["val_mean"] is None and results["runs"][0]["val"] is None


def test_split_option_reaches_the_node_task(tmp_path):
    """``--split random:TRAIN,VAL`` is the node task's (csbm's own split was renamed): the masks change."""
    out = tmp_path / "out"
    assert main([*TRAIN, "--split", "random:0.2,0.3", "--out", str(out)]) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["settings"]["split"] == "random:0.2,0.3"


def test_failed_write_names_the_path_and_leaves_no_tmp(tmp_path, capfd, monkeypatch):
    """Disk full while writing results: exit 2 naming the file and the reason, no ``.tmp`` left."""
    import errno

    from gnnkit import fileio

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(fileio.os, "fsync", full)
    out = tmp_path / "out"
    rc, err = run_cli([*TRAIN, "--out", str(out)], tmp_path, capfd)
    lines = err.strip().splitlines()
    assert rc == 2 and len(lines) == 1 and "Traceback" not in err
    assert f"cannot write {out}" in lines[0] and "No space left on device" in lines[0]  # the first file written
    assert not [p for p in tmp_path.rglob("*") if p.name.endswith(".tmp")]


def test_interrupted_between_seeds_says_which_finished(tmp_path, capfd, monkeypatch):
    from gnnkit.commands import factory

    build, calls = factory.build_model, []

    def interrupt_second(*a, **k):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return build(*a, **k)

    monkeypatch.setattr(factory, "build_model", interrupt_second)
    out = tmp_path / "out"
    rc, err = run_cli([*TRAIN, "--seeds", "3", "--out", str(out)], tmp_path, capfd)
    assert rc == 130 and "resume with: gnnkit train" in err and "--resume" in err
    results = json.loads((out / "results.json").read_text())
    assert results["finished_seeds"] == [0] and results["seeds"] == [0, 1, 2] and results["complete"] is False
    assert results["settings"]["hidden"] == 16 and results["argv"][:2] == ["gnnkit", "train"]
    assert results["fingerprint"] and results["versions"]["torch"]
    # the resume command finishes seeds 1 and 2 and keeps seed 0's record
    monkeypatch.setattr(factory, "build_model", build)
    seed0 = (out / "runs" / "seed-0.json").read_bytes()
    assert main([*TRAIN, "--seeds", "3", "--out", str(out), "--resume"]) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["finished_seeds"] == [0, 1, 2] and results["complete"] is True
    assert (out / "runs" / "seed-0.json").read_bytes() == seed0


def test_overwrite_replaces_the_earlier_run(tmp_path):
    out = tmp_path / "out"
    assert main([*TRAIN, "--seeds", "2", "--out", str(out)]) == 0
    assert main([*TRAIN, "--seed-start", "5", "--out", str(out), "--overwrite"]) == 0
    assert sorted(p.name for p in (out / "runs").iterdir()) == ["seed-5.json"]  # no stale per-seed files


def test_sigterm_stops_like_sigint_and_prints_the_resume_command(tmp_path):
    import signal
    import time

    ck, out = tmp_path / "ck", tmp_path / "out"
    argv = [sys.executable, "-m", "gnnkit", "train", *TINY[:-3], "--epochs", "100000", "--no-progress",
            "--checkpoint-dir", str(ck), "--out", str(out)]
    proc = subprocess.Popen(argv, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            env=_child_env())
    deadline = time.monotonic() + 120
    while not list(ck.glob("seed-0/epoch-*.pt")) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    err = proc.communicate(timeout=120)[1]
    assert proc.returncode == 143, err
    assert "Traceback" not in err and "SIGTERM" in err
    assert str(ck / "seed-0") in err and "--resume" in err and f"--checkpoint-dir {ck}" in err
    assert not [p for p in tmp_path.rglob("*") if p.name.endswith(".tmp")]
