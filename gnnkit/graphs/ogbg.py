"""OGB graph-property datasets (``ogbg-molhiv``, ``ogbg-molpcba``, ``ogbg-ppa``, ...) through
``ogb.graphproppred.PygGraphPropPredDataset``, offline.

Files under ``<root>/<ogbg_name>/`` (``ogbg_molhiv``, or ``ogbg_molhiv_pyg`` when that exists), the
layout of OGB's own zip: ``RELEASE_v<version>.txt``; ``raw/`` with ``edge.csv.gz`` (one
``src,dst`` row per edge, node ids local to the graph), ``num-node-list.csv.gz`` and
``num-edge-list.csv.gz`` (one row per graph), ``node-feat.csv.gz`` / ``edge-feat.csv.gz`` when the
dataset has them, ``graph-label.csv.gz`` (one row of ``T`` targets per graph, empty = NaN); or
``data.npz`` + ``graph-label.npz`` for binary datasets; ``split/<split>/{train,valid,test}.csv.gz``
(graph ids; ``scaffold`` for the molecules) or ``split_dict.pt``. ogb writes ``processed/`` beside
them. The files are checked first: ogb never downloads and never asks on stdin (``input`` is
patched to raise while ogb runs; its chatter goes to stderr).

Result: a :class:`~gnnkit.graphs.GraphCollection` with ``x`` as OGB gives it (int64 atom features
``[N, 9]`` for ``ogbg-mol*``), ``edge_attr`` (int64 bond features ``[E, 3]``), ``y`` ``[G]`` class ids
for multi-class datasets (``ogbg-ppa``) or ``[G, T]`` float with NaN for missing labels,
``evaluator_name`` for ``ogb.graphproppred.Evaluator``, and the official split in
``meta["split"]`` (``{"train", "valid", "test"}`` -> int64 graph ids).
"""
from __future__ import annotations

import torch

from gnnkit.data.ogb import dataset_dir, meta, missing_files, read_dataset
from gnnkit.errors import GnnkitError, GraphValidationError

from .collection import GraphCollection

FAMILY = "graphproppred"


def load_ogbg(name: str, root) -> GraphCollection:
    """Load the OGB graph dataset ``name`` from ``root`` (see the module docstring)."""
    info = meta(name, FAMILY)
    if not name.startswith("ogbg-"):
        raise GnnkitError(f"{name} is not an ogbg-* graph-property dataset")
    if info["task type"] == "subtoken prediction":
        raise GnnkitError(f"{name}: subtoken prediction (code2) is not supported")
    missing = missing_files(name, root, FAMILY)
    if missing:
        raise GnnkitError(f"{name} not found: expected {', '.join(missing)} under {dataset_dir(name, root)} "
                          f"(gnnkit does not download; unpack OGB's {info['download_name']}.zip there)")
    ds, split = read_dataset(name, root, FAMILY)
    task = "multiclass" if info["task type"] == "multiclass classification" else (
        "binary" if "classification" in info["task type"] else "regression")
    num_classes = int(ds.num_classes) if task == "multiclass" else None
    split = {k: torch.as_tensor(v, dtype=torch.long) for k, v in split.items()}
    coll = GraphCollection.from_collated(ds._data, ds.slices, task=task, num_classes=num_classes, name=name,
                                         evaluator_name=name, meta={"split": split,
                                                                    "eval_metric": info["eval metric"]})
    _check_split(coll, split)
    if info["data type"] == "mol":
        _check_categories(coll)
    return coll


def _check_split(coll: GraphCollection, split) -> None:
    for part, ids in split.items():
        if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= coll.num_graphs):
            raise GraphValidationError(f"{coll.name}: {part} split holds graph ids outside [0, {coll.num_graphs})")


def _check_categories(coll: GraphCollection) -> None:
    """Atom and bond features must be category ids that OGB's encoders embed (``0 <= v < dim``)."""
    from ogb.utils.features import get_atom_feature_dims, get_bond_feature_dims

    for what, t, dims in (("node-feat", coll.x, get_atom_feature_dims()),
                          ("edge-feat", coll.edge_attr, get_bond_feature_dims())):
        if t is None or t.shape[0] == 0:
            continue
        if t.is_floating_point() or t.shape[1] != len(dims):
            raise GraphValidationError(f"{coll.name}: {what} must be {len(dims)} integer columns, got "
                                       f"{t.shape[1]} {t.dtype}")
        bad = (t < 0) | (t >= torch.tensor(dims))
        if bool(bad.any()):
            row, col = (int(v) for v in bad.nonzero()[0])
            raise GraphValidationError(f"{coll.name}: {what} column {col} holds {int(t[row, col])} at row {row}, "
                                       f"outside OGB's {dims[col]} categories")

