"""The partition folder on disk and opening one part of it: :func:`open_part` -> :class:`Part`.

``open_part(dir, rank)`` reads ``partition.json``, checks that part ``rank``'s and the book's
metadata files are the ones the partition was written with (their BLAKE2b checksums), opens both
stores (sizes checked; every array's checksum too with ``verify=True``, the default) and checks
the part's facts against ``partition.json`` (index, node and edge counts, the book's length).
Anything wrong is a :class:`~gnnkit.errors.GnnkitError` naming the part and the array. Only that
part's and the book's files are opened; every array stays memory-mapped.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple

import torch
from torch import Tensor

from gnnkit.errors import GnnkitError
from gnnkit.stores.graph import GraphStore
from gnnkit.stores.ondisk import META_FILE, OnDiskFeatureStore, StoreFiles

FORMAT, VERSION = "gnnkit-partition", 1
INFO_FILE = "partition.json"
BOOK_DIR = "book"


def part_dir(r: int) -> str:
    return f"part-{r}"


def owner_dtype(num_parts: int) -> torch.dtype:
    """The book's owner column: int16 (so the book costs 6 bytes per node: owner + int32 local)."""
    if num_parts > 2**15 - 1:
        raise GnnkitError(f"at most {2**15 - 1} parts, got {num_parts}")
    return torch.int16


def meta_checksum(store_path: str) -> str:
    """BLAKE2b-128 of a store's metadata file (which holds every array's checksum)."""
    with open(os.path.join(store_path, META_FILE), "rb") as f:
        return hashlib.blake2b(f.read(), digest_size=16).hexdigest()


def is_partition(path) -> bool:
    """Whether ``path`` is a folder holding ``partition.json`` (a complete partition)."""
    return os.path.isdir(os.fspath(path)) and os.path.isfile(os.path.join(os.fspath(path), INFO_FILE))


def read_info(path) -> Dict[str, Any]:
    """``partition.json`` of the partition at ``path``, checked for its keys."""
    file = os.path.join(os.fspath(path), INFO_FILE)
    if not os.path.isfile(file):
        raise GnnkitError(f"partition {path}: no {INFO_FILE} (not a partition, or an interrupted write)")
    try:
        with open(file, "rb") as f:
            info = json.loads(f.read().decode("utf-8"))
    except (OSError, ValueError) as exc:
        raise GnnkitError(f"partition {path}: {INFO_FILE} cannot be read: {exc}") from None
    if not isinstance(info, dict) or info.get("format") != FORMAT or info.get("version") != VERSION:
        raise GnnkitError(f"partition {path}: {INFO_FILE} is not {FORMAT} version {VERSION}")
    parts = info.get("parts")
    p = info.get("num_parts")
    if not isinstance(p, int) or p < 1 or not isinstance(parts, list) or len(parts) != p:
        raise GnnkitError(f"partition {path}: {INFO_FILE} needs num_parts and one record per part")
    return info


class Book:
    """The replicated map of all ``N`` nodes (memory-mapped): ``owner`` int16 ``[N]`` (the part
    holding the node), ``local`` int32 ``[N]`` (its row in that part), ``degree`` int32 ``[N]``
    (its whole-graph in-degree) and, for a weighted graph, ``weighted_degree`` float32 ``[N]``."""

    def __init__(self, files: StoreFiles):
        self.files = files
        self.owner, self.local = files.tensor("owner"), files.tensor("local")
        self.degree = files.tensor("degree")
        self.weighted_degree = files.tensor("weighted_degree") if files.has("weighted_degree") else None

    def locate(self, ids: Tensor) -> Tuple[Tensor, Tensor]:
        """``(owner int64 [n], local int64 [n])`` of the global ``ids`` ``[n]``."""
        ids = ids.long()
        return self.owner[ids].long(), self.local[ids].long()


class PartGraph(GraphStore):
    """The part's structure as a :class:`~gnnkit.stores.GraphStore` over its LOCAL rows: row ``i``
    (global node ``global_ids[i]``) lists the GLOBAL ids of its in-neighbors (the whole graph's
    row, same order). ``neighbors``/``sample_neighbors``/``in_degree`` take local row ids;
    ``edge_index``/``adjacency`` (which would mix local and global ids) are refused."""

    def __init__(self, files: StoreFiles, num_global: int):
        self.files, self.num_global = files, int(num_global)

    num_nodes = property(lambda self: int(self.files.meta["num_nodes"]))
    num_edges = property(lambda self: int(self.files.meta["num_edges"]))
    is_symmetric = property(lambda self: bool(self.files.meta["is_symmetric"]))
    csr_by_source = property(lambda self: bool(self.files.meta["csr_by_source"]))
    device = property(lambda self: torch.device("cpu"))

    def csr(self) -> Tuple[Tensor, Tensor]:
        return self.files.tensor("indptr"), self.files.tensor("indices")

    def csr_weight(self) -> Optional[Tensor]:
        return self.files.tensor("edge_weight") if self.files.has("edge_weight") else None

    def edge_weight(self) -> Optional[Tensor]:
        return self.csr_weight()  # the part has no other edge order than its CSR's

    def edge_index(self) -> Tensor:
        raise GnnkitError("a part's rows are local ids and its columns global ids: it has no edge_index of its own")

    def adjacency(self, norm: str, diag_lambda: float = 0.0):
        raise GnnkitError("a part holds only its own rows: no whole-graph adjacency "
                          "(see gnnkit.partitioned.fullbatch.part_adjacency)")


@dataclass
class Part:
    """Part ``rank`` of the partition at ``path`` (see :func:`open_part`)."""

    path: str
    rank: int
    info: Dict[str, Any]
    files: StoreFiles
    graph: PartGraph
    features: OnDiskFeatureStore
    global_ids: Tensor  # int64 [n_r], ascending
    book: Book

    @property
    def num_parts(self) -> int:
        return int(self.info["num_parts"])

    @property
    def num_nodes(self) -> int:
        """``N``, the whole graph's node count."""
        return int(self.info["num_nodes"])

    @property
    def sizes(self) -> List[int]:
        """Owned node count of every part."""
        return [int(p["num_nodes"]) for p in self.info["parts"]]

    def halo_ids(self) -> Tensor:
        """The ascending global ids ``[h]`` of the in-neighbors of this part's rows owned elsewhere
        (computed once: one ``unique`` over the part's ``E_r`` entries)."""
        if "_halo" not in self.__dict__:
            src = torch.unique(self.graph.csr()[1].long())
            self.__dict__["_halo"] = src[self.book.owner[src].long() != self.rank]
        return self.__dict__["_halo"]


    def local_stores(self):
        """``(graph, features)`` of the part alone, in LOCAL ids ``0..n_r-1``: the subgraph induced by
        the owned nodes (edges with both ends here, weights kept; an in-memory store) and the part's
        feature store. For training that never leaves the part (Cluster-GCN inside each part)."""
        from gnnkit.stores.memory import InMemoryGraphStore

        indptr, indices = self.graph.csr()
        cols = indices.long()
        rows = torch.repeat_interleave(torch.arange(indptr.numel() - 1), indptr.diff(), output_size=cols.numel())
        keep = self.book.owner[cols].long() == self.rank
        src, dst = self.book.local[cols[keep]].long(), rows[keep]
        pair = (dst, src) if self.graph.csr_by_source else (src, dst)  # a by-source CSR row lists targets
        w = self.graph.csr_weight()
        graph = InMemoryGraphStore(torch.stack(pair), self.graph.num_nodes, self.graph.is_symmetric,
                                   None if w is None else w[keep])
        return graph, self.features


def _open_store(path: str, label: str, record: Dict[str, Any], verify: bool) -> StoreFiles:
    sub = os.path.join(path, str(record.get("dir", "")))
    try:
        if meta_checksum(sub) != record.get("meta_checksum"):
            raise GnnkitError(f"its {META_FILE} is not the one the partition was written with")
        return StoreFiles(sub, verify=verify)
    except (GnnkitError, OSError) as exc:
        msg = exc.strerror if isinstance(exc, OSError) else str(exc)
        raise GnnkitError(f"partition {path}: {label} ({sub}) is refused: {msg}") from None


def open_part(path, rank: int, verify: bool = True) -> Part:
    """Open part ``rank`` of the partition at ``path`` and the replicated book (module docstring)."""
    path = os.path.abspath(os.fspath(path))
    info = read_info(path)
    p = int(info["num_parts"])
    if not isinstance(rank, int) or not 0 <= rank < p:
        raise GnnkitError(f"partition {path} has {p} parts; there is no part {rank}")
    record = info["parts"][rank]
    files = _open_store(path, f"part {rank}", record, verify)
    facts = files.meta.get("extra", {}).get("partition", {})
    n = int(info["num_nodes"])
    if facts.get("part") != rank or facts.get("num_parts") != p or facts.get("num_nodes") != n \
            or files.meta["num_nodes"] != record["num_nodes"] or files.meta["num_edges"] != record["num_edges"]:
        raise GnnkitError(f"partition {path}: part {rank} ({files.path}) does not match {INFO_FILE}")
    book_files = _open_store(path, "the book", info.get("book", {}), verify)
    if book_files.meta["num_nodes"] != n:
        raise GnnkitError(f"partition {path}: the book has {book_files.meta['num_nodes']} nodes, expected {n}")
    return Part(path=path, rank=rank, info=info, files=files, graph=PartGraph(files, n),
                features=OnDiskFeatureStore(files), global_ids=files.tensor("global_ids"), book=Book(book_files))
