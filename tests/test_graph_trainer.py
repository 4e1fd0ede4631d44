"""The graph task and sampler through the Trainer (issue 24): GIN learns MUTAG on a fold, MolGIN
learns a miniature ogbg-molhiv set scored by OGB's metric, and the figures are the task's own."""
from __future__ import annotations

import pytest
import torch

from gnnkit import Trainer
from gnnkit.errors import GnnkitError
from gnnkit.graphs import (GraphClassification, GraphCollection, GraphSampler, inner_split, load_ogbg, load_tu,
                           stratified_kfold)
from gnnkit.models.gin import GIN
from gnnkit.models.mol import MolGIN
from test_graph_batching import random_graphs
from test_graph_ogb import write_mini_ogbg
from test_graph_tu import tu_root  # noqa: F401 - the fixture


def _trainer(**kw):
    return Trainer(task=GraphClassification(), sampler=GraphSampler(batch_size=32), progress=False, device="cpu",
                   **kw)


def test_gin_learns_mutag_through_the_trainer(tu_root):  # noqa: F811
    coll = load_tu("MUTAG", tu_root)
    train, test = stratified_kfold(coll.y, 5, seed=0)[0]
    train, val = inner_split(coll.y, train, 0.1, seed=0)
    fold = coll.with_split(train, val, test)
    model = GIN(coll.num_features, 32, coll.num_classes, num_layers=4)
    result = _trainer(max_epochs=40, seed=0).fit(model, fold)
    majority = float(torch.bincount(coll.y[test]).max()) / test.numel()
    assert result["selected_on"] == "val_accuracy" and len(result["history"]) == 40
    assert result["test"] >= majority + 0.1, (result["test"], majority)
    assert {"test_accuracy", "test_loss", "val_accuracy", "train_accuracy"} <= set(result["metrics"])


def test_same_seed_same_weights():
    coll = GraphCollection.from_data_list(random_graphs(count=40))
    fold = coll.with_split(torch.arange(0, 30), torch.arange(30, 35), torch.arange(35, 40))
    states = []
    for _ in range(2):
        torch.manual_seed(0)
        model = GIN(coll.num_features, 8, coll.num_classes, num_layers=2)
        _trainer(max_epochs=3, seed=7).fit(model, fold)
        states.append(model.state_dict())
    assert all(torch.equal(states[0][k], states[1][k]) for k in states[0])


def test_mol_gin_through_the_trainer_with_ogb_metric(tmp_path):
    write_mini_ogbg(tmp_path, graphs=120)
    coll = load_ogbg("ogbg-molhiv", tmp_path)
    torch.manual_seed(0)
    model = MolGIN(1, 32, num_layers=2, dropout=0.0, virtual_node=True)
    result = _trainer(max_epochs=25, seed=0).fit(model, coll)
    assert result["selected_on"] == "val_rocauc"
    assert "test_ap" in result["metrics"] and result["metrics"]["train_rocauc"] > 0.9


def test_graph_task_needs_a_split():
    coll = GraphCollection.from_data_list(random_graphs(count=10))
    model = GIN(coll.num_features, 8, coll.num_classes, num_layers=2)
    with pytest.raises(GnnkitError, match="has no split"):
        _trainer(max_epochs=1).fit(model, coll)


def test_resume_gives_the_uninterrupted_weights(tmp_path):
    coll = GraphCollection.from_data_list(random_graphs(count=40))
    fold = coll.with_split(torch.arange(0, 30), torch.arange(30, 35), torch.arange(35, 40))

    def run(epochs):
        torch.manual_seed(0)
        model = GIN(coll.num_features, 8, coll.num_classes, num_layers=2)
        _trainer(max_epochs=epochs, seed=3, checkpoint_dir=str(tmp_path / "ck")).fit(model, fold)
        return model.state_dict()

    straight = run(4)
    (tmp_path / "ck").rename(tmp_path / "old")
    run(2)
    resumed = _trainer(max_epochs=4, seed=3, checkpoint_dir=str(tmp_path / "ck"))
    torch.manual_seed(0)
    model = GIN(coll.num_features, 8, coll.num_classes, num_layers=2)
    resumed.fit(model, fold, ckpt_path="last")
    assert resumed.resumed_from is not None
    assert all(torch.equal(straight[k], model.state_dict()[k]) for k in straight)
