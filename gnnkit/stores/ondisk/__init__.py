"""The on-disk backend of the stores: a folder of memory-mapped arrays (graphs bigger than memory).

>>> from gnnkit.stores.ondisk import write_data, write_csbm, open_store
>>> write_data(data, "stores/cora", feature_dtype="float16")       # any loaded graph
>>> write_csbm("stores/big", num_nodes=10**8, avg_degree=15)       # streamed, never in memory
>>> graph, features = open_store("stores/cora")                    # GraphStore, FeatureStore

The format is :mod:`~gnnkit.stores.ondisk.format`'s; writing goes through
:class:`~gnnkit.stores.ondisk.writer.StoreWriter` (chunked, atomic); reading maps the arrays
(:mod:`~gnnkit.stores.ondisk.files`) behind :class:`OnDiskGraphStore` and :class:`OnDiskFeatureStore`.
"""
from __future__ import annotations

from typing import Tuple

import torch

from .convert import copy_store, write_data
from .csbm import write_csbm
from .features import OnDiskFeatureStore
from .files import StoreFiles
from .format import META_FILE, is_store, read_metadata
from .graph import OnDiskGraphStore
from .writer import StoreWriter

__all__ = ["open_store", "to_data", "is_store", "write_data", "write_csbm", "copy_store", "read_metadata",
           "OnDiskGraphStore", "OnDiskFeatureStore", "StoreFiles", "StoreWriter", "META_FILE"]


def open_store(path, verify: bool = False, compute_dtype: torch.dtype = torch.float32,
               read_threads=None) -> Tuple[OnDiskGraphStore, OnDiskFeatureStore]:
    """``(graph, features)`` of the store at ``path``: sizes checked on open, checksums too with
    ``verify=True``; a :class:`~gnnkit.errors.GnnkitError` naming the array otherwise.
    ``read_threads``: concurrent readers of large gathers (``None``: 16 for a store bigger than half
    the memory, else 1; see :class:`~gnnkit.stores.ondisk.files.StoreFiles`)."""
    files = StoreFiles(path, verify=verify, read_threads=read_threads)
    return OnDiskGraphStore(files), OnDiskFeatureStore(files, compute_dtype)


def to_data(path, verify: bool = False):
    """The store at ``path`` as a PyG ``Data`` (for graphs that fit in memory): ``edge_index`` in the
    source graph's order, the node arrays (float32 ones stay memory-mapped) and the source graph's
    plain attributes as they were (``num_classes``, ``name``, ``is_symmetric``...), so that
    :func:`gnnkit.data.fingerprint` gives the source's fingerprint."""
    from torch_geometric.data import Data

    graph, features = open_store(path, verify=verify)
    data = Data(edge_index=graph.edge_index())
    for name in features.names():
        data[name] = features.get(name)
    for key, value in graph.files.meta.get("attributes", {}).items():
        data[key] = value
    if not features.names():
        data.num_nodes = graph.num_nodes
    weight = graph.edge_weight()
    if weight is not None:
        data.edge_weight = weight
    return data
