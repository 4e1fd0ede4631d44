"""Seeded train/validation/test splits of the labeled nodes.

Both functions take ``y`` int64 ``[N]`` (``-1`` = unlabeled) and return three disjoint bool
``[N]`` masks ``(train, val, test)``; an unlabeled node is in none of them. The same seed gives
the same masks. :func:`make_split` picks one by name for the loaders that have no split of their
own (npz, networkx, csbm).
"""
from __future__ import annotations

from typing import Optional, Tuple

import torch
from torch import Tensor

from gnnkit.errors import GnnkitError

Masks = Tuple[Tensor, Tensor, Tensor]
SPLITS = ("auto", "planetoid", "random")


def _masks_from(n: int, *index_sets: Tensor) -> Masks:
    out = []
    for idx in index_sets:
        m = torch.zeros(n, dtype=torch.bool)
        m[idx] = True
        out.append(m)
    return tuple(out)


def _shuffled_labeled(y: Tensor, seed: int) -> Tensor:
    labeled = (y >= 0).nonzero().view(-1)
    # Salted: a generator that drew the graph with the same seed (csbm) must not give the same
    # permutation here, or the split would follow the generator's node order.
    gen = torch.Generator().manual_seed(int(seed) * 1_000_003 + 0x5EED)
    return labeled[torch.randperm(labeled.numel(), generator=gen)]


def planetoid_split(y: Tensor, num_classes: int, per_class: int = 20, num_val: int = 500,
                    num_test: int = 1000, seed: int = 0) -> Masks:
    """Planetoid-style split (Yang et al., 2016): ``per_class`` random training nodes of each
    class (all of a class that has fewer), then ``num_val`` validation and ``num_test`` test nodes
    drawn at random from the remaining labeled nodes.

    Raises :class:`~gnnkit.errors.GnnkitError` when fewer than ``num_val + num_test`` labeled
    nodes remain after the training draw.
    """
    if min(per_class, num_val, num_test) < 0:
        raise GnnkitError(f"split sizes must be >= 0, got per_class={per_class}, num_val={num_val}, "
                          f"num_test={num_test}")
    order = _shuffled_labeled(y, seed)
    cls = y[order]
    cls_sorted, pos = torch.sort(cls, stable=True)  # random order within each class
    counts = torch.bincount(cls_sorted, minlength=num_classes)
    starts = torch.cumsum(counts, 0) - counts
    rank = torch.arange(cls_sorted.numel()) - starts[cls_sorted]  # rank of the node in its class
    in_train = torch.zeros(order.numel(), dtype=torch.bool)
    in_train[pos[rank < per_class]] = True
    train, rest = order[in_train], order[~in_train]
    if rest.numel() < num_val + num_test:
        raise GnnkitError(f"planetoid split needs {num_val + num_test} labeled nodes outside the training "
                          f"set (num_val={num_val} + num_test={num_test}) but only {rest.numel()} remain; "
                          f"lower num_val/num_test or use split='random'")
    return _masks_from(y.numel(), train, rest[:num_val], rest[num_val:num_val + num_test])


def random_split(y: Tensor, train_frac: float = 0.6, val_frac: float = 0.2, seed: int = 0) -> Masks:
    """Random split of the labeled nodes: ``round(train_frac * L)`` training and
    ``round(val_frac * L)`` validation nodes, the rest test (``L`` = number of labeled nodes)."""
    if not (0 <= train_frac <= 1 and 0 <= val_frac <= 1 and train_frac + val_frac <= 1 + 1e-9):
        raise GnnkitError(f"split fractions must lie in [0, 1] and sum to at most 1, got "
                          f"train_frac={train_frac}, val_frac={val_frac}")
    order = _shuffled_labeled(y, seed)
    n_train = round(train_frac * order.numel())
    n_val = min(round(val_frac * order.numel()), order.numel() - n_train)
    return _masks_from(y.numel(), order[:n_train], order[n_train:n_train + n_val], order[n_train + n_val:])


def fits_planetoid(y: Tensor, num_classes: int, per_class: int = 20, num_val: int = 500,
                   num_test: int = 1000) -> bool:
    """Whether :func:`planetoid_split` has enough labeled nodes: ``num_val + num_test`` beyond the
    ``min(count_c, per_class)`` training nodes of every class."""
    labeled = y[y >= 0]
    counts = torch.bincount(labeled, minlength=num_classes) if labeled.numel() else torch.zeros(1, dtype=torch.long)
    return int(labeled.numel() - counts.clamp(max=per_class).sum()) >= num_val + num_test


def describe_split(split: str, y: Tensor, num_classes: int, **options) -> str:
    """The split :func:`make_split` draws for ``split`` (``"auto"`` resolved), in words."""
    if split == "auto":
        keys = ("per_class", "num_val", "num_test")
        fits = fits_planetoid(y, num_classes, **{k: options[k] for k in keys if k in options})
        split = "planetoid" if fits else "random"
        if not fits:
            return (f"random {options.get('train_frac', 0.6):g}/{options.get('val_frac', 0.2):g}/rest of the "
                    f"{int((y >= 0).sum())} labeled nodes; the default, too few for a planetoid split")
    if split == "planetoid":
        return (f"planetoid: {options.get('per_class', 20)} per class / {options.get('num_val', 500)} / "
                f"{options.get('num_test', 1000)}")
    return f"random {options.get('train_frac', 0.6):g}/{options.get('val_frac', 0.2):g}/rest"


def make_split(y: Tensor, num_classes: int, split: str = "planetoid", *, per_class: int = 20,
               num_val: int = 500, num_test: int = 1000, train_frac: float = 0.6, val_frac: float = 0.2,
               split_seed: Optional[int] = 0) -> Masks:
    """The split named ``split`` with its options: ``"planetoid"``, ``"random"``, or ``"auto"``:
    planetoid when the graph has enough labeled nodes for it (:func:`fits_planetoid`), else random
    ``train_frac``/``val_frac``/rest, so that a graph of any size gets a split that fits it."""
    seed = 0 if split_seed is None else split_seed
    if split == "auto":
        split = "planetoid" if fits_planetoid(y, num_classes, per_class, num_val, num_test) else "random"
    if split == "planetoid":
        return planetoid_split(y, num_classes, per_class, num_val, num_test, seed)
    if split == "random":
        return random_split(y, train_frac, val_frac, seed)
    raise GnnkitError(f"unknown split {split!r}; known: {', '.join(SPLITS)}")


def attach_split(data, split: str = "planetoid", **options):
    """Set ``train_mask``/``val_mask``/``test_mask`` of ``data`` from :func:`make_split` and
    ``data.split_info`` (the split in words, for run headers); returns ``data``."""
    data.train_mask, data.val_mask, data.test_mask = make_split(data.y, data.num_classes, split, **options)
    data.split_info = describe_split(split, data.y, data.num_classes, **options)
    return data
