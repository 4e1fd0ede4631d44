"""Evaluation protocols over graphs: stratified k-fold cross validation, an inner validation split
(Errica et al., ICLR 2020), and OGB's official (scaffold) split.

Stratified folds, seeded: draw one random permutation of the ``G`` graphs, order it stably by
class (random order inside each class), and deal the result round-robin to the ``k`` folds:
position ``p`` goes to fold ``p mod k``. Each class's members are dealt consecutively, so fold
``f`` holds ``floor`` or ``ceil`` of ``n_c / k`` graphs of every class ``c``, and the folds are
disjoint and cover ``0..G-1``. Fold ``f``'s test set is its own graphs, its training set the rest.

Inner split (Errica et al.: model selection never sees the test fold): inside a training set,
the first ``round(frac · n_c)`` graphs of each class in a seeded random order become validation.
The GIN paper's protocol instead selects the epoch of the best mean validation curve over folds
(with the test fold as validation); both use these folds.
"""
from __future__ import annotations

from typing import Dict, List, Tuple

import torch
from torch import Tensor

from gnnkit.errors import GnnkitError
from gnnkit.samplers.loader import derive_seed


def _class_order(y: Tensor, seed: int) -> Tensor:
    """Ids ``0..len(y)-1`` grouped by class (classes ascending), seeded random order inside each."""
    gen = torch.Generator().manual_seed(seed)
    perm = torch.randperm(y.numel(), generator=gen)
    return perm[torch.sort(y[perm], stable=True).indices]


def _labels(y: Tensor) -> Tensor:
    if y.dim() == 2 and y.shape[1] == 1:
        y = y.view(-1)
    if y.dim() != 1:
        raise GnnkitError(f"stratified splits need one class per graph, y is {tuple(y.shape)}")
    if y.is_floating_point():
        y = torch.nan_to_num(y, nan=-1.0)
    return y.long()


def stratified_kfold(y: Tensor, k: int = 10, seed: int = 0) -> List[Tuple[Tensor, Tensor]]:
    """``k`` pairs ``(train_ids, test_ids)`` (sorted int64) of stratified, disjoint, covering folds."""
    y = _labels(y)
    g = y.numel()
    if not 2 <= k <= g:
        raise GnnkitError(f"folds must be between 2 and the number of graphs ({g}), got {k}")
    order = _class_order(y, derive_seed(seed, 1))
    fold = torch.empty(g, dtype=torch.long)
    fold[order] = torch.arange(g) % k
    ids = torch.arange(g)
    return [(ids[fold != f], ids[fold == f]) for f in range(k)]


def inner_split(y: Tensor, train_ids: Tensor, val_fraction: float = 0.1, seed: int = 0) -> Tuple[Tensor, Tensor]:
    """``(train, val)`` (sorted) out of ``train_ids``: a stratified holdout of ``val_fraction``."""
    if not 0.0 < val_fraction < 1.0:
        raise GnnkitError(f"val_fraction must be in (0, 1), got {val_fraction}")
    y = _labels(y)[train_ids]
    order = _class_order(y, derive_seed(seed, 2))
    cls = y[order]
    classes, counts = torch.unique_consecutive(cls, return_counts=True)
    start = torch.cumsum(counts, 0) - counts
    rank = torch.arange(cls.numel()) - torch.repeat_interleave(start, counts)
    take = torch.round(counts.double() * val_fraction).long()
    is_val = torch.zeros(cls.numel(), dtype=torch.bool)
    is_val[order] = rank < torch.repeat_interleave(take, counts)
    return train_ids[~is_val].sort().values, train_ids[is_val].sort().values


def official_split(coll) -> Dict[str, Tensor]:
    """OGB's split of an ``ogbg-*`` collection (``get_idx_split()``: scaffold for molecules):
    ``{"train", "valid", "test"}`` -> int64 graph ids."""
    split = coll.meta.get("split")
    if split is None:
        raise GnnkitError(f"{coll.name} has no official split (use stratified k-fold cross validation)")
    return split
