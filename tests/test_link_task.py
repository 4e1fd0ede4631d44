"""The ``link`` task trained through ``Trainer.fit``: no held-out edge in the run's graph, AUC/AP
on the GAE split, OGB's metric on a miniature ogbl-collab."""
from __future__ import annotations

import pytest
import torch

from gnnkit import Trainer
from gnnkit.data.csbm import csbm
from gnnkit.link import EdgeSet
from gnnkit.models import GCN


def _data(seed=0):
    return csbm(num_nodes=800, num_classes=10, avg_degree=8, num_features=16, homophily=0.95,
                feature_snr=3.0, seed=seed)


def test_link_task_trains_through_fit_without_leakage():
    data = _data()
    torch.manual_seed(0)
    trainer = Trainer(task="link", max_epochs=60, lr=0.01, seed=0, progress=False)
    result = trainer.fit(GCN(16, 32, 16, num_layers=2, dropout=0.0), data)
    split = trainer.task.split
    graph = EdgeSet(trainer.ctx.graph.edge_index().cpu(), data.num_nodes, undirected=False)
    for held in (split.val_pos, split.test_pos):
        assert not graph.contains(held[0], held[1]).any() and not graph.contains(held[1], held[0]).any()
    assert trainer.ctx.graph.num_edges == 2 * split.train_pos.shape[1]
    assert result["val"] == result["metrics"]["val_auc"]
    assert result["test"] > 0.8 and result["metrics"]["test_ap"] > 0.8


def test_link_task_same_seed_same_weights():
    weights = []
    for _ in range(2):
        torch.manual_seed(0)
        model = GCN(16, 32, 16, num_layers=2, dropout=0.0)
        Trainer(task="link", max_epochs=5, seed=3, progress=False).fit(model, _data())
        weights.append(torch.cat([p.detach().view(-1) for p in model.parameters()]))
    assert torch.equal(weights[0], weights[1])


def test_mini_collab_through_fit_scored_by_ogb(tmp_path):
    pytest.importorskip("ogb")
    from test_link_ogbl import write_mini_collab

    from gnnkit.link.ogbl import load_ogbl

    write_mini_collab(tmp_path)
    data, split = load_ogbl("ogbl-collab", tmp_path)
    data.link_split = split
    torch.manual_seed(0)
    trainer = Trainer(task="link", max_epochs=40, lr=0.01, seed=0, progress=False)
    result = trainer.fit(GCN(2, 16, 16, num_layers=2, dropout=0.0), data)
    assert trainer.task.metric == "hits@50"
    assert result["metrics"]["test_hits@50"] == result["test"] > 0.9


def test_mlp_decoder_inside_the_model_trains_with_it():
    from gnnkit.link import HadamardMLPDecoder
    from gnnkit.link.model import LinkModel

    torch.manual_seed(0)
    model = LinkModel(GCN(16, 32, 16, num_layers=2, dropout=0.0), HadamardMLPDecoder(16, 32))
    before = [p.detach().clone() for p in model.decoder.parameters()]
    trainer = Trainer(task="link", max_epochs=60, lr=0.01, seed=0, progress=False)
    result = trainer.fit(model, _data())
    assert trainer.task.decoder is model.decoder
    assert any(not torch.equal(a, b) for a, b in zip(before, model.decoder.parameters()))
    assert result["test"] > 0.8


def test_link_task_writes_nothing_to_trainer_or_model(monkeypatch):
    from test_context import _WriteSpy

    torch.manual_seed(0)
    model = GCN(16, 32, 16, num_layers=2, dropout=0.0)
    trainer = Trainer(task="link", max_epochs=3, seed=0, progress=False, device="cpu")
    spy = _WriteSpy(monkeypatch)
    spy.watch(trainer, model)
    trainer.fit(model, _data())
    assert spy.writes == []


def test_train_command_with_the_link_task(tmp_path):
    import json

    from gnnkit.cli import main

    spec = "csbm:num_nodes=800,num_classes=10,avg_degree=8,num_features=16,homophily=0.95,feature_snr=3"
    assert main(["train", "--task", "link", "--dataset", spec, "--epochs", "40", "--hidden", "32",
                 "--negatives", "degree", "--no-progress", "--out", str(tmp_path / "run")]) == 0
    result = json.loads((tmp_path / "run" / "results.json").read_text())
    assert result["task"] == "link" and result["metric"] == "auc" and result["test_mean"] > 0.8
    assert main(["train", "--task", "link", "--dataset", spec, "--negatives", "hard", "--no-progress",
                 "--out", str(tmp_path / "bad")]) == 2


def test_link_task_refuses_weights_that_differ_between_directions():
    from gnnkit.errors import GnnkitError

    data = csbm(num_nodes=200, num_classes=2, avg_degree=4, num_features=8, seed=0)
    data.edge_weight = torch.rand(data.edge_index.shape[1], generator=torch.Generator().manual_seed(0))
    with pytest.raises(GnnkitError, match="one weight per edge"):
        Trainer(task="link", max_epochs=1, progress=False, device="cpu").fit(GCN(8, 16, 16), data)
