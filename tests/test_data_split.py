"""Seeded splits: sizes, disjointness, unlabeled nodes left out, determinism."""
import pytest
import torch

from gnnkit.data.split import make_split, planetoid_split, random_split
from gnnkit.errors import GnnkitError


def labels():
    y = torch.arange(300) % 3  # 100 per class
    y[::10] = -1               # 30 unlabeled
    return y


def test_planetoid_split_sizes_and_classes():
    y = labels()
    train, val, test = planetoid_split(y, 3, per_class=5, num_val=50, num_test=100, seed=1)
    assert torch.bincount(y[train], minlength=3).tolist() == [5, 5, 5]
    assert [int(m.sum()) for m in (train, val, test)] == [15, 50, 100]
    assert not bool((train & val).any() or (train & test).any() or (val & test).any())
    assert not bool(((train | val | test) & (y < 0)).any())


def test_small_class_gives_all_its_nodes():
    y = torch.tensor([0] * 30 + [1] * 3)
    train, _, _ = planetoid_split(y, 2, per_class=5, num_val=5, num_test=5)
    assert torch.bincount(y[train]).tolist() == [5, 3]


def test_random_split_fractions_and_seed():
    y = labels()
    a = random_split(y, 0.5, 0.25, seed=3)
    assert [int(m.sum()) for m in a] == [135, 68, 67]  # of 270 labeled nodes
    assert all(torch.equal(p, q) for p, q in zip(a, random_split(y, 0.5, 0.25, seed=3)))
    assert not torch.equal(a[0], random_split(y, 0.5, 0.25, seed=4)[0])


@pytest.mark.parametrize("call, message", [
    (lambda y: random_split(y, 0.8, 0.3), r"sum to at most 1, got train_frac=0.8, val_frac=0.3"),
    (lambda y: planetoid_split(y, 3, num_val=500), r"needs 1500 labeled nodes outside the training set"),
    (lambda y: make_split(y, 3, "stratified"), r"unknown split 'stratified'; known: auto, planetoid, random"),
])
def test_bad_split_requests(call, message):
    with pytest.raises(GnnkitError, match=message):
        call(labels())
