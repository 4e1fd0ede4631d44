"""The grid behind ``gnnkit bench``: datasets × methods × seeds, one ``gnnkit train`` process per run.

A run's ``gnnkit train`` flags come from a TOML config (:data:`DEFAULT_CONFIG`, a user file merged
over it table by table), later tables winning::

    [defaults] < [methods.M] < [datasets.D] < [datasets.D.methods.M] < the dataset spec < --epochs

A key is a train flag without its dashes (``num-parts = 10`` -> ``--num-parts 10``; ``true`` passes a
switch). A dataset spec is a known name (``Cora``, ``ogbn-arxiv``, ``ogbl-collab``: link prediction, scored
by OGB's metric), a ``.npz`` path or ``csbm:num_nodes=100000,avg_degree=5`` (each csbm option
becomes its train flag). Link methods (``link-full``, ``link-neighbor``, ``link-cluster``) set
``task = "link"``: on a graph without a link split, the seeded GAE split, scored by AUC (AP beside it).

State under the output folder ``OUT``:

- ``OUT/grid.json``: each (dataset, method) cell's train flags and their hash. A rerun whose flags
  differ for a cell already there is refused (results of two configurations are never mixed);
  new cells and seeds may be added.
- ``OUT/runs/<dataset>/<method>/seed-<k>/``: the run's ``train`` output, its logs and, written
  atomically once the process has ended, ``record.json``. A run with a record is never launched
  again (``retry_failed`` relaunches failed ones); a run without one is started afresh.
- ``OUT/launches.log``: one line per launched run.

Each run's peak memory is the child's own peak resident set (``wait4``'s ``ru_maxrss``).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from ..errors import GnnkitError
from ..fileio import atomic_write_json

DEFAULT_CONFIG = Path(__file__).resolve().parents[1] / "configs" / "bench.toml"
# flags each run gets from bench itself
RESERVED = {"seeds", "seed-start", "out", "log-dir", "no-progress", "resume", "overwrite", "nproc", "checkpoint-dir"}


# ------------------------------------------------------------------------------------ config
def _toml_load(path: Path) -> dict:
    try:
        import tomllib
    except ImportError:  # Python 3.10
        import tomli as tomllib
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise GnnkitError(f"config file not found: {path}") from None
    except tomllib.TOMLDecodeError as exc:
        raise GnnkitError(f"{path}: bad TOML: {exc}") from None


def _merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for key, value in over.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def load_config(path=None) -> dict:
    """The shipped defaults, with the file ``path`` (if any) merged over them."""
    config = _toml_load(DEFAULT_CONFIG)
    if path is not None:
        config = _merge(config, _toml_load(Path(path)))
    for table in ("defaults", "methods", "datasets"):
        if not isinstance(config.setdefault(table, {}), dict):
            raise GnnkitError(f"config: [{table}] must be a table")
    return config


def _flag_args(flags: Dict[str, object]) -> List[str]:
    argv: List[str] = []
    for key, value in flags.items():
        if value is False or value is None:
            continue
        argv.append(f"--{key}")
        if value is not True:
            argv.append(",".join(map(str, value)) if isinstance(value, list) else str(value))
    return argv


def _table(config: dict, *keys: str) -> dict:
    node = config
    for k in keys:
        node = node.get(k, {}) if isinstance(node, dict) else {}
    if not isinstance(node, dict):
        raise GnnkitError(f"config: [{'.'.join(keys)}] must be a table")
    return {k: v for k, v in node.items() if not isinstance(v, dict)}


# ------------------------------------------------------------------------------------ grid
@dataclass
class Dataset:
    """One ``--datasets`` entry: ``label`` (shown, unique), ``name`` (its config table),
    ``flags`` (train flags the spec implies) and ``skipped`` (why it cannot run, or None)."""
    label: str
    name: str
    flags: Dict[str, object]
    skipped: Optional[str] = None

    @property
    def folder(self) -> str:
        return re.sub(r"[^A-Za-z0-9._-]+", "_", self.label).strip("_")


@dataclass
class Run:
    dataset: str
    method: str
    seed: int
    argv: List[str]          # train flags (no seeds/out/log options)
    hash: str
    dir: Path

    @property
    def key(self) -> str:
        return f"{self.dataset}/{self.method}/seed-{self.seed}"


@dataclass
class Grid:
    datasets: List[Dataset]
    methods: List[str]
    seeds: int
    cells: Dict[Tuple[str, str], Tuple[List[str], str]] = field(default_factory=dict)
    runs: List[Run] = field(default_factory=list)


def split_specs(text: str) -> List[str]:
    """``"Cora,csbm:num_nodes=100,avg_degree=5,ogbn-arxiv"`` -> three specs: an item ``k=v``
    without a ``:`` continues the csbm spec before it."""
    specs: List[str] = []
    for item in (s.strip() for s in text.split(",")):
        if not item:
            continue
        if "=" in item and ":" not in item and specs and ":" in specs[-1]:
            specs[-1] += "," + item
        else:
            specs.append(item)
    return specs


def parse_dataset(spec: str, root: Path) -> Dataset:
    """Resolve one dataset spec; a known dataset absent under ``root`` comes back ``skipped``."""
    from ..data import csbm as csbm_mod
    from ..data import is_present, known_datasets, ogb, planetoid

    if spec == "csbm" or spec.startswith("csbm:"):
        options = csbm_mod.parse_csbm_spec(spec)
        flags = {o.flag[2:]: options[o.name] for o in csbm_mod.csbm_options() if o.name in options}
        return Dataset(spec, "csbm", {"dataset": "csbm", **flags})
    if spec.lower() in planetoid.NAMES:
        name = planetoid.canonical_name(spec)
        ds = Dataset(name, name, {"dataset": name, "root": str(root)})
        missing = planetoid.missing_files(name, root)
        if missing:
            ds.skipped = f"absent: expected {planetoid.raw_dir(name, root)}/{missing[0]}" + (
                f" and {len(missing) - 1} more file(s)" if len(missing) > 1 else "")
        return ds
    if spec in ogb.supported_names():
        ds = Dataset(spec, spec, {"dataset": spec, "root": str(root)})
        if not is_present(spec, root):
            missing = ogb.missing_files(spec, root)
            ds.skipped = f"absent: expected {ogb.dataset_dir(spec, root)}/{missing[0]}" + (
                f" and {len(missing) - 1} more file(s)" if len(missing) > 1 else "")
        return ds
    if spec.startswith("ogbl-"):  # link prediction (the train command picks the link task from the name)
        return _ogbl_dataset(spec, root)
    if _is_tu(spec, root):  # a graph-classification set (TU text format) under the root
        return Dataset(spec, spec, {"dataset": spec, "root": str(root)})
    if spec.endswith(".npz"):
        path = Path(spec).expanduser().resolve()
        ds = Dataset(spec, path.stem, {"dataset": str(path)})
        if not path.is_file():
            ds.skipped = f"absent: expected {path}"
        return ds
    raise GnnkitError(f"unknown dataset {spec!r}; known: {', '.join(known_datasets())}, "
                      f"csbm:option=value,..., or a .npz path")


def _ogbl_dataset(spec: str, root: Path) -> Dataset:
    """An ``ogbl-*`` dataset under ``root`` (``skipped`` naming the first absent file)."""
    from ..link import ogbl

    if spec not in ogbl.SUPPORTED:
        raise GnnkitError(f"unknown OGB link dataset {spec!r}; known: {', '.join(ogbl.SUPPORTED)}")
    ds = Dataset(spec, spec, {"dataset": spec, "root": str(root)})
    missing = ogbl.missing_files(spec, root)
    if missing:
        ds.skipped = f"absent: expected {ogbl.dataset_dir(spec, root)}/{missing[0]}" + (
            f" and {len(missing) - 1} more file(s)" if len(missing) > 1 else "")
    return ds


def _is_tu(spec: str, root: Path) -> bool:
    """``spec`` names a TU dataset whose raw files are under ``root`` (``root/NAME/raw/NAME_A.txt``, ...)."""
    from ..graphs.tu import missing_files

    return spec.replace("-", "").replace("_", "").isalnum() and not missing_files(spec, root)


class _Strict(argparse.ArgumentParser):
    def error(self, message):
        raise GnnkitError(message)


def _train_parser():
    from ..commands.options import add_train_options

    parser = _Strict(prog="gnnkit train", add_help=False)
    add_train_options(parser)
    return parser


def _check_plugins(args, where: str) -> None:
    from ..commands.factory import plugin_names
    from ..commands.options import check_values

    try:
        check_values(args)
        plugin_names(args)
    except GnnkitError as exc:
        raise GnnkitError(f"{where}: {exc}") from None


def build_grid(dataset_specs: List[str], methods: List[str], seeds: int, config: dict, root: Path,
               out: Path, epochs: Optional[int] = None) -> Grid:
    """Every run of the grid, its train flags checked against ``gnnkit train``'s parser."""
    if seeds < 1:
        raise GnnkitError(f"--seeds must be at least 1, got {seeds}")
    if epochs is not None and epochs < 1:
        raise GnnkitError(f"--epochs must be at least 1, got {epochs}")
    known = list(config["methods"])
    for m in methods:
        if m not in config["methods"]:
            raise GnnkitError(f"unknown method {m!r}; known: {', '.join(known)} (add [methods.{m}] to a --config)")
    if len(set(methods)) != len(methods) or not methods:
        raise GnnkitError(f"--methods must name distinct methods, got {','.join(methods) or 'none'}")
    datasets = [parse_dataset(s, root) for s in dataset_specs]
    if not datasets:
        raise GnnkitError("--datasets names no dataset")
    folders = [d.folder for d in datasets]
    if len(set(folders)) != len(folders):
        raise GnnkitError(f"--datasets repeats a dataset: {', '.join(d.label for d in datasets)}")
    grid = Grid(datasets, list(methods), seeds)
    parser = _train_parser()
    ds_tables = {k.lower(): k for k in config["datasets"]}
    for ds in datasets:
        table = ds_tables.get(ds.label.lower(), ds_tables.get(ds.name.lower()))
        for m in methods:
            flags: Dict[str, object] = {}
            for part in (_table(config, "defaults"), _table(config, "methods", m),
                         _table(config, "datasets", table) if table else {},
                         _table(config, "datasets", table, "methods", m) if table else {}, ds.flags,
                         {"epochs": epochs} if epochs is not None else {}):
                flags.update(part)
            bad = sorted(RESERVED & set(flags))
            if bad:
                raise GnnkitError(f"config for {ds.label}/{m}: --{bad[0]} is set by gnnkit bench itself")
            argv = _flag_args(flags)
            try:
                args = parser.parse_args(argv)
            except GnnkitError as exc:
                raise GnnkitError(f"config for {ds.label}/{m}: {exc}") from None
            _check_plugins(args, f"config for {ds.label}/{m}")
            hashed = [a for a, prev in zip(argv, [None] + argv) if "--root" not in (a, prev)]
            digest = hashlib.sha256(json.dumps(hashed).encode()).hexdigest()[:16]
            grid.cells[(ds.label, m)] = (argv, digest)
    for seed in range(seeds):  # seed-major: one complete table first
        for ds in datasets:
            if ds.skipped:
                continue
            for m in methods:
                argv, digest = grid.cells[(ds.label, m)]
                grid.runs.append(Run(ds.label, m, seed, argv, digest,
                                     out / "runs" / ds.folder / m / f"seed-{seed}"))
    return grid


# ------------------------------------------------------------------------------------ state
def check_state(grid: Grid, out: Path) -> None:
    """Refuse an ``out`` whose cells ran with other flags; record the grid's cells there."""
    path = out / "grid.json"
    old = {}
    if path.is_file():
        try:
            old = json.loads(path.read_text()).get("cells", {})
        except (OSError, ValueError, AttributeError):
            raise GnnkitError(f"{path} is unreadable; use another --out") from None
    cells = {f"{d}/{m}": {"hash": h, "argv": argv} for (d, m), (argv, h) in grid.cells.items()}
    changed = [k for k, v in cells.items() if k in old and old[k].get("hash") != v["hash"]]
    if changed:
        raise GnnkitError(f"{out} holds runs of another configuration for {', '.join(changed)}; "
                          f"use another --out or remove that folder")
    atomic_write_json(str(path), {"cells": {**old, **cells}})


def load_record(run: Run) -> Optional[dict]:
    path = run.dir / "record.json"
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return None  # a damaged record: run again
    if record.get("hash") != run.hash:
        raise GnnkitError(f"{path} was made with another configuration; use another --out")
    return record
