"""gnnkit's data layer: load a graph from any source, validated.

>>> from gnnkit.data import load
>>> data = load("Cora", root="data")                       # Planetoid
>>> data = load("csbm:num_nodes=100000,avg_degree=10")     # generated
>>> data = load("graphs/cora.npz")                          # CSR .npz

See :mod:`gnnkit.data.loader` for the sources and their options, :mod:`gnnkit.data.validate` for
what a valid graph is, :mod:`gnnkit.data.split` for the seeded splits and :mod:`gnnkit.data.info`
for the statistics ``gnnkit info`` prints, :func:`fingerprint` for a dataset's content hash and
:func:`check_allocation` for the size check before large allocations. No loader runs code from a
data file (:mod:`gnnkit.data.safe_pickle`).
"""
from gnnkit.errors import GraphValidationError

from .fingerprint import fingerprint, hash_tensors
from .limits import check_allocation
from .loader import default_root, is_present, known_datasets, load
from .validate import GraphWarning, validate

__all__ = ["load", "validate", "known_datasets", "default_root", "is_present", "GraphValidationError",
           "GraphWarning", "fingerprint", "hash_tensors", "check_allocation"]
