"""The Planetoid citation graphs (Cora, CiteSeer, PubMed) through PyG's ``Planetoid``.

Files: ``<root>/<Name>/raw/ind.<name>.{x,tx,allx,y,ty,ally,graph,test.index}`` (the layout of
kimiyoung/planetoid); PyG writes ``<root>/<Name>/processed/`` beside them, so ``root`` must be a
folder the user may write. Nothing is downloaded: missing files raise an error naming them.

Result: ``x`` float32 ``[N, F]`` (bag of words), ``y`` int64 ``[N]``, ``edge_index`` ``[2, E]``
with both directions of every citation, and the public split (20 per class / 500 / 1000).
"""
from __future__ import annotations

from pathlib import Path
from typing import List

from torch_geometric.data import Data

from gnnkit.errors import GnnkitError

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


def load_planetoid(name: str, root, split: str = "public") -> Data:
    """Load ``name`` (case-insensitive) from ``root`` with PyG's split ``split``
    (``"public"``, ``"full"``, ``"geom-gcn"`` or ``"random"``)."""
    from torch_geometric.datasets import Planetoid

    canonical = canonical_name(name)
    missing = missing_files(name, root)
    if missing:
        raise GnnkitError(f"{canonical} not found: expected {', '.join(missing)} in {raw_dir(name, root)} "
                          f"(gnnkit does not download; copy the Planetoid raw files there)")
    dataset = Planetoid(str(root), canonical, split=split)
    src = dataset[0]
    data = Data(x=src.x.float(), y=src.y.long(), edge_index=src.edge_index.long(),
                train_mask=src.train_mask, val_mask=src.val_mask, test_mask=src.test_mask)
    data.num_classes = int(dataset.num_classes)
    data.name = canonical
    return data
