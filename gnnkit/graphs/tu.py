"""TU Dortmund graph-classification datasets (MUTAG, ENZYMES, PROTEINS, IMDB-BINARY, ...) in the
TU text format, through PyG's ``TUDataset``, offline.

Files: ``<root>/<NAME>/raw/NAME_A.txt`` (one ``src, dst`` line per directed edge, 1-based global
node ids), ``NAME_graph_indicator.txt`` (one graph id per node, 1..G), ``NAME_graph_labels.txt``
(one label per graph), optional ``NAME_node_labels.txt``, ``NAME_node_attributes.txt``,
``NAME_edge_labels.txt``. PyG writes ``<root>/<NAME>/processed/`` beside ``raw/``: pass a *copy*
of a shared folder as ``root``, never the shared folder itself. Nothing is downloaded: missing
files raise a :class:`~gnnkit.errors.GnnkitError` naming them.

Result: a :class:`~gnnkit.graphs.GraphCollection` with ``x`` the one-hot node labels (plus the
continuous node attributes with ``use_node_attr=True``), ``edge_attr`` the one-hot edge labels when
present, ``y`` ``[G]`` class ids (PyG remaps the labels to ``0..C-1``), and, by ``degree``, one-hot
degree features (see :func:`~gnnkit.graphs.features.add_degree_features`).
"""
from __future__ import annotations

import contextlib
import os
import pickle
import sys
from pathlib import Path
from typing import List, Optional

from gnnkit.data.safe_pickle import torch_reason, weights_only_loads
from gnnkit.errors import GnnkitError

from .collection import GraphCollection
from .features import add_degree_features

REQUIRED = ("A", "graph_indicator", "graph_labels")


def missing_files(name: str, root) -> List[str]:
    """The required raw files of ``name`` absent under ``<root>/<name>/raw``."""
    raw = Path(root) / name / "raw"
    return [f"{name}_{k}.txt" for k in REQUIRED if not (raw / f"{name}_{k}.txt").is_file()]


def load_tu(name: str, root, *, use_node_attr: bool = False, degree: str = "auto",
            max_degree: Optional[int] = None) -> GraphCollection:
    """Load the TU dataset ``name`` from ``root`` (a writable copy; see the module docstring)."""
    if not name or "/" in name or name.startswith("."):
        raise GnnkitError(f"invalid TU dataset name {name!r}")
    missing = missing_files(name, root)
    if missing:
        raise GnnkitError(f"{name} not found: expected {', '.join(missing)} under {Path(root) / name / 'raw'} "
                          f"(gnnkit does not download)")
    folder = Path(root) / name  # no write bit: meant read-only, even for root (whom os.access lets write)
    if not os.access(folder, os.W_OK) or not folder.stat().st_mode & 0o222:
        raise GnnkitError(f"{folder} is not writable: PyG writes processed/ there; pass a copy")
    from torch_geometric.datasets import TUDataset

    try:  # PyG reads processed/*.pt back: with weights_only loads only, never its unsafe retry
        with contextlib.redirect_stdout(sys.stderr), weights_only_loads():
            ds = TUDataset(os.fspath(root), name, use_node_attr=use_node_attr)
    except pickle.UnpicklingError as exc:
        raise GnnkitError(f"{name}: refused {folder / 'processed'}: a file there does not load with "
                          f"weights_only=True ({torch_reason(exc)}); delete the folder to rebuild it from raw/") from None
    except Exception as exc:  # noqa: BLE001 - whatever PyG raises on malformed files is the files' fault
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise GnnkitError(f"{name}: cannot read the TU files under {folder / 'raw'} ({reason})") from None
    coll = GraphCollection.from_collated(ds._data, ds.slices, task="multiclass", name=name)
    return add_degree_features(coll, degree, max_degree)
