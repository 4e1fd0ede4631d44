"""The Planetoid citation graphs (Cora, CiteSeer, PubMed), read without running their pickles.

Files: ``<root>/<Name>/raw/ind.<name>.{x,tx,allx,y,ty,ally,graph,test.index}`` (the layout of
kimiyoung/planetoid). They are Python-2 pickles, and ``pickle.load`` (what PyG's ``Planetoid``
does) runs whatever code a crafted file names; here they go through
:class:`gnnkit.data.safe_pickle.SafeUnpickler` (scipy sparse matrices, numpy arrays,
``defaultdict``, lists, ints only), every part is checked (CSR parts, shapes that fit together,
test ids in range, neighbour ids in ``[0, N)``), and the graph is assembled exactly as PyG's
``read_planetoid_data`` assembles it (same tensors, same edge order). Nothing is written under
``root`` and nothing is downloaded: missing files raise an error naming them.

Result: ``x`` float32 ``[N, F]`` (bag of words), ``y`` int64 ``[N]``, ``edge_index`` ``[2, E]``
with both directions of every citation, and the public split (20 per class / 500 / 1000).
"""
from __future__ import annotations

from pathlib import Path
from typing import List

import numpy as np
import scipy.sparse as sp
import torch
from torch import Tensor
from torch_geometric.data import Data
from torch_geometric.utils import index_to_mask

from gnnkit.errors import GnnkitError

from .graph import as_tensor
from .limits import check_allocation
from .safe_pickle import safe_load_file, safe_torch_load
from .validate import sparse_to_csr

NAMES = {"cora": "Cora", "citeseer": "CiteSeer", "pubmed": "PubMed"}
RAW_PARTS = ("x", "tx", "allx", "y", "ty", "ally", "graph", "test.index")


def canonical_name(name: str) -> str:
    """``"cora"`` -> ``"Cora"``; KeyError for a name that is not a Planetoid graph."""
    return NAMES[name.lower()]


def raw_dir(name: str, root) -> Path:
    return Path(root) / canonical_name(name) / "raw"


def expected_files(name: str) -> List[str]:
    return [f"ind.{canonical_name(name).lower()}.{part}" for part in RAW_PARTS]


def missing_files(name: str, root) -> List[str]:
    folder = raw_dir(name, root)
    return [f for f in expected_files(name) if not (folder / f).is_file()]


def as_dense_matrix(obj, what: str) -> Tensor:
    """A raw feature or one-hot label part as float32 ``[rows, cols]``: a scipy CSR/CSC/COO matrix
    (the dense size of its declared shape checked first, then rebuilt from its checked arrays) or a
    2-d numeric array."""
    if sp.issparse(obj):
        shape = np.asarray(getattr(obj, "__dict__", {}).get("_shape", ()))
        if shape.shape == (2,) and shape.dtype.kind in "iu":
            check_allocation(4.0 * float(shape[0]) * float(shape[1]), f"{what}: dense [{shape[0]} x {shape[1]}]")
        dense = sparse_to_csr(obj, what).toarray()
    elif isinstance(obj, np.ndarray) and obj.ndim == 2 and obj.dtype.kind in "biuf":
        check_allocation(4.0 * obj.shape[0] * obj.shape[1], f"{what}: [{obj.shape[0]} x {obj.shape[1]}]")
        dense = obj  # may be a strided view of a few bytes: its float copy is what the check counts
    else:
        desc = f"{obj.dtype} {obj.shape}" if isinstance(obj, np.ndarray) else type(obj).__name__
        raise GnnkitError(f"{what}: expected a sparse matrix or a 2-d numeric array, got {desc}")
    return as_tensor(dense, torch.float)


def _graph(obj, num_nodes: int, what: str) -> Tensor:
    """The adjacency dict ``{node: [neighbours]}`` as PyG builds it (loops removed, coalesced)."""
    from torch_geometric.io.planetoid import edge_index_from_dict

    if not isinstance(obj, dict):
        raise GnnkitError(f"{what}: expected a dict of neighbour lists, got {type(obj).__name__}")
    lists = list(obj.values())
    if not all(isinstance(v, (list, tuple)) for v in lists):
        raise GnnkitError(f"{what}: every value must be a list of node ids")
    # a pickle can repeat one list many times by reference: bound the total before flattening
    check_allocation(64.0 * sum(len(v) for v in lists), f"{what}: {sum(len(v) for v in lists)} neighbour entries")
    try:
        keys = np.array(list(obj.keys()))
        cols = np.array([c for v in lists for c in v])
    except (ValueError, TypeError, OverflowError):
        keys = cols = np.array([None])  # ragged or mixed content: refused below
    for arr, part in ((keys, "node"), (cols, "neighbour")):
        if arr.ndim != 1 or (arr.size and arr.dtype.kind not in "iu"):
            raise GnnkitError(f"{what}: {part} ids must be integers in [0, {num_nodes}), got {arr.dtype} "
                              f"values of shape {arr.shape}")
        if arr.size and (int(arr.min()) < 0 or int(arr.max()) >= num_nodes):
            raise GnnkitError(f"{what}: {part} ids must be integers in [0, {num_nodes}), got values in "
                              f"[{arr.min()}, {arr.max()}]")
    clean = {int(k): [int(c) for c in v] for k, v in zip(keys.tolist(), lists)}
    return edge_index_from_dict(clean, num_nodes=num_nodes)


def _test_index(path: Path) -> Tensor:
    try:
        values = np.loadtxt(path, dtype=np.int64, ndmin=1)
    except (ValueError, OSError) as exc:
        raise GnnkitError(f"{path}: expected one integer node id per line ({str(exc).splitlines()[0][:120]})") from None
    if values.ndim != 1 or values.size == 0:
        raise GnnkitError(f"{path}: expected one integer node id per line")
    return torch.from_numpy(values)


def _read_raw(folder: Path, prefix: str) -> dict:
    """The eight raw parts, through the restricted unpickler (never ``pickle.load``)."""
    parts = {}
    for part in RAW_PARTS[:-2]:
        path = folder / f"ind.{prefix}.{part}"
        parts[part] = as_dense_matrix(safe_load_file(path), str(path))
    parts["graph"] = safe_load_file(folder / f"ind.{prefix}.graph")
    parts["test.index"] = _test_index(folder / f"ind.{prefix}.test.index")
    return parts


def _assemble(parts: dict, folder: Path, prefix: str) -> Data:
    """PyG's ``read_planetoid_data`` on checked parts (same tensors, same order)."""
    x, tx, allx, y, ty, ally, test_index = (parts[k] for k in ("x", "tx", "allx", "y", "ty", "ally", "test.index"))
    where = f"{folder}/ind.{prefix}"
    if not (x.size(1) == tx.size(1) == allx.size(1)) or not (y.size(1) == ty.size(1) == ally.size(1)) \
            or x.size(0) != y.size(0) or tx.size(0) != ty.size(0) or allx.size(0) != ally.size(0):
        raise GnnkitError(f"{where}.*: the parts do not fit together (x {tuple(x.shape)}, tx {tuple(tx.shape)}, "
                          f"allx {tuple(allx.shape)}, y {tuple(y.shape)}, ty {tuple(ty.shape)}, "
                          f"ally {tuple(ally.shape)})")
    lo, hi = int(test_index.min()), int(test_index.max())
    span = hi - lo + 1 if prefix == "citeseer" else tx.size(0)
    if test_index.numel() != tx.size(0) or lo < allx.size(0) or hi >= allx.size(0) + span \
            or test_index.unique().numel() != test_index.numel() or y.size(0) + 500 > allx.size(0):
        raise GnnkitError(f"{where}.test.index: {test_index.numel()} ids in [{lo}, {hi}] do not match tx "
                          f"({tx.size(0)} rows after allx's {allx.size(0)})")
    sorted_test_index = test_index.sort()[0]
    if prefix == "citeseer":  # isolated test nodes: zero rows, as PyG does
        tx_ext = torch.zeros(span, tx.size(1), dtype=tx.dtype)
        tx_ext[sorted_test_index - lo, :] = tx
        ty_ext = torch.zeros(span, ty.size(1), dtype=ty.dtype)
        ty_ext[sorted_test_index - lo, :] = ty
        tx, ty = tx_ext, ty_ext
    x = torch.cat([allx, tx], dim=0)
    x[test_index] = x[sorted_test_index]
    y = torch.cat([ally, ty], dim=0).max(dim=1)[1]
    y[test_index] = y[sorted_test_index]
    n = y.size(0)
    masks = [index_to_mask(idx, size=n) for idx in (torch.arange(parts["y"].size(0)),
                                                   torch.arange(parts["y"].size(0), parts["y"].size(0) + 500),
                                                   test_index)]
    edge_index = _graph(parts["graph"], n, f"{where}.graph")
    return Data(x=x, edge_index=edge_index, y=y, train_mask=masks[0], val_mask=masks[1], test_mask=masks[2])


def _processed(folder: Path) -> Data:
    """PyG's processed cache ``processed/data.pt``, loaded with ``weights_only=True`` only."""
    path = folder / "processed" / "data.pt"
    out = safe_torch_load(path)
    if isinstance(out, tuple) and len(out) in (2, 3) and isinstance(out[0], dict):
        try:
            out = Data.from_dict(out[0])
        except Exception as exc:  # noqa: BLE001 - a malformed cache is refused, whatever it holds
            raise GnnkitError(f"{path}: not a PyG Planetoid cache ({exc})") from None
    elif isinstance(out, tuple) and out and isinstance(out[0], Data):
        out = out[0]
    if not isinstance(out, Data) or not all(isinstance(getattr(out, k, None), Tensor) for k in
                                            ("x", "y", "edge_index", "train_mask", "val_mask", "test_mask")):
        raise GnnkitError(f"{path}: not a PyG Planetoid cache (expected x, y, edge_index and the three masks)")
    return out


def _full_split(data: Data) -> None:
    """PyG's ``split="full"``: every node outside validation and test trains."""
    data.train_mask = ~(data.val_mask | data.test_mask)


def load_planetoid(name: str, root, split: str = "public") -> Data:
    """Load ``name`` (case-insensitive) from ``root`` with the public split (PyG's ``"public"``) or
    ``"full"`` (every other node trains). The raw files are read through the restricted unpickler;
    only when they are absent is PyG's ``processed/data.pt`` used, loaded with ``weights_only=True``
    (a cache that does not load that way is refused). Nothing is written under ``root``."""
    canonical = canonical_name(name)
    if split not in ("public", "full"):
        raise GnnkitError(f"Planetoid split {split!r} is not supported; use 'public' or 'full' "
                          f"(or --split random:TRAIN,VAL for a seeded random split)")
    folder = Path(root) / canonical
    missing = missing_files(name, root)
    if not missing:
        src = _assemble(_read_raw(folder / "raw", canonical.lower()), folder / "raw", canonical.lower())
    elif (folder / "processed" / "data.pt").is_file():
        src = _processed(folder)
    else:
        raise GnnkitError(f"{canonical} not found: expected {', '.join(missing)} in {raw_dir(name, root)} "
                          f"(gnnkit does not download; copy the Planetoid raw files there)")
    data = Data(x=src.x.float(), y=src.y.long(), edge_index=src.edge_index.long(),
                train_mask=src.train_mask.bool(), val_mask=src.val_mask.bool(), test_mask=src.test_mask.bool())
    if split == "full":
        _full_split(data)
    data.num_classes = int(data.y.max()) + 1 if data.y.numel() else 0
    data.name = canonical
    return data
