"""OGB link-property datasets (``ogbl-collab``, ``ogbl-ddi``, ``ogbl-ppa``, ``ogbl-citation2``)
through ``ogb.linkproppred.PygLinkPropPredDataset`` and ``get_edge_split()``, offline.

Files under ``<root>/<ogbl_name>/`` (``ogbl_collab``, or ``ogbl_collab_pyg`` when that exists), the
layout of OGB's zip: ``RELEASE_v<version>.txt``; ``raw/`` with ``edge.csv.gz`` (one ``src,dst`` row
per edge), ``num-node-list.csv.gz``, ``num-edge-list.csv.gz``, ``node-feat.csv.gz`` when the
dataset has features and its extra files (collab: ``edge_weight``/``edge_year``; citation2:
``node_year``); ``split/<split>/{train,valid,test}.pt`` (``torch.save`` of dicts of numpy arrays,
which pickle ``numpy.core.multiarray._reconstruct``) or ``split_dict.pt``. The files are checked
first; ogb never downloads and never asks on stdin; its ``torch.load`` calls are forced to
``weights_only=True`` with numpy's array reconstruction admitted under its old and new module
names (:func:`gnnkit.data.safe_pickle.register_safe_globals`): a crafted split file is refused.

Result of :func:`load_ogbl`: ``(data, split)``: ``data`` a PyG ``Data`` with ``x`` (float32, or
``None`` for ddi), ``num_nodes``, ``edge_index`` = the training message-passing graph (both
directions), ``name`` and ``evaluator_name``; ``split`` a :class:`~gnnkit.link.split.LinkSplit`
with OGB's positives (``[2, E]``) and negatives: ``[2, E']`` pairs for the Hits datasets,
``[E, 1000]`` destinations per source for citation2; collab's ``weight``/``year`` in ``extra``.
``val_in_test_graph`` defaults to OGB's rule (on for ogbl-collab only).
"""
from __future__ import annotations

import os
from typing import List, Optional, Tuple

import torch
from torch import Tensor

from gnnkit.data.ogb import dataset_dir, missing_under, offline_ogb, ogb_master
from gnnkit.data.safe_pickle import torch_reason
from gnnkit.errors import GnnkitError

from .split import LinkSplit

SUPPORTED = ("ogbl-collab", "ogbl-ddi", "ogbl-ppa", "ogbl-citation2")


def expected_files(name: str, processed: bool = False) -> List[str]:
    """Files (relative to the dataset folder) ogb reads to load ``name`` without a download: the
    raw files until ``processed/`` exists, and the ``.pt`` split files."""
    meta = ogb_master("linkproppred", name)
    files = [f"RELEASE_v{meta['version']}.txt"]
    if not processed:
        files += ["raw/edge.csv.gz", "raw/num-node-list.csv.gz", "raw/num-edge-list.csv.gz"]
        files += ["raw/node-feat.csv.gz"] if meta["has_node_attr"] == "True" else []
        for key in ("additional node files", "additional edge files"):
            files += [f"raw/{f}.csv.gz" for f in meta[key].split(",")] if meta[key] != "None" else []
    split = f"split/{meta['split']}"
    return files + [f"{split}/train.pt", f"{split}/valid.pt", f"{split}/test.pt"]


def missing_files(name: str, root) -> List[str]:
    """The files of :func:`expected_files` absent under ``root``."""
    folder = dataset_dir(name, root)
    processed = (folder / "processed" / "geometric_data_processed.pt").is_file()
    return missing_under(folder, expected_files(name, processed))


def _read(name: str, root):
    from ogb.linkproppred import PygLinkPropPredDataset

    try:
        with offline_ogb("linkproppred"):
            dataset = PygLinkPropPredDataset(name, root=os.fspath(root))
            return dataset[0], dataset.get_edge_split()
    except GnnkitError:
        raise
    except Exception as exc:  # noqa: BLE001 - whatever ogb raises on a bad folder is the folder's fault
        raise GnnkitError(f"{name}: cannot read the files under {dataset_dir(name, root)} "
                          f"({torch_reason(exc)})") from None


def _pairs(part: dict, key: str, name: str, what: str) -> Tensor:
    edge = part.get(key) if isinstance(part, dict) else None
    if not isinstance(edge, Tensor) or edge.dim() != 2 or edge.shape[1] != 2:
        raise GnnkitError(f"{name}: split {what} has no [E, 2] '{key}' array")
    return edge.long().t().contiguous()


def _split_edges(name: str, split: dict) -> dict:
    """OGB's split dicts -> ``{train_pos, val_pos, test_pos, val_neg, test_neg}`` tensors."""
    out = {}
    for ours, theirs in (("train", "train"), ("val", "valid"), ("test", "test")):
        part = split.get(theirs) if isinstance(split, dict) else None
        if not isinstance(part, dict):
            raise GnnkitError(f"{name}: the split has no '{theirs}' part")
        if name == "ogbl-citation2":
            src, dst = part.get("source_node"), part.get("target_node")
            if not isinstance(src, Tensor) or not isinstance(dst, Tensor) or src.shape != dst.shape:
                raise GnnkitError(f"{name}: split {theirs} needs equal-length source_node/target_node")
            out[f"{ours}_pos"] = torch.stack([src.long().view(-1), dst.long().view(-1)])
            if ours != "train":
                neg = part.get("target_node_neg")
                if not isinstance(neg, Tensor) or neg.dim() != 2 or neg.shape[0] != src.numel():
                    raise GnnkitError(f"{name}: split {theirs} needs target_node_neg [E, K]")
                out[f"{ours}_neg"] = neg.long()
            continue
        out[f"{ours}_pos"] = _pairs(part, "edge", name, theirs)
        if ours != "train":
            out[f"{ours}_neg"] = _pairs(part, "edge_neg", name, theirs)
        for key in ("weight", "year"):
            if isinstance(part.get(key), Tensor):
                out.setdefault("extra", {})[f"{ours}_{key}"] = part[key]
    return out


def _check_ids(name: str, edges: dict, n: int) -> None:
    for key, t in edges.items():
        if isinstance(t, Tensor) and t.numel() and (int(t.min()) < 0 or int(t.max()) >= n):
            raise GnnkitError(f"{name}: {key} holds node ids outside [0, {n})")


def load_ogbl(name: str, root, val_in_test_graph: Optional[bool] = None) -> Tuple[object, LinkSplit]:
    """Load ``name`` from ``root`` (see the module docstring): ``(data, split)``."""
    from torch_geometric.data import Data

    meta = ogb_master("linkproppred", name)
    if name not in SUPPORTED:
        raise GnnkitError(f"{name} is not supported (homogeneous link datasets: {', '.join(SUPPORTED)})")
    missing = missing_files(name, root)
    if missing:
        raise GnnkitError(f"{name} not found: expected {', '.join(missing)} under {dataset_dir(name, root)} "
                          f"(gnnkit does not download; unpack OGB's {meta['download_name']}.zip there)")
    src, raw_split = _read(name, root)
    n = int(src.num_nodes)
    edges = _split_edges(name, raw_split)
    extra = edges.pop("extra", {})
    _check_ids(name, edges, n)
    split = LinkSplit(num_nodes=n, undirected=True, name=name, extra=extra,
                      neg_per_source=name == "ogbl-citation2",
                      val_in_test_graph=(name == "ogbl-collab") if val_in_test_graph is None else val_in_test_graph,
                      **edges)
    x = src.x.float() if getattr(src, "x", None) is not None else None
    data = Data(x=x, edge_index=split.message_edges("train"), num_nodes=n)
    data.name, data.evaluator_name = name, name
    return data, split
