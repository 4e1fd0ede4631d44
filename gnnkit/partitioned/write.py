"""Writing a partition folder: :func:`write_partition` (see :mod:`gnnkit.partitioned` for the layout).

The source is a PyG ``Data``, a ``(GraphStore, FeatureStore)`` pair or the path of an on-disk
store (memory-mapped: parts are cut from the mapped CSR and feature rows, chunk by chunk). The
owner of every node comes from METIS (:func:`gnnkit.partition.partition_graph`, through its
cache) or from a seeded random permutation (``owner[perm[i]] = i mod P``: part sizes differ by at
most one; for graphs whose METIS input would not fit in memory). Part ``r`` holds the owned nodes
``V_r`` in ascending global id: CSR row ``i`` of the part is the whole graph's CSR row
``global_ids[i]`` (same entries, same order, global source ids), so all-neighbor reads over the
parts equal the whole graph's.

Everything goes into a temporary folder beside ``out``; each part and the book are written by
:class:`~gnnkit.stores.ondisk.StoreWriter` (checksummed, atomic), ``partition.json`` last (with
each part's metadata checksum), then the folder is renamed to ``out``: no interruption leaves a
folder that opens as a partition.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from typing import Any, Dict, Optional, Tuple

import torch
from torch import Tensor

from gnnkit.errors import GnnkitError
from gnnkit.fileio import atomic_write_json
from gnnkit.sparse.segments import concat_ranges
from gnnkit.stores.ondisk import StoreWriter
from gnnkit.stores.ondisk.csr import index_dtype

from .layout import BOOK_DIR, FORMAT, INFO_FILE, VERSION, meta_checksum, owner_dtype, part_dir

ROWS = 1 << 16  # rows cut and written at a time
METHODS = ("metis", "random")


def _source(source) -> Tuple[Any, Any, Optional[str], str]:
    """``(graph, features, fingerprint, name)`` of a ``Data``, a store pair or a store path."""
    if isinstance(source, (str, os.PathLike)):
        from gnnkit.stores.ondisk import open_store, read_metadata

        meta = read_metadata(source)
        if "partition" in meta.get("extra", {}):
            raise GnnkitError(f"{source} is one part of a partition (global column ids); partition the whole graph")
        return (*open_store(source), meta.get("fingerprint"), str(meta.get("name", "graph")))
    if isinstance(source, tuple):
        graph, features = source
        return graph, features, features.meta.get("fingerprint"), str(features.meta.get("name", "graph"))
    from gnnkit.data.fingerprint import fingerprint
    from gnnkit.stores import from_data

    graph, features = from_data(source)
    return graph, features, fingerprint(source), str(getattr(source, "name", None) or "graph")


def plain_meta(meta: Dict[str, Any]) -> Dict[str, Any]:
    """The graph-level facts of a feature store, JSON-ready (a one-element tensor as its number)."""
    out = {}
    for key, value in meta.items():
        if isinstance(value, Tensor):
            value = value.item() if value.numel() == 1 else value.tolist()
        out[key] = value if isinstance(value, (int, float, str, bool, list, type(None))) else str(value)
    return out


def assign_parts(graph, num_parts: int, method: str, seed: int, cache_dir: Optional[str] = None) -> Tuple[Tensor, int]:
    """``(owner int64 [N], edge_cut)``: METIS (cached) or a seeded balanced random assignment."""
    from gnnkit.partition import check_request, partition_graph

    n = graph.num_nodes
    if method not in METHODS:
        raise GnnkitError(f"partition method {method!r}; choose one of {', '.join(METHODS)}")
    check_request(n, max(graph.num_edges, 1) if method == "random" else graph.num_edges, num_parts)
    if method == "metis":
        part = partition_graph(graph.edge_index(), n, num_parts, seed=seed, cache_dir=cache_dir,
                               use_cache=cache_dir is not None)
        return part.parts, part.edge_cut
    owner = torch.empty(n, dtype=torch.long)
    owner[torch.randperm(n, generator=torch.Generator().manual_seed(int(seed)))] = torch.arange(n) % num_parts
    return owner, -1


def _write_rows(writer: StoreWriter, graph, nodes: Tensor) -> int:
    """The CSR rows of ``nodes`` (global sources), their weights when the graph has some; returns E_r."""
    indptr, indices = graph.csr()
    weight = graph.csr_weight()
    start, counts = indptr[nodes], indptr[nodes + 1] - indptr[nodes]
    ptr = torch.zeros(nodes.numel() + 1, dtype=torch.long)
    torch.cumsum(counts, 0, out=ptr[1:])
    writer.write("indptr", ptr, torch.int64, role="graph")
    out = writer.array("indices", index_dtype(graph.num_nodes), role="graph")
    w_out = None if weight is None else writer.array("edge_weight", weight.dtype, role="graph")
    for s in range(0, max(nodes.numel(), 1), ROWS):
        pos = concat_ranges(start[s:s + ROWS], counts[s:s + ROWS])
        out.append(indices[pos])
        if w_out is not None:
            w_out.append(weight[pos])
    return int(ptr[-1])


def _write_nodes(writer: StoreWriter, features, nodes: Tensor, feature_dtype: Optional[torch.dtype]) -> None:
    """Every node array of ``features`` at ``nodes`` (in their stored dtype; ``x`` in ``feature_dtype``)."""
    for name in features.names():
        stored = features.stored_dtype(name) if hasattr(features, "stored_dtype") else features.dtype(name)
        if name == "x" and feature_dtype is not None and stored.is_floating_point:
            stored = feature_dtype
        out = writer.array(name, stored, features.shape(name)[1:])
        for s in range(0, max(nodes.numel(), 1), ROWS):
            out.append(features.get(name, nodes[s:s + ROWS]))
    writer.write("global_ids", nodes, torch.int64, role="graph")


def _write_part(folder: str, r: int, nodes: Tensor, graph, features, common: Dict[str, Any],
                feature_dtype: Optional[torch.dtype]) -> Dict[str, Any]:
    """Part ``r`` (the owned ``nodes``, ascending) as a store in ``folder``; returns its record."""
    path = os.path.join(folder, part_dir(r))
    with StoreWriter(path) as writer:
        e = _write_rows(writer, graph, nodes)
        _write_nodes(writer, features, nodes, feature_dtype)
        extra = {"partition": {**common, "part": r}}
        writer.commit(name=f"{common['name']} part {r} of {common['num_parts']}", num_nodes=nodes.numel(),
                      num_edges=e, is_symmetric=graph.is_symmetric, meta=plain_meta(features.meta), extra=extra,
                      fingerprint=f"{common['fingerprint']}/part-{r}-of-{common['num_parts']}",
                      csr_by_source=graph.csr_by_source)
    train = int(features.get("train_mask", nodes).sum()) if "train_mask" in features.names() else 0
    return {"dir": part_dir(r), "num_nodes": int(nodes.numel()), "num_edges": e, "num_train": train,
            "meta_checksum": meta_checksum(path)}


def _write_book(folder: str, owner: Tensor, local: Tensor, graph, num_parts: int) -> str:
    """The replicated book: ``owner``, ``local``, ``degree`` (+ ``weighted_degree``) for all ``N`` nodes."""
    path = os.path.join(folder, BOOK_DIR)
    n = owner.numel()
    with StoreWriter(path) as writer:
        writer.write("indptr", torch.zeros(n + 1, dtype=torch.long), role="graph")  # no edges: the format wants one
        writer.write("indices", torch.zeros(0, dtype=torch.int32), role="graph")
        writer.write("owner", owner, owner_dtype(num_parts), role="graph")
        writer.write("local", local, torch.int32, role="graph")
        writer.write("degree", graph.in_degree(), torch.int32, role="graph")
        if graph.csr_weight() is not None:
            writer.write("weighted_degree", graph.weighted_in_degree(), torch.float32, role="graph")
        writer.commit(name="book", num_nodes=n, num_edges=0, is_symmetric=False, fingerprint="book")
    return meta_checksum(path)


def write_partition(source, num_parts: int, out, method: str = "metis", seed: int = 0, overwrite: bool = False,
                    feature_dtype: Optional[str] = None, cache_dir: Optional[str] = None) -> Dict[str, Any]:
    """Partition ``source`` into ``num_parts`` part stores under ``out``; returns ``partition.json``'s record."""
    from gnnkit.stores.ondisk.convert import feature_dtype_of

    graph, features, fp, name = _source(source)
    fdt = None if feature_dtype is None else feature_dtype_of(feature_dtype)
    out = os.path.abspath(os.fspath(out))
    if os.path.exists(out) and not overwrite:
        raise GnnkitError(f"{out} exists; pass overwrite=True (gnnkit partition --overwrite) to replace it")
    owner, cut = assign_parts(graph, num_parts, method, seed, cache_dir)
    n = graph.num_nodes
    order = torch.sort(owner, stable=True).indices  # nodes grouped by part, ascending within each
    sizes = torch.bincount(owner, minlength=num_parts)
    first = torch.cumsum(sizes, 0) - sizes
    local = torch.empty(n, dtype=torch.long)
    local[order] = torch.arange(n) - first.repeat_interleave(sizes)
    os.makedirs(os.path.dirname(out), exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=f".{os.path.basename(out)}.partial-", dir=os.path.dirname(out))
    try:
        common = {"num_parts": num_parts, "num_nodes": n, "num_edges": graph.num_edges, "method": method,
                  "seed": int(seed), "name": name, "fingerprint": fp}
        parts = [_write_part(tmp, r, order[int(first[r]):int(first[r] + sizes[r])], graph, features, common, fdt)
                 for r in range(num_parts)]
        record = {"format": FORMAT, "version": VERSION, **common, "edge_cut": cut, "parts": parts,
                  "book": {"dir": BOOK_DIR, "meta_checksum": _write_book(tmp, owner, local, graph, num_parts)},
                  "is_symmetric": graph.is_symmetric, "weighted": graph.csr_weight() is not None,
                  "meta": plain_meta(features.meta)}
        atomic_write_json(os.path.join(tmp, INFO_FILE), record)
        os.chmod(tmp, 0o755)
        if os.path.exists(out):
            old = tempfile.mkdtemp(prefix=f".{os.path.basename(out)}.old-", dir=os.path.dirname(out))
            os.replace(out, os.path.join(old, "partition"))
            shutil.rmtree(old, ignore_errors=True)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return record
