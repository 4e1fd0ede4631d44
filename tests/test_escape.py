"""The ``milp`` escape: a hand-built plateau it must escape (directly and inside ``Trainer.fit``),
and every path that must leave the weights alone (worse candidate, validation drop, infeasible,
time-out, crash, missing solver)."""
import argparse
import json

import mip
import pytest
import torch
from torch import nn
from torch_geometric.data import Data

from gnnkit import GnnkitError, Trainer
from gnnkit.context import RunContext
from gnnkit.escape import Escape
from gnnkit.escape.formulation import HeadSearch, margins, search_head, select_nodes
from gnnkit.escape.milp import MILPEscape, head_of
from gnnkit.models import MLP
from gnnkit.stores import from_data


def plateau_graph(n=80, seed=0) -> Data:
    """Two classes on the line ``x₁``: class 0 in ``[-1, -0.05]``, class 1 in ``[0.05, 1]``, plus a
    noise feature ``x₂``. A 1-layer MLP's embedding is ``x`` itself (frozen: nothing else to train).

        class 0 ......|     |...... class 1        x₁
                    -0.05  0.05   0.3 <- the head's threshold (suboptimal)
    """
    g = torch.Generator().manual_seed(seed)
    y = (torch.arange(n) % 2).long()
    x1 = torch.rand(n, generator=g) * 0.95 + 0.05
    x = torch.stack([torch.where(y == 1, x1, -x1), 0.1 * torch.randn(n, generator=g)], 1)
    src = torch.arange(n)
    ei = torch.stack([src, (src + 2) % n])
    ei = torch.cat([ei, ei.flip(0)], 1)
    masks = [(torch.arange(n) % 4) < 2, (torch.arange(n) % 4) == 2, (torch.arange(n) % 4) == 3]
    return Data(x=x, y=y, edge_index=ei, train_mask=masks[0], val_mask=masks[1], test_mask=masks[2], num_classes=2)


def plateau_model(threshold=0.3, scale=2.0) -> MLP:
    """A 1-layer MLP whose head puts the class boundary at ``x₁ = threshold``."""
    model = MLP(2, 4, 2, num_layers=1, dropout=0.0)
    with torch.no_grad():  # s₁ - s₀ = scale (x₁ - threshold)
        model.head.weight.copy_(torch.tensor([[-scale / 2, 0.0], [scale / 2, 0.0]]))
        model.head.bias.copy_(torch.tensor([scale * threshold / 2, -scale * threshold / 2]))
    return model


def plateau_case(**ctx_kw):
    """``(ctx, model, evaluate, data)``: the run context of the plateau graph, the suboptimal model,
    and an ``evaluate(splits)`` giving its accuracy per split, as the loop's does."""
    data, model = plateau_graph(), plateau_model()
    graph, features = from_data(data)
    ctx = RunContext(device=torch.device("cpu"), graph=graph, features=features, data=data, adj_norm=model.adj_norm,
                     weight_decay=5e-4, monitor="val_accuracy", higher_is_better=True, **ctx_kw)

    def evaluate(splits):
        with torch.no_grad():
            pred = model(data.x, graph.adjacency(ctx.adj_norm)).argmax(1)
        return {f"{s}_accuracy": float((pred == data.y)[getattr(data, f"{s}_mask")].float().mean()) for s in splits}

    return ctx, model, evaluate, data


def saved_head(model):
    return model.head.weight.detach().clone(), model.head.bias.detach().clone()


def assert_head_equal(model, saved):
    assert torch.equal(model.head.weight, saved[0]) and torch.equal(model.head.bias, saved[1])


def _highs_missing() -> bool:
    try:
        return mip.Model(solver_name="HiGHS").solver_name.lower() != "highs"
    except Exception:  # noqa: BLE001 - highsbox not installed
        return True


@pytest.mark.parametrize("solver", ["cbc", pytest.param("highs", marks=pytest.mark.skipif(
    _highs_missing(), reason="HiGHS not installed (pip install gnnkit[highs])"))])
def test_escape_finds_and_accepts_a_better_point(solver):
    esc = MILPEscape(solver=solver, radius=0.1, margin=0.05, nodes=40, time_limit=20)
    ctx, model, evaluate, data = plateau_case()
    before = saved_head(model)
    result = esc.on_plateau(ctx, model, evaluate, None)
    rec = result.record
    assert rec["accepted"] and result.accepted, rec
    assert esc.records == [rec]
    assert rec["status"] in ("optimal", "feasible") and rec["solver"] == solver
    assert rec["train_loss_after"] < rec["train_loss_before"]
    assert rec["objective_after"] < rec["objective_before"]
    assert rec["val_after"] >= rec["val_before"]
    assert rec["satisfied_after"] > rec["satisfied_before"]
    assert rec["binaries"] == rec["nodes"] > 0
    # the proposed head, named as in the model's parameters
    assert set(result.head_state) == {"head.weight", "head.bias"}
    new_w, new_b = result.head_state["head.weight"], result.head_state["head.bias"]
    change = torch.cat([(new_w - before[0]).view(-1), new_b - before[1]]).abs()
    assert 0 < change.max() <= 0.1 + 1e-6  # moved, inside the box
    # the new point classifies strictly more training nodes correctly
    h, y = data.x[data.train_mask], data.y[data.train_mask]
    old = margins(h @ before[0].T + before[1], y)
    assert (margins(h @ new_w.T + new_b, y) > 0).sum() > (old > 0).sum()


def test_formulation_bigm_and_selection():
    # radius 0.1: node i's score difference can move by ρ_i = 0.1 (2‖h_i‖₁ + 2) = 0.4
    # node 0 misclassified by 0.3 (fixable), node 1 misclassified by 5 (not fixable), node 2 a guard
    # correct by 0.2 that the box could break
    h = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    y = torch.tensor([1, 1, 0])
    w = torch.tensor([[0.1, 0.0], [0.0, 0.0]])
    b = torch.tensor([0.2, 0.0])
    logits = h @ w.T + b
    logits[1] = torch.tensor([5.0, 0.0])
    idx = select_nodes(h, logits, y, radius=0.1, margin=0.05, budget=10)
    assert idx.tolist() == [0, 2]
    out = search_head(h[[0, 2]], y[[0, 2]], w, b, radius=0.1, margin=0.05, solver="cbc", time_limit=10)
    assert out.status == "optimal" and out.satisfied_after == 2 and out.satisfied_before == 1
    assert out.rows == 2 and out.gap == 0.0  # one row per (node, other class)
    new = h[[0, 2]] @ (w + out.delta_w).T + (b + out.delta_b)
    assert (margins(new, y[[0, 2]]) >= 0.05 - 1e-6).all()
    assert out.delta_w.abs().max() <= 0.1 + 1e-9 and out.delta_b.abs().max() <= 0.1 + 1e-9


class ForcedCandidate(MILPEscape):
    """Returns a fixed step instead of solving."""

    def __init__(self, dw, db, **kw):
        super().__init__(**kw)
        self.dw, self.db = dw, db

    def search(self, h, y, head, ctx):
        return HeadSearch(status="optimal", seconds=0.0, nodes=len(y), binaries=len(y), satisfied_before=0,
                          satisfied_after=len(y), delta_w=self.dw.clone(), delta_b=self.db.clone())


def test_worse_candidate_is_reverted_bit_for_bit():
    # moving the boundary further right (bias towards class 0) misclassifies more: worse loss
    esc = ForcedCandidate(torch.zeros(2, 2), torch.tensor([0.1, -0.1]))
    ctx, model, evaluate, _ = plateau_case()
    with torch.no_grad():  # a weight pattern whose float additions would not round-trip exactly
        model.head.weight.add_(torch.randn(2, 2) * 1e-3)
    saved = saved_head(model)
    result = esc.on_plateau(ctx, model, evaluate, None)
    assert_head_equal(model, saved)
    rec = result.record
    assert result.head_state is None and not rec["accepted"] and rec["reason"].startswith("rejected: objective")
    assert rec["candidate_objective"] > rec["objective_before"]
    assert rec["train_loss_after"] == rec["train_loss_before"]


def test_candidate_that_drops_validation_is_reverted():
    # a better training loss but a validation figure that drops: rejected
    esc = ForcedCandidate(torch.zeros(2, 2), torch.tensor([-0.1, 0.1]))
    ctx, model, _, _ = plateau_case()
    values = iter([0.9, 0.8])
    saved = saved_head(model)
    result = esc.on_plateau(ctx, model, lambda splits: {"val_accuracy": next(values)}, None)
    rec = result.record
    assert rec["candidate_objective"] < rec["objective_before"]
    assert not rec["accepted"] and result.head_state is None and "val_accuracy" in rec["reason"]
    assert_head_equal(model, saved)


@pytest.mark.parametrize("status", ["INFEASIBLE", "NO_SOLUTION_FOUND", "crash", "unavailable"])
def test_no_solution_leaves_weights_untouched(monkeypatch, status):
    if status == "unavailable":
        def broken(*a, **k):
            raise OSError("libHiGHS.so: cannot open shared object file")
        monkeypatch.setattr(mip, "Model", broken)
    else:
        def optimize(self, **kw):
            if status == "crash":
                raise RuntimeError("solver crashed")
            return getattr(mip.OptimizationStatus, status)  # as after a time-out without incumbent
        monkeypatch.setattr(mip.Model, "optimize", optimize)
    esc = MILPEscape(radius=0.1, margin=0.05, time_limit=1)
    ctx, model, evaluate, _ = plateau_case()
    saved = saved_head(model)
    result = esc.on_plateau(ctx, model, evaluate, None)
    rec = result.record
    expected = {"INFEASIBLE": "infeasible", "NO_SOLUTION_FOUND": "no_solution_found", "crash": "error",
                "unavailable": "unavailable"}[status]
    assert rec["status"] == expected and not rec["accepted"] and rec["reason"]
    assert result.head_state is None
    assert_head_equal(model, saved)


def test_max_calls_and_escape_json(tmp_path):
    esc = ForcedCandidate(torch.zeros(2, 2), torch.tensor([0.1, -0.1]), max_calls=2)
    ctx, model, evaluate, _ = plateau_case(log_dir=str(tmp_path))
    first, second = (esc.on_plateau(ctx, model, evaluate, None) for _ in range(2))
    assert esc.on_plateau(ctx, model, evaluate, None) is None  # budget spent: not called
    written = json.loads((tmp_path / "escape.json").read_text())
    assert written == [first.record, second.record] == esc.records


def test_unknown_solver_and_bad_options_are_errors():
    with pytest.raises(GnnkitError, match="unknown MILP solver 'gurobi'"):
        MILPEscape(solver="gurobi")
    with pytest.raises(GnnkitError, match="unknown MILP solver"):
        search_head(torch.zeros(1, 2), torch.zeros(1, dtype=torch.long), torch.zeros(2, 2), torch.zeros(2),
                    radius=0.1, margin=0.1, solver="glpk")
    with pytest.raises(GnnkitError, match="radius"):
        MILPEscape(radius=0.0)
    with pytest.raises(GnnkitError, match="time limit"):
        MILPEscape(time_limit=-1)


def test_model_without_linear_head_is_an_error():
    with pytest.raises(GnnkitError, match="`head`"):
        head_of(nn.Sequential(nn.Linear(2, 2)))
    model = MLP(2, 4, 2, num_layers=1)
    model.head = nn.Sequential(nn.Linear(2, 2))
    with pytest.raises(GnnkitError, match="nn.Linear"):
        head_of(model)
    ctx, _, evaluate, _ = plateau_case()
    with pytest.raises(GnnkitError, match="has none"):
        MILPEscape().on_plateau(ctx, nn.Sequential(nn.Linear(2, 2)), evaluate, None)


def test_options_from_command_line():
    parser = argparse.ArgumentParser()
    Escape.lookup("milp").add_args(parser)
    args = parser.parse_args(["--escape-solver", "highs", "--escape-radius", "0.2", "--escape-time-limit", "3",
                              "--escape-nodes", "64", "--escape-margin", "0.5", "--escape-max-calls", "4",
                              "--escape-patience", "7"])
    esc = MILPEscape.from_args(args)
    assert (esc.solver, esc.radius, esc.time_limit, esc.nodes, esc.margin, esc.max_calls, esc.patience) == \
        ("highs", 0.2, 3.0, 64, 0.5, 4, 7)
    with pytest.raises(GnnkitError, match="unknown MILP solver"):
        MILPEscape.from_args(parser.parse_args(["--escape-solver", "cplex"]))


def test_fit_escapes_the_plateau():
    """Inside ``Trainer.fit``: an lr of 1e-30 is lost in float32 rounding, so gradient descent never
    moves the weights and every validation after the first is a plateau; the head starts at the
    suboptimal threshold, so the first call must be accepted. No accepted call may worsen the
    training loss."""
    esc = MILPEscape(patience=1, max_calls=2, time_limit=20, nodes=40, radius=0.1, margin=0.05)
    model, data = plateau_model(), plateau_graph()
    result = Trainer(max_epochs=6, seed=0, progress=False, lr=1e-30, weight_decay=5e-4, escape=esc,
                     device="cpu").fit(model, data)
    records = result["escape"]
    assert 1 <= len(records) <= 2 and records[0]["accepted"], records
    keys = {"epoch", "nodes", "binaries", "status", "gap", "seconds", "train_loss_before", "train_loss_after",
            "val_before", "val_after", "accepted", "reason"}
    for rec in records:
        assert keys <= rec.keys()
        assert rec["train_loss_after"] <= rec["train_loss_before"]
        if rec["accepted"]:
            assert rec["train_loss_after"] < rec["train_loss_before"]
            assert rec["objective_after"] < rec["objective_before"]
    assert [r["epoch"] for r in records] == sorted(r["epoch"] for r in records)


@pytest.mark.parametrize("higher, values, accepted", [
    (False, [0.2, 0.1], True),   # a lower-is-better figure that fell: accepted
    (False, [0.1, 0.2], False),  # ... that rose: rejected
    (True, [0.1, 0.2], True),    # a higher-is-better figure that rose: accepted
    (True, [0.2, 0.1], False),   # ... that fell: rejected
])
def test_acceptance_follows_the_declared_direction(higher, values, accepted):
    """The escape reads the monitored figure's declared direction (ctx.higher_is_better): the same
    candidate (a better training objective) is accepted or rejected by how the figure moved."""
    esc = ForcedCandidate(torch.zeros(2, 2), torch.tensor([-0.1, 0.1]))
    ctx, model, _, _ = plateau_case()
    ctx = ctx.replace(monitor="val_error_rate", higher_is_better=higher)
    figures = iter(values)
    saved = saved_head(model)
    result = esc.on_plateau(ctx, model, lambda splits: {"val_error_rate": next(figures)}, None)
    assert result.record["candidate_objective"] < result.record["objective_before"]
    assert result.accepted is accepted and result.record["accepted"] is accepted
    if not accepted:
        assert "val_error_rate" in result.record["reason"]
        assert_head_equal(model, saved)


def test_fit_escape_on_a_lower_is_better_user_metric():
    """Inside fit, selecting on a user metric declared lower-is-better (error rate): the plateau and
    the acceptance use that direction; an accepted call never raises the validation error rate."""
    from gnnkit.tasks.node import NodeClassification

    esc = MILPEscape(patience=1, max_calls=2, time_limit=20, nodes=40, radius=0.1, margin=0.05)
    trainer = Trainer(task=NodeClassification(metrics=["error_rate"]), metric="error_rate", max_epochs=6, seed=0,
                      progress=False, lr=1e-30, weight_decay=5e-4, escape=esc, device="cpu")
    result = trainer.fit(plateau_model(), plateau_graph())
    assert trainer.ctx.higher_is_better is False and trainer.ctx.monitor == "val_error_rate"
    records = result["escape"]
    assert records and records[0]["accepted"], records
    for rec in records:
        if rec["accepted"]:
            assert rec["val_after"] <= rec["val_before"]
    assert result["metrics"]["val_error_rate"] == pytest.approx(1 - result["metrics"]["val_accuracy"])


def test_escape_with_a_headless_strategy_is_refused():
    """ForwardGNN scores its last layer by goodness: there is no classifier head to search."""
    from gnnkit.errors import GnnkitError
    from gnnkit.strategies.forward.strategy import ForwardLearning
    from gnnkit.trainer import Trainer

    with pytest.raises(GnnkitError, match="escape searches a classifier head"):
        Trainer(task="node", strategy=ForwardLearning(), escape="milp", max_epochs=1, progress=False)
