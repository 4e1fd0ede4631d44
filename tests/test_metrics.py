"""User metrics with a declared direction (issue 27): the registry and its forms, selection on a user
metric (its maximum when higher is better, its minimum when lower), undeclared directions refused,
and every figure each built-in task reports has a direction."""
from __future__ import annotations

import math

import pytest
import torch

from gnnkit import Trainer
from gnnkit.errors import GnnkitError
from gnnkit.metrics import REGISTRY, Metric, as_metric, macro_f1, metric, register_metric
from gnnkit.models import GCN
from gnnkit.tasks.node import NodeClassification
from helpers import two_community_graph


# -- the registry and the accepted forms ------------------------------------------------------------
def test_macro_f1_by_hand():
    # classes 0,1,2; predictions 0,0,1,2,2 for labels 0,1,1,2,0
    logits = torch.eye(3)[torch.tensor([0, 0, 1, 2, 2])]
    y = torch.tensor([0, 1, 1, 2, 0])
    # class 0: tp 1, fp 1, fn 1 -> 1/2; class 1: tp 1, fn 1 -> 2/3; class 2: tp 1, fp 1 -> 2/3
    assert macro_f1(logits, y) == pytest.approx((0.5 + 2 / 3 + 2 / 3) / 3)
    # a class absent from labels and predictions does not count (scikit-learn's rule)
    assert macro_f1(torch.eye(4)[torch.tensor([0, 1])], torch.tensor([0, 1])) == 1.0
    assert math.isnan(macro_f1(torch.zeros(0, 3), torch.zeros(0, dtype=torch.long)))


def test_forms_of_a_metric_and_their_directions():
    assert as_metric("macro_f1").higher_is_better and not as_metric("error_rate").higher_is_better

    @metric(higher_is_better=False)
    def mistakes(logits, y):
        return (logits.argmax(1) != y).sum()

    m = as_metric(mistakes)
    assert m.name == "mistakes" and m.higher_is_better is False
    assert m(torch.eye(2)[[0, 1, 1]], torch.tensor([0, 0, 1])) == 1.0  # tensor result -> float

    class MulticlassThing:  # a torchmetrics-like object: declares its direction as a class attribute
        higher_is_better = True

        def __call__(self, preds, target):
            return torch.tensor(0.5)

    assert as_metric(MulticlassThing()).name == "multiclass_thing"
    with pytest.raises(GnnkitError, match="already registered"):
        register_metric("macro_f1", lambda p, y: 0.0, higher_is_better=True)
    with pytest.raises(GnnkitError, match="unknown metric 'f2'"):
        as_metric("f2")
    with pytest.raises(GnnkitError, match="returned 2 numbers"):
        Metric("two", lambda p, y: torch.zeros(2), True)(torch.zeros(2, 2), torch.zeros(2))
    with pytest.raises(GnnkitError, match="higher_is_better must be True or False"):
        Metric("m", lambda p, y: 0.0, "max")
    assert {"accuracy", "macro_f1", "error_rate", "cross_entropy", "average_precision", "roc_auc"} <= set(REGISTRY)


def test_undeclared_direction_is_refused():
    def f1(logits, y):  # a plain function: no direction
        return macro_f1(logits, y)

    with pytest.raises(GnnkitError, match="'f1' does not declare whether higher is better"):
        NodeClassification(metrics=[f1])
    with pytest.raises(GnnkitError, match="lambda has no name"):
        NodeClassification(metrics=[lambda p, y: 0.0])
    # a figure the task does not compute has no direction: refused, never guessed
    with pytest.raises(GnnkitError, match="'macro_f1' has no declared direction for the node task"):
        Trainer(metric="macro_f1", max_epochs=1, progress=False, device="cpu").fit(
            GCN(8, 8, 2), two_community_graph())
    with pytest.raises(GnnkitError, match="computes itself"):
        NodeClassification(metrics=[Metric("loss", macro_f1, higher_is_better=True)])
    with pytest.raises(GnnkitError, match="two metrics are named"):
        NodeClassification(metrics=["macro_f1", Metric("macro_f1", macro_f1, higher_is_better=False)])
    task = NodeClassification(metrics=["macro_f1"])
    task.add_metrics(["macro_f1"])  # the same one again: nothing changes
    assert [m.name for m in task.metrics] == ["macro_f1"]
    with pytest.raises(GnnkitError, match="already has a metric named 'macro_f1'"):
        task.add_metrics([Metric("macro_f1", macro_f1, higher_is_better=False)])


# -- selection on a user metric -----------------------------------------------------------------------
def noisy_graph():
    """Two communities with features that carry little signal: validation figures go up and down."""
    data = two_community_graph(n_per=40, num_features=8, seed=3)
    g = torch.Generator().manual_seed(1)
    data.x = data.x + 1.5 * torch.randn(data.x.shape, generator=g)
    flip = torch.rand(data.num_nodes, generator=g) < 0.2
    data.y = torch.where(flip, 1 - data.y, data.y)
    return data


def selected(name, spec):
    torch.manual_seed(0)
    model = GCN(8, 16, 2, dropout=0.5)
    trainer = Trainer(task=NodeClassification(metrics=[spec]), metric=name, max_epochs=25, lr=0.05, seed=0,
                      progress=False, device="cpu")
    result = trainer.fit(model, noisy_graph())
    values = [h[f"val_{name}"] for h in result["history"]]
    return result, values


def expected_epoch(values, losses, higher):
    """The loop's rule: strictly better wins, a tie goes to the lower validation loss."""
    best = 0
    for i in range(1, len(values)):
        better = values[i] > values[best] if higher else values[i] < values[best]
        if better or (values[i] == values[best] and losses[i] < losses[best]):
            best = i
    return best


def test_higher_is_better_metric_selects_its_maximum():
    result, values = selected("macro_f1", "macro_f1")
    losses = [h["val_loss"] for h in result["history"]]
    assert max(values) > min(values) and values.index(max(values)) != values.index(min(values))
    assert result["selected_on"] == "val_macro_f1"
    assert result["best_epoch"] == expected_epoch(values, losses, higher=True)
    assert values[result["best_epoch"]] == max(values)
    # the restored model is the selected one: the final figures are the best epoch's
    assert result["metrics"]["val_macro_f1"] == pytest.approx(max(values))


def test_lower_is_better_metric_selects_its_minimum():
    # the same figure declared lower-is-better (1 - macro-F1) selects the epoch the other one selects
    spec = Metric("f1_gap", lambda p, y: 1.0 - macro_f1(p, y), higher_is_better=False)
    result, values = selected("f1_gap", spec)
    losses = [h["val_loss"] for h in result["history"]]
    assert values[result["best_epoch"]] == min(values) < max(values)
    assert result["best_epoch"] == expected_epoch(values, losses, higher=False)
    assert result["metrics"]["val_f1_gap"] == pytest.approx(min(values))


def test_user_metric_reaches_early_stopping_and_records():
    torch.manual_seed(0)
    task = NodeClassification(metrics=["error_rate"])
    trainer = Trainer(task=task, metric="error_rate", patience=3, max_epochs=60, lr=0.05, seed=0, progress=False,
                      device="cpu")
    result = trainer.fit(GCN(8, 16, 2, dropout=0.5), noisy_graph())
    values = [h["val_error_rate"] for h in result["history"]]
    best = result["best_epoch"]
    assert values[best] == min(values)
    # stopped after 3 validations without a lower error rate
    assert result["epochs"] == best + 4 < 60
    for split in ("train", "val", "test"):
        assert f"{split}_error_rate" in result["metrics"]
    assert result["metrics"]["test_error_rate"] == pytest.approx(1 - result["metrics"]["test_accuracy"])


def test_nan_figure_never_selected():
    from gnnkit.callbacks.selection import ModelSelection

    sel = ModelSelection()
    sel.best_value = float("nan")
    assert sel.is_better(0.1, {}, True) and sel.is_better(0.1, {}, False)
    sel.best_value = 0.5
    assert not sel.is_better(float("nan"), {}, True) and not sel.is_better(float("nan"), {}, False)


# -- every built-in figure has a direction --------------------------------------------------------------
def assert_directions(task, metrics):
    assert metrics
    for key in metrics:
        split, name = key.split("_", 1)
        assert split in ("train", "val", "test"), key
        assert isinstance(task.metric_direction(name), bool), key
    assert "val_loss" not in metrics or task.metric_direction("loss") is False


def test_node_and_graph_figures_have_directions():
    from gnnkit.graphs import GraphClassification, GraphCollection, GraphSampler
    from gnnkit.models.gin import GIN
    from test_graph_batching import random_graphs

    trainer = Trainer(task=NodeClassification(metrics=["macro_f1"]), max_epochs=1, progress=False, device="cpu")
    result = trainer.fit(GCN(8, 8, 2), two_community_graph())
    assert_directions(trainer.task, result["metrics"])
    assert "test_macro_f1" in result["metrics"] and trainer.task.metric_direction("accuracy") is True

    coll = GraphCollection.from_data_list(random_graphs(count=30))
    fold = coll.with_split(torch.arange(0, 20), torch.arange(20, 25), torch.arange(25, 30))
    task = GraphClassification(metrics=["macro_f1"])
    trainer = Trainer(task=task, sampler=GraphSampler(batch_size=16), max_epochs=1, progress=False, device="cpu")
    result = trainer.fit(GIN(coll.num_features, 8, coll.num_classes, num_layers=2), fold)
    assert_directions(task, result["metrics"])
    assert "val_macro_f1" in result["metrics"]
    assert trainer.predict().shape == (30, coll.num_classes)  # one row per graph
    for name in ("roc_auc", "ap", "rocauc", "acc"):
        assert task.metric_direction(name) is True


def test_link_and_temporal_figures_have_directions():
    from gnnkit.data.csbm import csbm
    from gnnkit.samplers.temporal import TemporalSampler
    from gnnkit.tasks.link import LinkPrediction
    from gnnkit.tasks.temporal_link import TemporalLinkPrediction
    from gnnkit.temporal.model import TGN
    from test_temporal_data import random_stream

    data = csbm(num_nodes=300, num_classes=4, avg_degree=6, num_features=8, seed=0)
    task = LinkPrediction(metrics=["average_precision"])
    trainer = Trainer(task=task, metric="ap", max_epochs=3, seed=0, progress=False, device="cpu")
    result = trainer.fit(GCN(8, 16, 8, num_layers=2), data)
    assert_directions(task, result["metrics"])
    assert trainer.higher_is_better is True and "val_average_precision" in result["metrics"]

    stream = random_stream(num_nodes=20, num_events=200)
    task = TemporalLinkPrediction(num_neighbors=3, eval_batch_size=50, metrics=["roc_auc"])
    trainer = Trainer(task=task, sampler=TemporalSampler(50), metric="new_auc", max_epochs=1, seed=0, progress=False,
                      device="cpu")
    result = trainer.fit(TGN(stream.msg_dim, memory_dim=8, time_dim=4, embedding_dim=8), stream)
    assert_directions(task, result["metrics"])
    assert {"val_roc_auc", "val_new_roc_auc", "test_new_roc_auc"} <= set(result["metrics"])
    assert result["selected_on"] == "val_new_auc"
    with pytest.raises(GnnkitError, match="'loss' has no declared direction for the temporal-link task"):
        task.metric_direction("loss")  # it reports no loss


def test_stateful_module_metric_is_reset_per_call():
    """A torchmetrics-style object (an nn.Module with state, ``reset`` and ``higher_is_better``): each
    split's figure is computed afresh, not accumulated over earlier calls."""

    class RunningAccuracy(torch.nn.Module):
        higher_is_better = True

        def __init__(self):
            super().__init__()
            self.register_buffer("hits", torch.zeros(()))
            self.register_buffer("seen", torch.zeros(()))

        def reset(self):
            self.hits.zero_()
            self.seen.zero_()

        def forward(self, logits, y):
            self.hits += (logits.argmax(1) == y).sum()
            self.seen += y.numel()
            return self.hits / self.seen

    m = as_metric(RunningAccuracy())
    assert m.name == "running_accuracy"
    assert m(torch.eye(2)[[0, 0]], torch.tensor([0, 0])) == 1.0
    assert m(torch.eye(2)[[0, 0]], torch.tensor([1, 1])) == 0.0  # not (2 + 0) / 4


def test_cli_metrics_option_computes_records_and_selects(tmp_path, capsys):
    """``--metrics macro_f1 --metric macro_f1``: the figure is computed each evaluation, logged, and
    the selected epoch is its maximum; an unknown name, or selecting on an unregistered-for-the-run
    metric, is one line and exit 2."""
    import csv
    import json

    from gnnkit.cli import main

    base = ["train", "--dataset", "csbm", "--num-nodes", "600", "--num-classes", "4", "--epochs", "8",
            "--no-progress", "--threads", "1"]
    out = tmp_path / "a"
    assert main([*base, "--metrics", "macro_f1", "--metric", "macro_f1", "--out", str(out),
                 "--log-dir", str(out / "logs")]) == 0
    rows = list(csv.DictReader(open(out / "logs" / "seed-0" / "metrics.csv")))
    f1 = [float(r["val_macro_f1"]) for r in rows]
    acc = [float(r["val_accuracy"]) for r in rows]
    best = json.loads((out / "results.json").read_text())["runs"][0]["best_epoch"]
    assert f1[best] == max(f1) and len(set(f1)) > 1
    assert acc != f1  # a different figure, not accuracy relabelled
    capsys.readouterr()
    assert main([*base, "--metrics", "nope", "--out", str(tmp_path / "b")]) == 2
    assert "unknown metric 'nope'" in capsys.readouterr().err
    assert main([*base, "--metric", "macro_f1", "--out", str(tmp_path / "c")]) == 2
    assert "--metrics macro_f1" in capsys.readouterr().err
