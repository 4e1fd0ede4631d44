"""FeatureStore: node features, labels and masks, fetched by name and node ids.

Every sampler, task and evaluation reads node data through :meth:`FeatureStore.get`, never by
indexing a tensor itself, so the same code runs on an in-memory graph, a memory-mapped store on disk
(which reads the rows in sorted id order, so the page cache and read-ahead help) or a partitioned
store (which asks the owner of remote rows). Names: ``"x"`` ``[N, F]``, ``"y"`` ``[N]`` or ``[N, T]``,
``"train_mask"``/``"val_mask"``/``"test_mask"`` ``[N]`` bool, plus any other node tensor the
dataset carries.
"""
from __future__ import annotations

import abc
from typing import Any, Dict, List, Optional, Tuple

import torch
from torch import Tensor

from gnnkit.errors import GnnkitError


class FeatureStore(abc.ABC):
    """Node tensors by name."""

    @abc.abstractmethod
    def names(self) -> List[str]:
        """The names :meth:`get` answers, sorted."""

    @abc.abstractmethod
    def shape(self, name: str) -> Tuple[int, ...]:
        """The full shape of tensor ``name`` (first dimension ``N``)."""

    @abc.abstractmethod
    def dtype(self, name: str) -> torch.dtype:
        """The dtype :meth:`get` returns for ``name``."""

    @abc.abstractmethod
    def get(self, name: str, ids: Optional[Tensor] = None) -> Tensor:
        """Rows ``ids`` ``[n]`` (int64 node ids, any order, repeats allowed) of tensor ``name``:
        ``[n, ...]`` in the order of ``ids``; ``ids=None`` gives all ``N`` rows (on a memory backend
        the tensor itself: read it, never write it)."""

    @property
    @abc.abstractmethod
    def meta(self) -> Dict[str, Any]:
        """Graph-level facts: ``num_classes``, ``evaluator_name``, ``is_symmetric``, ``name``... (may lack keys)."""

    def check(self, name: str) -> None:
        """Raise a :class:`GnnkitError` naming the known tensors when ``name`` is not one."""
        if name not in self.names():
            raise GnnkitError(f"the feature store has no tensor {name!r}; it holds {', '.join(self.names())}")

    def index(self, mask_name: str) -> Tensor:
        """The ids ``[m]`` (ascending) where the bool tensor ``mask_name`` is set, e.g. the training nodes."""
        return self.get(mask_name).nonzero().view(-1)

    def with_dtype(self, name: str, dtype: torch.dtype) -> "FeatureStore":
        """A store whose ``get(name, ...)`` returns ``dtype`` (the others unchanged); ``self`` when
        ``name`` already comes as ``dtype``. This default casts each read; a backend that can hold
        the tensor in ``dtype`` (the in-memory one) converts once instead."""
        if self.dtype(name) == dtype:
            return self
        return CastFeatureStore(self, name, dtype)


class CastFeatureStore(FeatureStore):
    """``base`` with tensor ``name`` cast to ``dtype`` after each read (rows are gathered first,
    then cast: ``[n, ...]`` of ``dtype``)."""

    def __init__(self, base: FeatureStore, name: str, dtype: torch.dtype):
        base.check(name)
        self.base, self.name, self.cast_dtype = base, name, dtype

    def names(self) -> List[str]:
        return self.base.names()

    def shape(self, name: str) -> Tuple[int, ...]:
        return self.base.shape(name)

    def dtype(self, name: str) -> torch.dtype:
        return self.cast_dtype if name == self.name else self.base.dtype(name)

    def get(self, name: str, ids: Optional[Tensor] = None) -> Tensor:
        out = self.base.get(name, ids)
        return out.to(self.cast_dtype) if name == self.name else out

    @property
    def meta(self) -> Dict[str, Any]:
        return self.base.meta

    def with_dtype(self, name: str, dtype: torch.dtype) -> FeatureStore:
        if name == self.name:  # re-cast from the base, not from this store's cast
            return self.base.with_dtype(name, dtype)
        return super().with_dtype(name, dtype)
