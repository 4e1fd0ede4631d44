"""The run context and the loop's contract with plug-ins: read-only context, no plug-in writes to
the Trainer or the model, Control and EscapeResult applied by the loop, run records on resume."""
import os
import sys

import pytest
import torch

from gnnkit import CheckpointError, GnnkitError, Trainer
from gnnkit.callbacks import Callback
from gnnkit.context import Control, RunContext
from gnnkit.data.csbm import csbm
from gnnkit.models import GCN
from gnnkit.strategies.backprop import Backprop

from helpers import two_community_graph

PLUGIN_MODULES = ("samplers", "gnnkit.samplers", "gnnkit.strategies", "gnnkit.escape", "gnnkit.tasks",
                  "gnnkit.graphs", "gnnkit.link")


def test_context_is_read_only():
    ctx = RunContext(device=torch.device("cpu"), lr=0.1)
    for name in ("lr", "device", "graph", "epoch", "new_attribute"):
        with pytest.raises(GnnkitError, match="read-only"):
            setattr(ctx, name, 1)
    with pytest.raises(GnnkitError, match="read-only"):
        del ctx.lr
    assert ctx.lr == 0.1 and ctx.replace(lr=0.5).lr == 0.5 and ctx.lr == 0.1
    # one process: the rank helpers are the identity
    assert (ctx.rank, ctx.world_size, ctx.is_main) == (0, 1, True)
    assert ctx.shard([1, 2, 3]) == [1, 2, 3] and ctx.row_range(5) == (0, 5) and ctx.broadcast("x") == "x"
    with pytest.raises(GnnkitError, match="unknown optimizer 'rmsprop'"):
        ctx.replace(optimizer="rmsprop").make_optimizer(torch.nn.Linear(2, 2).parameters())
    assert isinstance(ctx.replace(optimizer="sgd").make_optimizer(torch.nn.Linear(2, 2).parameters()), torch.optim.SGD)


# -- no plug-in writes to the Trainer or the model --------------------------------------------------
class _WriteSpy:
    """Records ``setattr`` on watched objects (the Trainer, every module of the model) made by code
    in a plug-in module (samplers, strategies, escapes, tasks: the caller's module name)."""

    def __init__(self, monkeypatch, modules=PLUGIN_MODULES):
        self.ids, self.writes, self.modules = set(), [], modules
        for cls, orig in ((torch.nn.Module, torch.nn.Module.__setattr__), (Trainer, object.__setattr__)):
            monkeypatch.setattr(cls, "__setattr__", self._spy(orig))

    def watch(self, *objs):
        for obj in objs:
            self.ids.update(id(m) for m in (obj.modules() if isinstance(obj, torch.nn.Module) else [obj]))

    def _spy(self, orig):
        def setattr_(obj, name, value):
            if id(obj) in self.ids:
                caller = sys._getframe(1).f_globals.get("__name__", "")
                if caller.startswith(self.modules):
                    self.writes.append(f"{caller}: {type(obj).__name__}.{name}")
            orig(obj, name, value)
        return setattr_


def _graph():
    return csbm(num_nodes=200, num_classes=3, avg_degree=6.0, num_features=8, seed=0, split="random",
                train_frac=0.5, val_frac=0.25)


def _case(kind, tmp_path):
    """``(trainer kwargs, model, data)`` of one plug-in run."""
    from gnnkit.samplers.cluster import ClusterSampler
    from gnnkit.samplers.mvs import MVSSampler
    from gnnkit.samplers.neighbor import NeighborSampler
    from gnnkit.strategies.forward import ForwardLearning

    torch.manual_seed(0)
    data = _graph()
    if kind == "cluster":
        sampler = ClusterSampler(num_parts=4, clusters_per_batch=2, diag_lambda=1e-4, cache_dir=str(tmp_path))
        return dict(sampler=sampler), GCN(8, 16, 3, adj_norm="diag", diag_lambda=1e-4), data
    if kind in ("full", "neighbor", "mvs"):
        sampler = {"full": None, "neighbor": NeighborSampler(fanouts=(4, 3), batch_size=50),
                   "mvs": MVSSampler(batch_size=50, refresh=2)}[kind]
        return dict(sampler=sampler), GCN(8, 16, 3), data
    if kind in ("sf", "ff-la"):
        return (dict(strategy=ForwardLearning(variant=kind, patience=2, layer_epochs=2)),
                GCN(8, 16, 16, num_layers=2, dropout=0.0), data)
    if kind == "link":
        return dict(task="link"), GCN(8, 16, 8, num_layers=2, dropout=0.0), data
    if kind == "graph":
        from gnnkit.graphs import GraphClassification, GraphCollection, GraphSampler
        from gnnkit.models.gin import GIN
        from test_graph_batching import random_graphs

        coll = GraphCollection.from_data_list(random_graphs(count=40))
        fold = coll.with_split(torch.arange(0, 30), torch.arange(30, 35), torch.arange(35, 40))
        return (dict(task=GraphClassification(), sampler=GraphSampler(batch_size=16)),
                GIN(coll.num_features, 8, coll.num_classes, num_layers=2), fold)
    if kind == "escape":
        from gnnkit.escape.milp import MILPEscape
        from test_escape import plateau_graph, plateau_model

        esc = MILPEscape(solver="cbc", patience=1, max_calls=1, radius=0.1, margin=0.05, nodes=40, time_limit=20)
        return dict(escape=esc, lr=1e-30), plateau_model(), plateau_graph()
    from gnnkit.samplers.temporal import TemporalSampler
    from gnnkit.tasks.temporal_link import TemporalLinkPrediction
    from gnnkit.temporal.model import TGN
    from test_temporal_data import random_stream

    dims = dict(memory_dim=8, time_dim=6, embedding_dim=8, heads=2)
    return (dict(task=TemporalLinkPrediction(num_neighbors=4, eval_batch_size=20), sampler=TemporalSampler(20)),
            TGN(2, **dims), random_stream(num_nodes=30, num_events=200))


@pytest.mark.parametrize("kind", ["full", "cluster", "neighbor", "mvs", "sf", "ff-la", "escape", "temporal", "link",
                                  "graph"])
def test_no_plugin_writes_to_trainer_or_model(kind, tmp_path, monkeypatch):
    kwargs, model, data = _case(kind, tmp_path)
    trainer = Trainer(max_epochs=4, seed=0, progress=False, device="cpu", **kwargs)
    spy = _WriteSpy(monkeypatch)
    spy.watch(trainer, model)
    result = trainer.fit(model, data)
    assert spy.writes == []
    if kind == "escape":  # the escape really ran, and its head went in through the loop
        assert result["escape"] and result["escape"][0]["accepted"]


class _Meddler(Backprop):
    """A strategy that breaks the rule: the spy must see it."""

    name = ""

    def configure(self, ctx, model):
        super().configure(ctx, model)
        model.adj_norm = "mean"


def test_write_spy_sees_a_plugin_that_writes(monkeypatch):
    model = GCN(8, 16, 2)
    spy = _WriteSpy(monkeypatch, modules=PLUGIN_MODULES + (__name__,))
    trainer = Trainer(max_epochs=1, progress=False, device="cpu", strategy=_Meddler())
    spy.watch(trainer, model)
    trainer.fit(model, two_community_graph())
    assert spy.writes == [f"{__name__}: GCN.adj_norm"]


# -- Control ----------------------------------------------------------------------------------------
class _StopAt(Backprop):
    """Ends the run after epoch ``at`` and makes the weights of that moment the selected model."""

    name = ""

    def __init__(self, at):
        super().__init__()
        self.at = at

    def on_epoch_end(self, ctx, model, epoch, evaluate):
        if epoch == self.at:
            return Control(stop=True, select=evaluate(("train", "val", "test")))
        return None


def test_strategy_control_stops_and_selects():
    torch.manual_seed(0)
    result = Trainer(max_epochs=20, seed=0, progress=False, device="cpu", strategy=_StopAt(4), lr=0.05).fit(
        GCN(8, 16, 2), two_community_graph())
    assert result["epochs"] == 5 and result["best_epoch"] == 4


# -- checkpoints and run records (issue 19) ----------------------------------------------------------
def _fit(ckdir, epochs=3, ckpt=None, run_info=None, optimizer="adam", callbacks=(), keep=2):
    torch.manual_seed(0)
    t = Trainer(max_epochs=epochs, seed=0, progress=False, device="cpu", checkpoint_dir=str(ckdir), run_info=run_info,
                optimizer=optimizer, callbacks=callbacks, keep_checkpoints=keep)
    return t, t.fit(GCN(8, 16, 2), two_community_graph(), ckpt_path=ckpt)


def test_resume_refuses_another_run_naming_the_difference(tmp_path):
    info = {"dataset": "two", "fingerprint": "abc", "settings": {"sampler": "full", "hidden": 16}}
    _fit(tmp_path, run_info=info)
    other = {**info, "fingerprint": "def", "settings": {"sampler": "neighbor", "hidden": 16}}
    with pytest.raises(CheckpointError, match="fingerprint: abc vs def.*settings.sampler: full vs neighbor"):
        _fit(tmp_path, epochs=5, ckpt="last", run_info=other)
    with pytest.raises(CheckpointError, match="optimizer: adam vs sgd"):  # was KeyError: 'momentum'
        _fit(tmp_path, epochs=5, ckpt="last", run_info=info, optimizer="sgd")
    _, result = _fit(tmp_path, epochs=5, ckpt="last", run_info=info)
    assert result["epochs"] == 5


def test_checkpoint_folder_of_another_run_is_refused(tmp_path):
    _fit(tmp_path, epochs=6)  # leaves epoch-000004.pt, epoch-000005.pt
    with pytest.raises(GnnkitError, match="belongs to another run"):
        _fit(tmp_path, epochs=3)  # its epoch-000002.pt would have been pruned in favour of the old 4 and 5
    with pytest.raises(GnnkitError, match="newer than the one resumed"):
        _fit(tmp_path, epochs=8, ckpt=str(tmp_path / "epoch-000004.pt"))
    assert sorted(os.listdir(tmp_path)) == ["epoch-000004.pt", "epoch-000005.pt"]  # nothing touched


def test_unreadable_newest_is_set_aside_and_holds_no_slot(tmp_path):
    _fit(tmp_path, epochs=3)
    (tmp_path / "epoch-000009.pt").write_bytes(b"truncated")
    with pytest.warns(UserWarning, match="unreadable"):
        t, _ = _fit(tmp_path, epochs=5, ckpt="last")
    assert t.resumed_from.endswith("epoch-000002.pt") and t.last_checkpoint.endswith("epoch-000004.pt")
    assert sorted(os.listdir(tmp_path)) == ["epoch-000003.pt", "epoch-000004.pt", "epoch-000009.pt.unreadable"]


def test_resume_counts_epochs_and_refuses_a_longer_checkpoint(tmp_path):
    _fit(tmp_path, epochs=6)
    with pytest.raises(GnnkitError, match="at epoch 6, beyond max_epochs 4"):
        _fit(tmp_path, epochs=4, ckpt="last")
    _, done = _fit(tmp_path, epochs=6, ckpt="last")  # a finished run: its figures, no more training
    _, again = _fit(tmp_path / "fresh", epochs=6)
    assert done["epochs"] == 6 and done["best_epoch"] == again["best_epoch"] and done["val"] == again["val"]


class _Counter(Callback):
    def __init__(self):
        self.n = 0

    def on_epoch_end(self, trainer, epoch, logs):
        self.n += 1

    def state_dict(self):
        return {"n": self.n}

    def load_state_dict(self, state):
        self.n = state["n"]


class _Other(_Counter):
    state_key = "other"


def test_callback_state_is_keyed_by_name(tmp_path):
    counter = _Counter()
    _fit(tmp_path, epochs=3, callbacks=[counter])
    # a callback added on resume starts fresh; the known one continues from its saved state
    counter2, added = _Counter(), _Other()
    _fit(tmp_path, epochs=5, ckpt="last", callbacks=[added, counter2])
    assert counter2.n == 5 and added.n == 2
    with pytest.raises(GnnkitError, match="share a state key"):
        Trainer(callbacks=[_Counter(), _Counter()])


def test_an_option_is_declared_once():
    import argparse

    from gnnkit.plugins import add_option

    parser = argparse.ArgumentParser()
    add_option(parser, "--batch-size", type=int)
    with pytest.raises(GnnkitError, match="--batch-size is declared twice"):
        add_option(parser.add_argument_group("sampler"), "--batch-size", type=int)


def test_step_lr_schedule_matches_torch_and_survives_resume(tmp_path):
    from gnnkit.callbacks import StepLR

    t, _ = _fit(tmp_path, epochs=5, callbacks=[StepLR(2, 0.5)])
    ref = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.01)
    sched = torch.optim.lr_scheduler.StepLR(ref, 2, 0.5)
    for _ in range(5):
        ref.step()
        sched.step()
    assert t.strategy.optimizer.param_groups[0]["lr"] == ref.param_groups[0]["lr"] == 0.0025
    t2, _ = _fit(tmp_path, epochs=8, ckpt="last", callbacks=[StepLR(2, 0.5)])  # halved after epochs 5 and 7
    assert t2.strategy.optimizer.param_groups[0]["lr"] == 0.01 * 0.5 ** 4
    with pytest.raises(GnnkitError, match="step"):
        StepLR(0)
