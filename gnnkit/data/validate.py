"""Validation of a node-classification graph: :func:`validate`.

A graph is a PyG ``Data`` with

- ``edge_index`` int64 ``[2, E]`` (PyG flow: column ``e`` is the message ``edge_index[0, e] ->
  edge_index[1, e]``), node ids in ``[0, N)``;
- ``x`` floating point ``[N, F]``, every value finite;
- ``y`` int64 ``[N]`` in ``[-1, num_classes)``, ``-1`` marking an unlabeled node;
- ``train_mask``, ``val_mask``, ``test_mask`` bool ``[N]``, pairwise disjoint, labeled nodes only;
- ``num_classes`` an int >= 1 (0 only when no node is labeled).

Each violation raises :class:`~gnnkit.errors.GraphValidationError` naming the field and the
offending count and first index. Self-loops and duplicate edges are legal but reported with a
:class:`GraphWarning`; ``fix=True`` removes them (the first copy of a duplicate is kept, the edge
order is otherwise kept, and every edge-level attribute is filtered alike).

Everything is a tensor operation over all edges: on 62M edges the checks take a few seconds.
Duplicates are found with one comparison pass when the edges are sorted by ``(row, col)`` (as
:func:`gnnkit.data.csbm.csbm` and coalesced graphs give them), otherwise with one sort.
"""
from __future__ import annotations

import warnings

import torch
from torch import Tensor
from torch_geometric.data import Data

from gnnkit.errors import GraphValidationError

MASKS = ("train_mask", "val_mask", "test_mask")


class GraphWarning(UserWarning):
    """A legal but suspicious graph property (self-loops, duplicate edges)."""


def _first(mask: Tensor) -> int:
    """Index of the first True of a 1-d bool tensor."""
    return int(mask.nonzero()[0, 0])


def edge_keys(edge_index: Tensor, num_nodes: int) -> Tensor:
    """``row * N + col`` as int64 ``[E]``: one integer per directed edge, ordered like ``(row, col)``."""
    return edge_index[0].long() * num_nodes + edge_index[1].long()


def duplicate_mask(edge_index: Tensor, num_nodes: int) -> Tensor:
    """Bool ``[E]``: True for every copy of an edge after its first occurrence."""
    key = edge_keys(edge_index, num_nodes)
    dup = torch.zeros(key.numel(), dtype=torch.bool)
    if key.numel() < 2:
        return dup
    if bool((key[1:] >= key[:-1]).all()):  # sorted: neighbours suffice, no sort needed
        dup[1:] = key[1:] == key[:-1]
        return dup
    sorted_key, perm = torch.sort(key, stable=True)  # stable: the first occurrence stays first
    dup[perm[1:]] = sorted_key[1:] == sorted_key[:-1]
    return dup


def _check_edge_index(data: Data, n: int) -> Tensor:
    ei = getattr(data, "edge_index", None)
    if not isinstance(ei, Tensor) or ei.dim() != 2 or ei.size(0) != 2:
        shape = tuple(ei.shape) if isinstance(ei, Tensor) else type(ei).__name__
        raise GraphValidationError(f"edge_index must be a 2 x E integer tensor, got {shape}")
    if ei.dtype.is_floating_point or ei.dtype in (torch.bool, torch.complex64, torch.complex128):
        raise GraphValidationError(f"edge_index must hold integers, got dtype {ei.dtype}")
    if ei.numel() == 0:
        return ei
    lo, hi = torch.aminmax(ei)
    if int(lo) >= 0 and int(hi) < n:  # one pass; the counting below runs only on a bad graph
        return ei
    neg = ei < 0
    if bool(neg.any()):
        col = _first(neg.any(0))
        raise GraphValidationError(f"edge_index has {int(neg.sum())} negative node ids "
                                   f"(first at column {col}: {ei[:, col].tolist()})")
    big = ei >= n
    if bool(big.any()):
        col = _first(big.any(0))
        raise GraphValidationError(f"edge_index has {int(big.sum())} node ids >= num_nodes={n} "
                                   f"(first at column {col}: {ei[:, col].tolist()})")
    return ei


def _check_x(x, n: int) -> None:
    if x is None:
        return
    if not isinstance(x, Tensor) or x.dim() != 2:
        shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
        raise GraphValidationError(f"x must be a 2-d [num_nodes, num_features] tensor, got {shape}")
    if x.size(0) != n:
        raise GraphValidationError(f"x has {x.size(0)} rows but the graph has {n} nodes")
    if not x.dtype.is_floating_point:
        raise GraphValidationError(f"x must hold floating-point features, got dtype {x.dtype} "
                                   f"(gnnkit.data.load(data) converts integer and bool features)")
    # NaN and inf propagate through a sum, so a finite sum proves all values finite in one pass;
    # an overflowing sum of finite values only sends us to the exact count below.
    if x.dtype.is_floating_point and not bool(torch.isfinite(x.sum())):
        bad = ~torch.isfinite(x)
        if bool(bad.any()):
            rows = bad.any(1)
            raise GraphValidationError(f"x has {int(bad.sum())} NaN or inf values in {int(rows.sum())} rows "
                                       f"(first at node {_first(rows)})")


def _check_y(data: Data, n: int) -> None:
    y = getattr(data, "y", None)
    if y is None:
        return
    if not isinstance(y, Tensor) or y.dim() != 1:
        shape = tuple(y.shape) if isinstance(y, Tensor) else type(y).__name__
        raise GraphValidationError(f"y must be a 1-d [num_nodes] tensor of class ids, got {shape}")
    if y.numel() != n:
        raise GraphValidationError(f"y has {y.numel()} labels but the graph has {n} nodes")
    if y.dtype.is_floating_point or y.dtype == torch.bool:
        raise GraphValidationError(f"y must hold integer class ids, got dtype {y.dtype}")
    c = getattr(data, "num_classes", None)
    if not isinstance(c, int) or isinstance(c, bool) or c < 0:
        raise GraphValidationError(f"num_classes must be a non-negative int, got {c!r} "
                                   f"(gnnkit.data.load(data) infers it from y)")
    bad = (y < -1) | (y >= c)
    if bool(bad.any()):
        i = _first(bad)
        raise GraphValidationError(f"y has {int(bad.sum())} labels outside [-1, num_classes={c}) "
                                   f"(first at node {i}: {int(y[i])})")


def _check_masks(data: Data, n: int) -> None:
    y = getattr(data, "y", None)
    present = [(k, getattr(data, k)) for k in MASKS if getattr(data, k, None) is not None]
    for name, m in present:
        if not isinstance(m, Tensor) or m.dtype != torch.bool or m.dim() != 1:
            desc = f"{m.dtype} {tuple(m.shape)}" if isinstance(m, Tensor) else type(m).__name__
            raise GraphValidationError(f"{name} must be a 1-d bool tensor, got {desc}")
        if m.numel() != n:
            raise GraphValidationError(f"{name} has {m.numel()} entries but the graph has {n} nodes")
        if isinstance(y, Tensor):
            unl = m & (y < 0)
            if bool(unl.any()):
                raise GraphValidationError(f"{name} holds {int(unl.sum())} unlabeled nodes (y = -1), "
                                           f"first node {_first(unl)}")
    for i, (a, ma) in enumerate(present):
        for b, mb in present[i + 1:]:
            both = ma & mb
            if bool(both.any()):
                raise GraphValidationError(f"{a} and {b} overlap in {int(both.sum())} nodes "
                                           f"(first node {_first(both)})")


def _int_array(a, what: str):
    import numpy as np

    a = np.asarray(a)
    if a.ndim != 1 or a.dtype.kind not in "iu":
        raise GraphValidationError(f"{what} must be a 1-d integer array, got {a.dtype} {a.shape}")
    return a


def check_csr(indptr, indices, data, shape, what: str) -> None:
    """Check the parts of a CSR matrix before scipy sees them (scipy trusts them: a non-monotone
    ``indptr`` reads out of bounds). ``indptr`` int ``[R + 1]`` starting at 0, non-decreasing,
    ending at ``len(indices)``; ``indices`` int ``[nnz]`` in ``[0, C)``; ``data`` ``[nnz]`` (or
    None); ``shape = (R, C)`` non-negative ints. Raises :class:`GraphValidationError` naming ``what``."""
    import numpy as np

    shape = np.asarray(shape)
    if shape.shape != (2,) or shape.dtype.kind not in "iu" or bool((shape < 0).any()):
        raise GraphValidationError(f"{what}: shape must be two non-negative integers, got {shape.tolist()}")
    rows, cols = (int(s) for s in shape)
    indptr, indices = _int_array(indptr, f"{what} indptr"), _int_array(indices, f"{what} indices")
    if indptr.size != rows + 1:
        raise GraphValidationError(f"{what}: indptr has {indptr.size} entries, a {rows}-row matrix needs {rows + 1}")
    if int(indptr[0]) != 0 or int(indptr[-1]) != indices.size:
        raise GraphValidationError(f"{what}: indptr must run from 0 to nnz={indices.size}, "
                                   f"got {int(indptr[0])} .. {int(indptr[-1])}")
    down = np.diff(indptr.astype(np.int64)) < 0
    if bool(down.any()):
        raise GraphValidationError(f"{what}: indptr decreases at row {int(down.argmax())} (it must be non-decreasing)")
    if indices.size and (int(indices.min()) < 0 or int(indices.max()) >= cols):
        bad = int(((indices < 0) | (indices >= cols)).argmax())
        raise GraphValidationError(f"{what}: column index {int(indices[bad])} at entry {bad} is outside [0, {cols})")
    if data is not None and np.asarray(data).shape != (indices.size,):
        raise GraphValidationError(f"{what}: data has shape {np.asarray(data).shape}, expected ({indices.size},)")
    if data is not None and np.asarray(data).dtype.kind not in "biuf":
        raise GraphValidationError(f"{what}: data must be numeric, got dtype {np.asarray(data).dtype}")


def _check_rows(shape, nnz: int, what: str) -> None:
    """The CSR a conversion builds: ``indptr`` int64 ``[R + 1]`` plus indices and values per entry."""
    from .limits import check_allocation

    check_allocation(8.0 * (float(shape[0]) + 1) + 16.0 * nnz, f"{what}: a [{int(shape[0])} x {int(shape[1])}] "
                                                                f"sparse matrix")


def sparse_to_csr(obj, what: str):
    """See :func:`_sparse_to_csr`; an allocation the process is refused is a GraphValidationError."""
    try:
        return _sparse_to_csr(obj, what)
    except MemoryError:
        raise GraphValidationError(f"{what}: the sparse matrix does not fit in this process's memory") from None


def _sparse_to_csr(obj, what: str):
    """A scipy CSR/CSC/COO matrix that came out of a file (its attributes set by the unpickler, no
    constructor ran) as a fresh ``csr_matrix``, built only from its arrays after they are checked:
    scipy's conversions trust them and read out of bounds on bad ones."""
    import numpy as np
    import scipy.sparse as sp

    parts = getattr(obj, "__dict__", {})
    shape = np.asarray(parts.get("_shape", parts.get("shape", ())))
    fmt = obj.format if sp.issparse(obj) else None
    if fmt == "csr":
        check_csr(parts.get("indptr"), parts.get("indices"), parts.get("data"), shape, what)
        return sp.csr_matrix((parts["data"], parts["indices"], parts["indptr"]), shape=tuple(int(v) for v in shape))
    if fmt == "csc":  # the CSR of the transpose
        check_csr(parts.get("indptr"), parts.get("indices"), parts.get("data"), shape[::-1], what)
        _check_rows(shape, np.asarray(parts["indices"]).size, what)
        return sp.csc_matrix((parts["data"], parts["indices"], parts["indptr"]),
                             shape=tuple(int(v) for v in shape)).tocsr()
    if fmt == "coo":
        coords = parts.get("coords") or (parts.get("row"), parts.get("col"))
        if len(coords) != 2 or shape.shape != (2,) or shape.dtype.kind not in "iu":
            raise GraphValidationError(f"{what}: a COO matrix needs row and column arrays and a 2-d shape")
        for arr, size, axis in ((coords[0], shape[0], "row"), (coords[1], shape[1], "column")):
            arr = _int_array(arr, f"{what} {axis} indices")
            if arr.size and (int(arr.min()) < 0 or int(arr.max()) >= int(size)):
                raise GraphValidationError(f"{what}: {axis} index outside [0, {int(size)})")
        data = np.asarray(parts.get("data"))
        if data.shape != np.asarray(coords[0]).shape or np.asarray(coords[1]).shape != data.shape:
            raise GraphValidationError(f"{what}: COO row, column and data arrays differ in length")
        _check_rows(shape, data.size, what)
        return sp.coo_matrix((data, (coords[0], coords[1])), shape=tuple(int(v) for v in shape)).tocsr()
    raise GraphValidationError(f"{what}: unsupported sparse format {fmt!r} (csr, csc or coo)")


def num_nodes_of(data: Data) -> int:
    """``N``: the rows of ``x`` when present, else ``data.num_nodes`` (never guessed from edges)."""
    x = getattr(data, "x", None)
    if isinstance(x, Tensor) and x.dim() >= 1:
        return x.size(0)
    n = data.num_nodes
    return int(n) if n is not None else 0


def validate(data: Data, *, fix: bool = False) -> Data:
    """Check ``data`` (see the module docstring) and return it.

    With ``fix=True`` self-loops and duplicate edges are removed in place; otherwise they only
    raise a :class:`GraphWarning`. Raises :class:`~gnnkit.errors.GraphValidationError`.
    """
    n = num_nodes_of(data)
    if n == 0:
        raise GraphValidationError("empty graph: 0 nodes")
    _check_x(getattr(data, "x", None), n)
    stored = data._store.get("num_nodes")  # noqa: SLF001 - an explicit num_nodes, when one was set
    if stored is not None and int(stored) != n:
        raise GraphValidationError(f"x has {n} rows but num_nodes is {int(stored)}")
    _check_y(data, n)
    _check_masks(data, n)
    ei = _check_edge_index(data, n)
    if ei.numel() == 0:
        return data
    loops = ei[0] == ei[1]
    dups = duplicate_mask(ei, n)
    n_loops, n_dups = int(loops.sum()), int(dups.sum())
    if not (n_loops or n_dups):
        return data
    if not fix:
        warnings.warn(f"graph has {n_loops} self-loops and {n_dups} duplicate edges; "
                      f"load(..., normalize=True) or validate(..., fix=True) removes them", GraphWarning,
                      stacklevel=2)
        return data
    keep = ~(loops | dups)
    num_edges = ei.size(1)
    for key, value in list(data.items()):
        if isinstance(value, Tensor) and key != "edge_index" and data.is_edge_attr(key) \
                and value.size(0) == num_edges:
            data[key] = value[keep]
    data.edge_index = ei[:, keep]
    return data
