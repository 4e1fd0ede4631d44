"""METIS graph partitions (through ``pymetis``), cached under the data root and verified on load.

:func:`partition_graph` splits the ``num_nodes`` nodes of ``edge_index`` ``[2, E]`` into
``num_parts`` parts and returns a :class:`Partition` with ``parts`` int64 ``[num_nodes]`` (the part
of every node, in ``[0, num_parts)``).

METIS input. METIS wants an undirected graph without self-loops or repeated edges, in CSR
(``xadj`` ``[n + 1]``, ``adjncy`` ``[2m]``). :func:`metis_graph` builds it with tensor operations:
each edge ``(u, v)``, ``u != v``, becomes the key ``u·n + v``; the keys of the transposed edges
are sorted and compared with the (sorted) keys, so an already symmetric graph costs one sort; an
asymmetric one is symmetrized by sorting both key sets together. Repeated keys are dropped, and
``xadj`` is the running sum of the per-row counts. A coalesced undirected ``edge_index`` (keys
increasing, no repeats, symmetric) already is the CSR: then ``adjncy`` is ``edge_index[1]``, no
copy, and the one sort (to check symmetry) is the only cost beyond O(E) scans.

Cache. The file ``<cache_dir>/metis-p<P>-<key>.pt`` holds the parts; ``key`` is a BLAKE2b hash of
the graph as given (``num_nodes`` and the bytes of ``edge_index``, so a cache hit costs one read
of the edges and no sort; the same graph with its edges in another order is a cache miss, never a
wrong hit) and of the options (parts, seed, ``ufactor``, recursive bisection or k-way). It is written atomically (temporary file +
``os.replace``) and verified on load: the stored key, the length (``num_nodes``), the range
(``0 <= part < P``) and a hash of the stored parts. A file that fails any check, or cannot be
read, is reported with :func:`warnings.warn` and recomputed, never used. ``cache_dir`` defaults to
``<data root>/partitions`` when a data root is given (an argument, or ``$GNNKIT_DATA``), else to
``$XDG_CACHE_HOME/gnnkit/partitions`` (``~/.cache/gnnkit/partitions``): never inside the package.

Bad requests (``num_parts < 1``, ``num_parts > num_nodes``, a graph without edges) raise
:class:`~gnnkit.errors.GnnkitError` before METIS is called, and so does a graph METIS would not
fit in memory with (:func:`check_metis_memory`): its input CSR and its own work, about
``METIS_BYTES_PER_NODE · n + METIS_BYTES_PER_ENTRY · nnz`` bytes (``nnz`` = the CSR's entries,
twice the undirected edges), against the memory available now (``MemAvailable``, or
``$GNNKIT_MEMORY_LIMIT`` when set). The two rates are upper bounds of pymetis's measured peak
(64-bit ids, k-way, 100-400 parts): 100k nodes / 1M entries 102 MB, 100k / 4M 300 MB,
400k / 4M 448 MB, 400k / 8M 804 MB above the input; plus the input CSR's 8 bytes per node and entry.
"""
from __future__ import annotations

import os
import time
import warnings
from dataclasses import dataclass
from typing import Optional, Tuple

import numpy as np
import torch
from torch import Tensor

from .data.fingerprint import hash_tensors
from .data.limits import format_bytes, memory_limit
from .errors import GnnkitError
from .fileio import atomic_torch_save
from .sparse.subgraph import induced_edges

FORMAT = "gnnkit-metis-1"
METIS_BYTES_PER_NODE = 508  # the input's xadj (8) + METIS's work (500), per node
METIS_BYTES_PER_ENTRY = 98  # the input's adjncy (8) + METIS's work (90), per CSR entry
DEFAULT_UFACTOR = 30  # METIS's own default for k-way: the largest part may hold 1.030 × n / P nodes


def default_cache_dir(root: Optional[str] = None) -> str:
    """``<root>/partitions`` for a data root ``root`` (default ``$GNNKIT_DATA`` when set); without
    one, ``$XDG_CACHE_HOME/gnnkit/partitions`` (``~/.cache/gnnkit/partitions`` when unset)."""
    root = root or os.environ.get("GNNKIT_DATA")
    if root:
        return os.path.join(os.path.expanduser(os.fspath(root)), "partitions")
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(cache, "gnnkit", "partitions")


@dataclass
class Partition:
    """A partition of ``num_nodes`` nodes: ``parts`` int64 ``[num_nodes]`` in ``[0, num_parts)``."""

    parts: Tensor
    num_parts: int
    edge_cut: int  # undirected edges whose ends lie in different parts
    seconds: float  # time this call took (hashing, then the cache load or the CSR build and METIS)
    cached: bool  # loaded from the cache rather than computed
    path: Optional[str]  # the cache file (None without a cache)
    key: str

    @property
    def sizes(self) -> Tensor:
        return torch.bincount(self.parts, minlength=self.num_parts)

    @property
    def imbalance(self) -> float:
        """Largest part over the mean part size, ``max_p |V_p| / (n / P)`` (1.0 is perfect balance)."""
        return float(self.sizes.max()) * self.num_parts / max(self.parts.numel(), 1)


def check_num_parts(num_parts) -> None:
    if not isinstance(num_parts, (int, np.integer)) or isinstance(num_parts, bool):
        raise GnnkitError(f"the number of parts must be an integer, got {num_parts!r}")
    if num_parts < 1:
        raise GnnkitError(f"the number of parts must be at least 1, got {num_parts}")


def check_request(num_nodes: int, num_edges: int, num_parts: int) -> None:
    """Raise :class:`GnnkitError` for a request METIS must not see."""
    check_num_parts(num_parts)
    if num_parts > num_nodes:
        raise GnnkitError(f"cannot split {num_nodes} nodes into {num_parts} parts: "
                          f"more parts than nodes")
    if num_edges == 0:
        raise GnnkitError(f"the graph has no edges (besides self-loops) among its {num_nodes} nodes: "
                          "METIS has nothing to cut; use a sampler that does not partition")


def available_memory() -> int:
    """Bytes a new allocation may take now: ``$GNNKIT_MEMORY_LIMIT`` when set, else ``MemAvailable``
    (``/proc/meminfo``), else :func:`~gnnkit.data.limits.memory_limit`."""
    if os.environ.get("GNNKIT_MEMORY_LIMIT"):
        return memory_limit()
    try:
        with open("/proc/meminfo") as f:
            line = next(x for x in f if x.startswith("MemAvailable:"))
        return min(int(line.split()[1]) * 1024, memory_limit())
    except (OSError, StopIteration, ValueError, IndexError):
        return memory_limit()


def metis_memory(num_nodes: int, num_entries: int) -> int:
    """Bytes of a METIS call on ``num_nodes`` nodes and ``num_entries`` CSR entries, its input included."""
    return METIS_BYTES_PER_NODE * int(num_nodes) + METIS_BYTES_PER_ENTRY * int(num_entries)


def check_metis_memory(num_nodes: int, num_entries: int) -> None:
    """Raise :class:`GnnkitError` naming the memory METIS would need for ``num_nodes`` nodes and
    ``num_entries`` CSR entries (a symmetric graph's ``E``) when it exceeds :func:`available_memory`."""
    need, have = metis_memory(num_nodes, num_entries), available_memory()
    if need > have:
        raise GnnkitError(f"METIS would need about {format_bytes(need)} of memory to partition {num_nodes} nodes "
                          f"and {num_entries} adjacency entries ({METIS_BYTES_PER_NODE} bytes per node + "
                          f"{METIS_BYTES_PER_ENTRY} per entry), but {format_bytes(have)} is available: Cluster-GCN "
                          "cannot partition this graph here; train it with the neighbor or MVS sampler, which read "
                          "a graph bigger than memory from its store")


def metis_graph(edge_index: Tensor, num_nodes: int) -> Tuple[Tensor, Tensor]:
    """METIS's CSR of the undirected simple graph underlying ``edge_index`` ``[2, E]``.

    Returns ``xadj`` int64 ``[num_nodes + 1]`` and ``adjncy`` int64 ``[2m]`` (CPU, contiguous,
    neighbors sorted within each row): ``v`` is a neighbor of ``u`` iff ``(u, v)`` or ``(v, u)``
    is an edge and ``u != v``. When the loop-free edges already are that CSR (keys ``u·n + v``
    in increasing order, no repeats, symmetric: a coalesced undirected graph), ``adjncy`` is
    ``edge_index[1]`` itself (a view, no copy) and the only sort is that of the transposed keys.
    """
    ei = edge_index.detach().to("cpu", torch.int64)
    if ei.numel() and (int(ei.min()) < 0 or int(ei.max()) >= num_nodes):
        raise GnnkitError(f"edge_index holds node ids outside [0, {num_nodes})")
    src, dst = ei[0], ei[1]
    keep = src != dst
    if not bool(keep.all()):
        src, dst = src[keep], dst[keep]
    del ei, keep
    key = src * num_nodes  # the key u·n + v of every edge (in place: no temporary)
    key += dst
    in_order = key.numel() < 2 or bool((key[1:] >= key[:-1]).all())
    if not in_order:
        key = torch.sort(key).values
    key_t = dst * num_nodes
    key_t += src
    key_t = torch.sort(key_t).values
    symmetric = torch.equal(key, key_t)
    if not symmetric:  # take the union of both directions
        key = torch.sort(torch.cat([key, key_t])).values
    del key_t
    repeats = False
    if key.numel() > 1:
        first = torch.ones(key.numel(), dtype=torch.bool)
        torch.ne(key[1:], key[:-1], out=first[1:])
        repeats = not bool(first.all())
        if repeats:
            key = key[first]
        del first
    xadj = torch.zeros(num_nodes + 1, dtype=torch.int64)
    if in_order and symmetric and not repeats:  # the edges are the CSR already
        torch.cumsum(torch.bincount(src, minlength=num_nodes), 0, out=xadj[1:])
        return xadj, dst.contiguous()
    del src, dst
    row = torch.div(key, num_nodes, rounding_mode="floor")
    adjncy = key.sub_(row * num_nodes)  # in place: the column of every key
    torch.cumsum(torch.bincount(row, minlength=num_nodes), 0, out=xadj[1:])
    return xadj, adjncy


def _options_text(num_parts: int, seed: int, ufactor: int, recursive: Optional[bool]) -> str:
    return f"{FORMAT}|parts={num_parts}|seed={seed}|ufactor={ufactor}|recursive={recursive}"


def run_metis(xadj: Tensor, adjncy: Tensor, num_parts: int, *, seed: int = 0, ufactor: int = DEFAULT_UFACTOR,
              recursive: Optional[bool] = None) -> Tuple[Tensor, int]:
    """One ``pymetis.part_graph`` call on the CSR (no copy of the arrays): ``(parts [n], edge_cut)``.

    ``ufactor`` is METIS's load imbalance tolerance in thousandths (the largest part may hold
    ``(1 + ufactor/1000) · n / P`` nodes); ``recursive`` picks recursive bisection over k-way
    (``None``: pymetis's choice, recursive for ``P <= 8``).
    """
    import pymetis

    dtype = pymetis.zero_copy_dtype()
    opts = pymetis.Options()
    opts.seed = int(seed)
    opts.ufactor = int(ufactor)
    graph = pymetis.CSRAdjacency(xadj.numpy().astype(dtype, copy=False), adjncy.numpy().astype(dtype, copy=False))
    cut, part = pymetis.part_graph(int(num_parts), graph, options=opts, recursive=recursive)
    parts = torch.from_numpy(np.array(part, dtype=np.int64))  # array('q') -> copy through the buffer protocol
    return parts, int(cut)


def _parts_digest(parts: Tensor, edge_cut: int) -> str:
    return hash_tensors(parts, extra=f"cut={edge_cut}")


def _load_verified(path: str, key: str, num_nodes: int, num_parts: int) -> Tuple[Optional[Tensor], int, str]:
    """``(parts, edge_cut, "")`` for a valid cache file, else ``(None, 0, reason)``."""
    try:
        d = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is a corrupt cache
        return None, 0, f"unreadable ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})"
    if not isinstance(d, dict) or d.get("format") != FORMAT:
        return None, 0, "not a gnnkit partition file"
    if d.get("key") != key:
        return None, 0, "stale (it was computed for another graph or other options)"
    parts = d.get("parts")
    if not isinstance(parts, Tensor) or parts.dim() != 1 or parts.numel() != num_nodes:
        n = parts.numel() if isinstance(parts, Tensor) else "no"
        return None, 0, f"wrong length ({n} entries for {num_nodes} nodes)"
    cut = int(d.get("edge_cut", -1))
    if d.get("digest") != _parts_digest(parts, cut):
        return None, 0, "hash mismatch (the stored parts were altered)"
    parts = parts.to(torch.int64)
    if parts.numel() and (int(parts.min()) < 0 or int(parts.max()) >= num_parts):
        return None, 0, f"parts out of range [0, {num_parts})"
    return parts, cut, ""


def _save(path: str, key: str, parts: Tensor, edge_cut: int) -> None:
    atomic_torch_save(path, {"format": FORMAT, "key": key, "parts": parts, "edge_cut": edge_cut,
                             "digest": _parts_digest(parts, edge_cut)})


def partition_graph(edge_index: Tensor, num_nodes: int, num_parts: int, *, seed: int = 0,
                    ufactor: int = DEFAULT_UFACTOR, recursive: Optional[bool] = None,
                    cache_dir: Optional[str] = None, use_cache: bool = True) -> Partition:
    """Partition the graph into ``num_parts`` parts with METIS, through the cache.

    ``cache_dir=None`` is ``<data root>/partitions``; ``use_cache=False`` neither reads nor writes.
    """
    t0 = time.perf_counter()
    check_request(num_nodes, int(edge_index.shape[1]), num_parts)
    ei = edge_index.detach().to("cpu", torch.int64)
    key = hash_tensors(ei, extra=f"nodes={num_nodes}|" + _options_text(num_parts, seed, ufactor, recursive))
    path = None
    if use_cache:
        path = os.path.join(cache_dir or default_cache_dir(), f"metis-p{num_parts}-{key}.pt")
        if os.path.exists(path):
            parts, cut, reason = _load_verified(path, key, num_nodes, num_parts)
            if parts is not None:
                return Partition(parts, num_parts, cut, time.perf_counter() - t0, True, path, key)
            warnings.warn(f"partition cache {path} rejected: {reason}; recomputing it", stacklevel=2)
    check_metis_memory(num_nodes, ei.shape[1])  # before the CSR build: E entries (a symmetric graph's count)
    xadj, adjncy = metis_graph(ei, num_nodes)
    del ei
    check_request(num_nodes, adjncy.numel(), num_parts)  # only self-loops: no edge left for METIS
    check_metis_memory(num_nodes, adjncy.numel())
    parts, cut = run_metis(xadj, adjncy, num_parts, seed=seed, ufactor=ufactor, recursive=recursive)
    del xadj, adjncy
    if path is not None:
        _save(path, key, parts.to(torch.int32 if num_parts < 2**31 else torch.int64), cut)
    return Partition(parts, num_parts, cut, time.perf_counter() - t0, False, path, key)


def induced_subgraph(edge_index: Tensor, mask: Tensor) -> Tuple[Tensor, Tensor]:
    """The edges with both ends in ``mask`` ``[N]`` (bool), relabeled to ``0..k-1`` in node order.

    Returns ``(edge_index [2, E'], nodes [k])`` with ``nodes`` the global ids of the kept nodes
    (:func:`gnnkit.sparse.subgraph.induced_edges` on them).
    """
    nodes = mask.nonzero().view(-1)
    return induced_edges(edge_index, nodes, mask.numel()), nodes
