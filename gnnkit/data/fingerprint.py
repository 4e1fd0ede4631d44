"""Content hashes of datasets: :func:`fingerprint` (cheap, for run records and ``--resume``
checks) and :func:`hash_tensors` (the shared helper, exact or sampled; the partition cache keys
its files with it).

A tensor contributes its dtype, its shape and its bytes: all of them (``sample=None``), or the
elements at ``sample`` evenly strided positions of the flattened tensor (all elements when it
has at most ``sample``), so hashing a 62M-edge graph reads a few hundred KiB instead of 1 GB.
Two datasets with the same fingerprint have the same sizes and agree on every sampled element;
a change confined to unsampled elements of a large tensor is not seen (the price of O(sample)).
"""
from __future__ import annotations

import dataclasses
import hashlib
import math
from typing import Any, Iterable, Optional, Tuple

import torch
from torch import Tensor

SAMPLE = 1 << 16  # elements hashed per tensor by fingerprint()


def _raw_bytes(t: Tensor) -> memoryview:
    flat = t.detach().reshape(-1).contiguous().cpu()
    return memoryview(flat.view(torch.uint8).numpy()) if flat.numel() else memoryview(b"")


def _sampled(t: Tensor, sample: Optional[int]) -> Tensor:
    flat = t.detach().reshape(-1)
    if sample is None or flat.numel() <= sample:
        return flat
    step = math.ceil(flat.numel() / sample)
    return flat[::step]


def hash_tensors(*tensors: Tensor, extra: str = "", sample: Optional[int] = None) -> str:
    """blake2b (128-bit hex) of each tensor's dtype, shape and bytes (every element, or a strided
    sample of ``sample`` elements), then ``extra``."""
    h = hashlib.blake2b(digest_size=16)
    for t in tensors:
        h.update(f"{t.dtype}{tuple(t.shape)}".encode())
        h.update(_raw_bytes(_sampled(t, sample)))
    h.update(extra.encode())
    return h.hexdigest()


def _items(data: Any) -> Iterable[Tuple[str, Any]]:
    if dataclasses.is_dataclass(data) and not isinstance(data, type):  # EventStream
        return ((f.name, getattr(data, f.name)) for f in dataclasses.fields(data))
    if hasattr(data, "items"):  # a PyG Data (its stored attributes) or a dict
        return data.items()
    return vars(data).items()


def fingerprint(data: Any, *, sample: int = SAMPLE) -> str:
    """A cheap content hash of a dataset (a PyG ``Data``, an ``EventStream`` or a dict of tensors):
    every tensor attribute's name, dtype, shape and a strided sample of ``sample`` elements, plus
    the numeric attributes (``num_classes``, ``num_nodes``). Names and other strings are left out,
    so a renamed copy of a dataset has the same fingerprint. 32 hex digits."""
    tensors, extra = [], []
    for key, value in sorted(_items(data), key=lambda kv: str(kv[0])):
        if isinstance(value, Tensor):
            tensors.append(value)
            extra.append(f"{key}:t")
        elif isinstance(value, (bool, int, float)):
            extra.append(f"{key}={value!r}")
    return hash_tensors(*tensors, extra="|".join(extra), sample=sample)
