"""Graph and feature stores: how every sampler, task and evaluation reads a graph.

:class:`GraphStore` holds the structure (CSR by destination, degrees, neighbor samples, induced
subgraphs, the normalized whole-graph adjacency); :class:`FeatureStore` the node tensors by name
(``get(name, ids)``). :func:`from_data` gives the in-memory backend of a validated PyG ``Data``;
on-disk (memory-mapped) and partitioned backends implement the same two interfaces.
"""
from .features import FeatureStore
from .graph import GraphStore
from .memory import InMemoryFeatureStore, InMemoryGraphStore, from_data, in_neighbor_csr

__all__ = ["GraphStore", "FeatureStore", "InMemoryGraphStore", "InMemoryFeatureStore", "from_data",
           "in_neighbor_csr"]
