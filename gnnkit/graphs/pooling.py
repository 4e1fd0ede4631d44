"""Graph readouts: sum, mean and max pooling as segment reductions.

``h`` ``[n_b, d]`` holds the rows of ``B`` graphs in consecutive segments: graph ``k`` owns rows
``ptr[k] .. ptr[k+1] - 1`` (``ptr`` ``[B + 1]``, as :class:`~gnnkit.graphs.batching.GraphBatch`
gives it; equivalently ``batch`` ``[n_b]`` sorted, ``batch[i] = k``). Output ``[B, d]``:

* ``sum``:  ``out[k] = Σ_{i ∈ k} h_i``
* ``mean``: ``out[k] = (1 / n_k) Σ_{i ∈ k} h_i``
* ``max``:  ``out[k] = max_{i ∈ k} h_i`` (elementwise)

An empty graph (``n_k = 0``) pools to zeros. One ``torch.segment_reduce`` call each (with its own
backward: the max routes the gradient to the arg-max rows, ties split evenly).
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from gnnkit.errors import GnnkitError

POOLS = ("sum", "mean", "max")


def check_pool(kind: str) -> str:
    """``kind`` itself when it names a pooling, else a :class:`GnnkitError`."""
    if kind not in POOLS:
        raise GnnkitError(f"unknown pooling {kind!r}; known: {', '.join(POOLS)}")
    return kind


def lengths_of(ptr: Optional[Tensor] = None, batch: Optional[Tensor] = None, num_graphs: Optional[int] = None
               ) -> Tensor:
    """Segment lengths ``[B]`` from ``ptr`` ``[B + 1]`` or from a sorted ``batch`` ``[n_b]``."""
    if ptr is not None:
        return ptr.diff()
    if batch is None:
        raise GnnkitError("pooling needs ptr or batch")
    if batch.numel() > 1 and bool((batch[1:] < batch[:-1]).any()):
        raise GnnkitError("pooling needs batch sorted (each graph's rows consecutive)")
    b = num_graphs if num_graphs is not None else (int(batch[-1]) + 1 if batch.numel() else 0)
    return torch.bincount(batch, minlength=b)


def pool(h: Tensor, kind: str = "sum", *, ptr: Optional[Tensor] = None, batch: Optional[Tensor] = None,
         num_graphs: Optional[int] = None) -> Tensor:
    """``[n_b, d]`` -> ``[B, d]`` (see the module docstring)."""
    check_pool(kind)
    lengths = lengths_of(ptr, batch, num_graphs)
    if int(lengths.sum()) != h.shape[0]:
        raise GnnkitError(f"pooling: segments cover {int(lengths.sum())} rows, h has {h.shape[0]}")
    out = torch.segment_reduce(h, kind, lengths=lengths, axis=0, unsafe=True)
    if kind != "sum":  # empty segments give NaN (mean) or -inf (max): zeros instead
        out = out.masked_fill((lengths == 0).unsqueeze(1), 0.0)
    return out


def sum_pool(h: Tensor, ptr: Tensor) -> Tensor:
    return pool(h, "sum", ptr=ptr)


def mean_pool(h: Tensor, ptr: Tensor) -> Tensor:
    return pool(h, "mean", ptr=ptr)


def max_pool(h: Tensor, ptr: Tensor) -> Tensor:
    return pool(h, "max", ptr=ptr)
