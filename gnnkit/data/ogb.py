"""OGB node-property datasets (``ogbn-arxiv``, ``ogbn-products``, ``ogbn-papers100M``) through
``ogb.nodeproppred.PygNodePropPredDataset``, offline.

Files under ``<root>/<ogbn_name>/`` (``ogbn_arxiv``, or ``ogbn_arxiv_pyg`` when that exists), the
layout of OGB's own zip: ``RELEASE_v<version>.txt``; ``raw/`` with ``edge.csv.gz``,
``num-node-list.csv.gz``, ``num-edge-list.csv.gz``, ``node-feat.csv.gz``, ``node-label.csv.gz``
and the dataset's extra node files (``node_year.csv.gz``), or ``data.npz`` + ``node-label.npz``
for binary datasets; ``split/<split>/{train,valid,test}.csv.gz`` or ``split_dict.pt``. ogb writes
``processed/`` beside them. gnnkit checks these files first and raises an error naming the folder
and the missing files: ogb never downloads and never asks on stdin (``input`` is patched to raise
while ogb runs, and ogb's chatter goes to stderr). ogb's ``torch.load`` calls (processed file,
``split_dict.pt``) are forced to ``weights_only=True`` with only PyG's data classes and numpy's
array reconstruction admitted: a crafted cache is refused, never run.

Result: ``x`` float32 ``[N, F]``, ``y`` int64 ``[N]`` (``-1`` where OGB's label is NaN),
``edge_index`` as OGB gives it (arxiv is directed; ``undirected=True`` adds reverse edges), the
official split as masks, and ``evaluator_name`` for ``ogb.nodeproppred.Evaluator``.
"""
from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path
from typing import Iterator, List
from unittest import mock

import torch
from torch_geometric.data import Data

from gnnkit.errors import GnnkitError

from .safe_pickle import register_safe_globals, torch_reason, weights_only_loads


# family -> (ogb subpackage, dataset class, label file stem, what the family's datasets are)
FAMILIES = {"nodeproppred": ("PygNodePropPredDataset", "node-label", "node"),
            "graphproppred": ("PygGraphPropPredDataset", "graph-label", "graph"),
            "linkproppred": ("PygLinkPropPredDataset", None, "link")}


def ogb_master(package: str, name: str):
    """The column of ``ogb.<package>``'s ``master.csv`` for ``name`` (``package``: nodeproppred,
    graphproppred or linkproppred); a GnnkitError names the known datasets otherwise."""
    return meta(name, package)


def meta(name: str, family: str = "nodeproppred"):
    """The row of ``ogb.<family>``'s ``master.csv`` for ``name`` (a GnnkitError for an unknown name)."""
    import importlib

    import pandas as pd

    module = importlib.import_module(f"ogb.{family}")
    master = pd.read_csv(Path(module.__file__).parent / "master.csv", index_col=0, keep_default_na=False)
    if name not in master:
        raise GnnkitError(f"unknown OGB {FAMILIES[family][2]} dataset {name!r}; known: {', '.join(master.keys())}")
    return master[name]


_meta = meta


def supported_names() -> List[str]:
    """The ``ogbn-*`` datasets gnnkit can load: homogeneous, one multi-class task."""
    return ["ogbn-arxiv", "ogbn-products", "ogbn-papers100M"]


def dataset_dir(name: str, root) -> Path:
    """The folder ogb reads, chosen as ogb chooses it."""
    base = Path(root) / name.replace("-", "_")
    pyg = base.with_name(base.name + "_pyg")
    return pyg if pyg.exists() else base


def expected_files(name: str, processed: bool = False, family: str = "nodeproppred") -> List[str]:
    """Files (relative to :func:`dataset_dir`) ogb reads to load ``name`` without a download;
    ``processed=True``: once ``processed/`` exists (the files read only while processing drop out)."""
    info = meta(name, family)
    label = FAMILIES[family][1]
    files = [f"RELEASE_v{info['version']}.txt"]
    if info["binary"] == "True":
        files += ["raw/data.npz"] + ([] if processed or label is None else [f"raw/{label}.npz"])
    else:
        files += ["raw/edge.csv.gz"]
        files += ["raw/node-feat.csv.gz"] if info["has_node_attr"] == "True" else []
        files += ["raw/edge-feat.csv.gz"] if info["has_edge_attr"] == "True" else []
        extra = info["additional node files"]
        if not processed:
            files += ["raw/num-node-list.csv.gz", "raw/num-edge-list.csv.gz"]
            files += [f"raw/{label}.csv.gz"] if label else []
            files += [f"raw/{f}.csv.gz" for f in extra.split(",")] if extra != "None" else []
    split = f"split/{info['split']}"
    return files + [f"{split}/train.csv.gz", f"{split}/valid.csv.gz", f"{split}/test.csv.gz"]


def missing_under(folder: Path, files: List[str]) -> List[str]:
    """The entries of ``files`` (relative paths) absent under ``folder``; a ``split/*/split_dict.pt``
    stands in for the split files."""
    folder = Path(folder)
    if any(folder.glob("split/*/split_dict.pt")):
        files = [f for f in files if not f.startswith("split/")]
    return [f for f in files if not (folder / f).is_file()]


def missing_files(name: str, root, family: str = "nodeproppred") -> List[str]:
    """The files of :func:`expected_files` absent under ``root`` (see :func:`missing_under`)."""
    folder = dataset_dir(name, root)
    processed = (folder / "processed" / "geometric_data_processed.pt").is_file()
    return missing_under(folder, expected_files(name, processed, family))


def no_prompt(*_args, **_kwargs):
    """Stands in for ``input`` and ogb's download question: gnnkit never downloads or asks."""
    raise GnnkitError("ogb asked to download or update a dataset; gnnkit never downloads "
                      "(check the files under the dataset folder)")


_no_prompt = no_prompt


@contextlib.contextmanager
def offline_ogb(package: str) -> Iterator[None]:
    """Run ogb's ``ogb.<package>`` readers offline and safely: ``input`` and the download question
    raise (:func:`no_prompt`), ``torch.load`` is forced to ``weights_only=True`` (ogb calls it bare)
    with PyG's data classes and numpy arrays admitted, and ogb's chatter goes to stderr."""
    with mock.patch("builtins.input", no_prompt), \
            mock.patch(f"ogb.{package}.dataset_pyg.decide_download", no_prompt), \
            weights_only_loads(), contextlib.redirect_stdout(sys.stderr):
        yield


def read_dataset(name: str, root, family: str = "nodeproppred"):
    """``(dataset, split)`` from ogb's own reader for ``family`` under :func:`offline_ogb`; any
    failure is a GnnkitError naming the folder."""
    import importlib

    cls = getattr(importlib.import_module(f"ogb.{family}"), FAMILIES[family][0])
    try:
        with offline_ogb(family):
            dataset = cls(name, root=os.fspath(root))
            return dataset, dataset.get_idx_split()
    except GnnkitError:
        raise
    except Exception as exc:  # noqa: BLE001 - whatever ogb raises on a bad folder is the folder's fault
        raise GnnkitError(f"{name}: cannot read the files under {dataset_dir(name, root)} "
                          f"({torch_reason(exc)})") from None


def load_ogb(name: str, root, undirected: bool = False) -> Data:
    """Load the OGB node dataset ``name`` from ``root`` (see the module docstring)."""
    info = meta(name)
    if name not in supported_names():
        raise GnnkitError(f"{name} is not supported (gnnkit loads homogeneous single-task datasets: "
                          f"{', '.join(supported_names())})")
    folder = dataset_dir(name, root)
    missing = missing_files(name, root)
    if missing:
        raise GnnkitError(f"{name} not found: expected {', '.join(missing)} under {folder} "
                          f"(gnnkit does not download; unpack OGB's {info['download_name']}.zip there)")
    dataset, split = read_dataset(name, root)
    src = dataset[0]
    y = src.y.view(-1)
    if y.dtype.is_floating_point:
        y = torch.where(torch.isnan(y), torch.full_like(y, -1), y)
    n = src.num_nodes
    masks = {}
    for key, ogb_key in (("train_mask", "train"), ("val_mask", "valid"), ("test_mask", "test")):
        masks[key] = torch.zeros(n, dtype=torch.bool)
        masks[key][split[ogb_key]] = True
    edge_index = src.edge_index.long()
    if undirected:
        from torch_geometric.utils import to_undirected

        edge_index = to_undirected(edge_index, num_nodes=n)
    data = Data(x=src.x.float(), y=y.long(), edge_index=edge_index, **masks)
    data.num_classes = int(dataset.num_classes)
    data.name = name
    data.evaluator_name = name
    return data
