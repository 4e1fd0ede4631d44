"""Protocols (issue 24): stratified k-fold is disjoint, covering, stratified and seeded; the inner
validation split is a stratified part of the training fold."""
from __future__ import annotations

import pytest
import torch

from gnnkit.errors import GnnkitError
from gnnkit.graphs import inner_split, stratified_kfold

Y = torch.cat([torch.zeros(63), torch.ones(125), torch.full((7,), 2)]).long()[torch.randperm(195, generator=torch.Generator().manual_seed(3))]


def test_folds_disjoint_covering_stratified():
    folds = stratified_kfold(Y, 10, seed=0)
    tests = torch.cat([t for _, t in folds])
    assert sorted(tests.tolist()) == list(range(Y.numel()))  # covering and disjoint
    for train, test in folds:
        assert set(train.tolist()).isdisjoint(test.tolist()) and train.numel() + test.numel() == Y.numel()
        for c, n in ((0, 63), (1, 125), (2, 7)):
            assert (Y[test] == c).sum().item() in (n // 10, -(-n // 10))
    sizes = [t.numel() for _, t in folds]
    assert max(sizes) - min(sizes) <= 1


def test_folds_are_seeded():
    a = stratified_kfold(Y, 5, seed=1)
    b = stratified_kfold(Y, 5, seed=1)
    c = stratified_kfold(Y, 5, seed=2)
    assert all(torch.equal(x[1], y[1]) for x, y in zip(a, b))
    assert not all(torch.equal(x[1], y[1]) for x, y in zip(a, c))


def test_inner_split_stratified_within_training():
    train, _ = stratified_kfold(Y, 10, seed=0)[0]
    tr, va = inner_split(Y, train, 0.1, seed=0)
    assert sorted(torch.cat([tr, va]).tolist()) == sorted(train.tolist())
    assert set(tr.tolist()).isdisjoint(va.tolist())
    for c in (0, 1, 2):
        n = (Y[train] == c).sum().item()
        assert (Y[va] == c).sum().item() == round(n * 0.1)


def test_bad_fold_counts():
    with pytest.raises(GnnkitError, match="folds"):
        stratified_kfold(Y, 1)
    with pytest.raises(GnnkitError, match="one class per graph"):
        stratified_kfold(torch.zeros(10, 3), 2)


def test_gin_protocol_picks_the_best_mean_epoch():
    from gnnkit.graphs.protocol import summarize_folds

    test = torch.tensor([[0.5, 0.9, 0.6], [0.7, 0.6, 0.8]])  # mean curve 0.6, 0.75, 0.7 -> epoch 1
    out = summarize_folds(test, protocol="gin")
    assert out["epochs"] == [1, 1] and out["per_fold"] == pytest.approx([0.9, 0.6])
    assert out["mean"] == pytest.approx(0.75) and out["std"] == pytest.approx(0.15)


def test_errica_protocol_selects_on_validation_only():
    from gnnkit.graphs.protocol import summarize_folds

    test = torch.tensor([[0.5, 0.9, 0.6], [0.7, 0.6, 0.8]])
    val = torch.tensor([[0.8, 0.1, 0.8], [0.1, 0.2, 0.3]])  # fold 0: first max at epoch 0
    out = summarize_folds(test, val, "errica")
    assert out["epochs"] == [0, 2] and out["mean"] == pytest.approx(0.65)
    with pytest.raises(GnnkitError, match="inner validation"):
        summarize_folds(test)
    with pytest.raises(GnnkitError, match="unknown protocol"):
        summarize_folds(test, protocol="best")
