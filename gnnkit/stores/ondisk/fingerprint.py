"""A store's dataset fingerprint, without reading the store: :func:`store_fingerprint`.

It equals :func:`gnnkit.data.fingerprint` of :func:`~gnnkit.stores.ondisk.to_data` of the store
(so a store and the graph it holds have one fingerprint, as run records and ``--resume`` compare)
but reads only the sampled elements: that fingerprint hashes, per tensor attribute in name order,
its dtype, its shape and the elements at ``SAMPLE`` evenly strided positions of the flattened
tensor; here the node arrays are sampled through their memory maps and the ``[2, E]``
``edge_index``'s sampled elements are computed from the CSR (a position ``q < E`` is the source of
edge ``q``, else the target of edge ``q - E``; an edge's CSR row by one ``searchsorted``).
A test checks it against :func:`gnnkit.data.fingerprint` so that the two cannot drift apart.
"""
from __future__ import annotations

import hashlib
import math
from typing import Dict

import torch
from torch import Tensor

from .files import StoreFiles


def _strided(numel: int, sample: int) -> Tensor:
    """The flat positions a strided sample of ``sample`` elements reads (all when ``numel <= sample``)."""
    step = 1 if numel <= sample else math.ceil(numel / sample)
    return torch.arange(0, numel, step)


def _edge_sample(files: StoreFiles, sample: int) -> Tensor:
    """``edge_index.reshape(-1)[positions]`` of the store's ``[2, E]`` edges, from the CSR."""
    indptr, indices = files.tensor("indptr"), files.tensor("indices")
    e = indices.numel()
    q = _strided(2 * e, sample)
    which, edge = q // max(e, 1), q % max(e, 1)
    if files.has("edge_order"):
        edge = files.tensor("edge_order")[edge]
    part = torch.stack([torch.searchsorted(indptr, edge, right=True) - 1, indices[edge].long()])
    if not files.meta["csr_by_source"]:
        part = part.flip(0)  # (source, target) = (indices, row)
    return part.gather(0, which.view(1, -1)).view(-1)


def _node_sample(files: StoreFiles, name: str, sample: int, compute_dtype: torch.dtype) -> Tensor:
    t = files.tensor(name).reshape(-1)
    values = t[_strided(t.numel(), sample)]
    return values.to(compute_dtype) if values.is_floating_point() else values


def store_fingerprint(files: StoreFiles, sample: int = 1 << 16, compute_dtype: torch.dtype = torch.float32) -> str:
    """:func:`gnnkit.data.fingerprint` of the store's graph (see the module docstring)."""
    shapes: Dict[str, tuple] = {name: files.shape(name) for name in files.names("node")}
    dtypes = {name: (compute_dtype if files.dtype(name).is_floating_point else files.dtype(name)) for name in shapes}
    shapes["edge_index"], dtypes["edge_index"] = (2, int(files.meta["num_edges"])), torch.int64
    if files.has("edge_weight"):
        shapes["edge_weight"], dtypes["edge_weight"] = (int(files.meta["num_edges"]),), files.dtype("edge_weight")
    items = {**{k: ("t", None) for k in shapes}, **files.meta.get("attributes", {})}
    h = hashlib.blake2b(digest_size=16)
    extra = []
    for key in sorted(items, key=str):
        value = items[key]
        if key not in shapes:
            if isinstance(value, (bool, int, float)):
                extra.append(f"{key}={value!r}")
            continue
        if key == "edge_index":
            values = _edge_sample(files, sample)
        elif key == "edge_weight":
            w = files.tensor("edge_weight")
            pos = _strided(w.numel(), sample)
            values = w[files.tensor("edge_order")[pos]] if files.has("edge_order") else w[pos]
        else:
            values = _node_sample(files, key, sample, compute_dtype)
        h.update(f"{dtypes[key]}{tuple(shapes[key])}".encode())
        h.update(memoryview(values.contiguous().view(torch.uint8).numpy()) if values.numel() else b"")
        extra.append(f"{key}:t")
    h.update("|".join(extra).encode())
    return h.hexdigest()
