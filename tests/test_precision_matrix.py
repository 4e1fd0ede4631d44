"""Every sampler x strategy (x task) that gnnkit supports, trained a few epochs on a tiny graph under
``bf16-mixed`` and ``16-mixed``: finite losses, features gathered in the half type, float32
parameters, the float16 gradient scaler stepping, the same weights from the same seed; the
combinations gnnkit refuses are refused with the same one-line error in every precision; the MILP
escape solves on float32 inputs and hands back a float32 head. (Accuracy against float32 is
``benchmarks/precision.py --only matrix``; ``tests/test_precision.py`` covers the parts.)"""
from __future__ import annotations

import math
import warnings

import pytest
import torch

from gnnkit.callbacks import Callback
from gnnkit.data.csbm import csbm
from gnnkit.errors import GnnkitError
from gnnkit.models import GCN, GraphSAGE
from gnnkit.samplers.cluster import ClusterSampler
from gnnkit.samplers.mvs import MVSSampler
from gnnkit.samplers.neighbor import NeighborSampler
from gnnkit.strategies.forward import ForwardLearning
from gnnkit.trainer import Trainer

from helpers import two_community_graph

warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
HALF = {"bf16-mixed": torch.bfloat16, "16-mixed": torch.float16}
PRECISIONS = ("32", "bf16-mixed", "16-mixed")
SAMPLERS = {"full": lambda: None, "neighbor": lambda: NeighborSampler((4, 4), batch_size=16),
            "cluster": lambda: ClusterSampler(num_parts=4, clusters_per_batch=2),
            "mvs": lambda: MVSSampler(batch_size=16)}
STRATEGIES = {"backprop": lambda: "backprop",
              "sf": lambda: ForwardLearning(variant="sf", layer_epochs=2, patience=2),
              "ff-la": lambda: ForwardLearning(variant="ff-la", layer_epochs=2, patience=2),
              "sf-top2loss": lambda: ForwardLearning(variant="sf", schedule="top2loss", patience=2)}
# what gnnkit refuses, and the words of the refusal (None: supported)
REFUSED = {("neighbor", "sf"): "whole subgraphs", ("neighbor", "ff-la"): "whole subgraphs",
           ("mvs", "sf"): "whole subgraphs", ("mvs", "ff-la"): "whole subgraphs",
           ("neighbor", "sf-top2loss"): "top2loss", ("cluster", "sf-top2loss"): "top2loss",
           ("mvs", "sf-top2loss"): "top2loss"}
NODE_CASES = [(s, st) for s in SAMPLERS for st in STRATEGIES]


class Seen(Callback):
    """Every training batch's loss and ``x`` dtype."""

    def __init__(self):
        self.losses, self.dtypes = [], set()

    def on_batch_end(self, trainer, batch, outputs):
        self.losses.append(float(outputs["loss"]))
        self.dtypes.add(getattr(batch, "x", None).dtype)


def _fit(precision, sampler, strategy, epochs=4, task="node", model=None, data=None, **kw):
    seen = Seen()
    t = Trainer(task=task, sampler=sampler, strategy=strategy, max_epochs=epochs, lr=0.02, seed=3, progress=False,
                device="cpu", precision=precision, callbacks=[seen], **kw)
    torch.manual_seed(0)
    model = model() if model else GCN(8, 16, 2 if strategy == "backprop" else 16, norm=None)
    res = t.fit(model, data if data is not None else two_community_graph(20, 8))
    return t, res, seen


def _scalers(strategy) -> list:
    return [strategy.scaler] if hasattr(strategy, "scaler") else list(strategy._scalers)


def _check_half_run(precision, t, seen):
    """Finite losses, half features gathered, float32 weights, the scaler (16-mixed) stepping."""
    assert seen.losses and all(math.isfinite(v) for v in seen.losses)
    assert seen.dtypes == {HALF[precision]}, seen.dtypes
    assert all(p.dtype == torch.float32 for p in t.raw_model.parameters())
    for sc in _scalers(t.strategy):
        if precision == "16-mixed":  # a GradScaler that stepped: its growth tracker counts good steps
            assert isinstance(sc, torch.amp.GradScaler) and sc.state_dict()["_growth_tracker"] > 0
        else:
            assert sc is None


def _same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("sampler,strategy", NODE_CASES, ids=[f"{s}-{st}" for s, st in NODE_CASES])
def test_node_sampler_strategy(sampler, strategy):
    refused = REFUSED.get((sampler, strategy))
    if refused:  # refused alike in every precision, in one line
        msgs = set()
        for p in PRECISIONS:
            with pytest.raises(GnnkitError, match=refused) as err:
                _fit(p, SAMPLERS[sampler](), STRATEGIES[strategy]())
            msgs.add(str(err.value))
        assert len(msgs) == 1 and "\n" not in msgs.pop()
        return
    for p in HALF:
        t, res, seen = _fit(p, SAMPLERS[sampler](), STRATEGIES[strategy]())
        _check_half_run(p, t, seen)
        assert 0.0 <= res["test"] <= 1.0 and t.predict().dtype == torch.float32
        t2, res2, seen2 = _fit(p, SAMPLERS[sampler](), STRATEGIES[strategy]())  # same seed, same result
        assert _same(t.raw_model.state_dict(), t2.raw_model.state_dict()) and seen.losses == seen2.losses


def _link_data():
    return csbm(num_nodes=120, num_classes=4, avg_degree=6, num_features=8, homophily=0.95, feature_snr=3.0, seed=1)


@pytest.mark.parametrize("sampler", ["full", "neighbor", "cluster", "mvs"])
def test_link_task(sampler):
    link = dict(task="link", model=lambda: GCN(8, 16, 16, num_layers=2, dropout=0.0))
    if sampler == "mvs":  # MVS samples nodes; the forward strategy trains node classes: both refused alike
        for p in PRECISIONS:
            with pytest.raises(GnnkitError, match="samples training nodes, not edges"):
                _fit(p, SAMPLERS[sampler](), "backprop", data=_link_data(), **link)
        return
    for p in PRECISIONS:
        with pytest.raises(GnnkitError, match="node classification only"):
            _fit(p, SAMPLERS[sampler](), STRATEGIES["sf"](), data=_link_data(), **link)
    for p in HALF:
        t, res, seen = _fit(p, SAMPLERS[sampler](), "backprop", epochs=3, data=_link_data(), **link)
        _check_half_run(p, t, seen)
        assert 0.0 <= res["test"] <= 1.0
        t2, _, seen2 = _fit(p, SAMPLERS[sampler](), "backprop", epochs=3, data=_link_data(), **link)
        assert _same(t.raw_model.state_dict(), t2.raw_model.state_dict()) and seen.losses == seen2.losses


def test_graph_task():
    from gnnkit.graphs import GraphClassification, GraphCollection, GraphSampler
    from gnnkit.models.gin import GIN
    from test_graph_batching import random_graphs

    coll = GraphCollection.from_data_list(random_graphs(count=40))
    fold = coll.with_split(torch.arange(0, 30), torch.arange(30, 35), torch.arange(35, 40))
    kw = dict(task=GraphClassification(), data=fold, model=lambda: GIN(coll.num_features, 8, coll.num_classes,
                                                                          num_layers=2))
    for p in PRECISIONS:
        with pytest.raises(GnnkitError, match="node classification only"):
            _fit(p, GraphSampler(batch_size=8), STRATEGIES["sf"](), **kw)
    for p in HALF:
        t, res, seen = _fit(p, GraphSampler(batch_size=8), "backprop", **kw)
        _check_half_run(p, t, seen)
        t2, _, seen2 = _fit(p, GraphSampler(batch_size=8), "backprop", **kw)
        assert _same(t.raw_model.state_dict(), t2.raw_model.state_dict()) and seen.losses == seen2.losses


class Heads(Callback):
    """The head's weight at the end of every epoch."""

    def __init__(self):
        self.weights = []

    def on_epoch_end(self, trainer, epoch, logs):
        self.weights.append(trainer.raw_model.head.weight.detach().clone())


@pytest.mark.parametrize("sampler", list(SAMPLERS))
@pytest.mark.parametrize("precision", list(HALF))
def test_milp_escape_solves_in_float32_and_loads_a_float32_head(precision, sampler):
    """On a plateau (lr 1e-30: the weights do not move) of a half-precision run the escape is called;
    the solver gets float32 embeddings (computed outside autocast from the half store, widened) and
    the float32 head; an accepted point lowered the float64 training objective and is the head the
    next epoch trains."""
    pytest.importorskip("mip")
    from gnnkit.escape.milp import MILPEscape

    class Spy(MILPEscape):
        def search(self, h, y, head, ctx):
            self.seen = (h.dtype, head.weight.dtype)
            return super().search(h, y, head, ctx)

        def on_plateau(self, ctx, model, evaluate, task):
            out = super().on_plateau(ctx, model, evaluate, task)
            if out is not None:  # later plateaus: None (max_calls spent)
                self.proposed = out.head_state
            return out

    esc, heads = Spy(patience=1, max_calls=1, time_limit=5, nodes=24, radius=0.1, margin=0.05), Heads()
    t = Trainer(sampler=SAMPLERS[sampler](), max_epochs=4, lr=1e-30, seed=3, progress=False, device="cpu",
                precision=precision, escape=esc, callbacks=[heads])
    torch.manual_seed(0)
    rec = t.fit(GraphSAGE(8, 16, 2, dropout=0.0), two_community_graph(20, 8))["escape"]
    assert len(rec) == 1 and rec[0]["nodes"] > 0 and esc.seen == (torch.float32, torch.float32)
    assert rec[0]["accepted"] and rec[0]["objective_after"] < rec[0]["objective_before"]
    proposed = esc.proposed["head.weight"]
    assert proposed.dtype == torch.float32 and bool(torch.isfinite(proposed).all())
    assert any(torch.equal(w, proposed) for w in heads.weights)  # loaded back as proposed
    assert t.raw_model.head.weight.dtype == torch.float32


def test_cpu_float16_note(caplog):
    """16-mixed on a CPU without float16 matrix kernels is said once (it trains, slowly); the
    other precisions and devices say nothing."""
    from gnnkit import precision as prec

    assert not prec.note_cpu_half("bf16-mixed", "cpu") and not prec.note_cpu_half("32", "cpu")
    slow = not torch.ops.mkldnn._is_mkldnn_fp16_supported()
    prec._NOTED.discard("cpu-fp16")
    with caplog.at_level("WARNING", logger="gnnkit"):
        assert prec.note_cpu_half("16-mixed", "cpu") == slow
        prec.note_cpu_half("16-mixed", "cpu")
    assert sum("bf16-mixed is the CPU's half precision" in r.message for r in caplog.records) == int(slow)


@pytest.mark.parametrize("sampler", ["neighbor", "cluster"])
def test_pipeline_gathers_half_and_gives_the_inline_weights(sampler):
    """A background sampling thread (num_workers=1) under bf16-mixed: the same half batches and the
    same weights as sampling in the loop's thread."""
    from gnnkit.samplers.pipeline import plan

    make = {"neighbor": lambda: NeighborSampler((4, 4), batch_size=4),
            "cluster": lambda: ClusterSampler(num_parts=4, clusters_per_batch=1)}[sampler]
    runs = [_fit("bf16-mixed", make(), "backprop", num_workers=w, prefetch=2) for w in (0, 1)]
    (t0, _, s0), (t1, _, s1) = runs
    assert plan(t1.sampler, t1.ctx)[0] == 1 and len(s1.losses) >= 4 * 3  # a background thread, several batches
    assert s0.dtypes == s1.dtypes == {torch.bfloat16} and s0.losses == s1.losses
    assert _same(t0.raw_model.state_dict(), t1.raw_model.state_dict())


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_sf_scores_keep_float32_resolution_under_autocast(dtype):
    """SF's logits are dot products of L2-normalized rows (in [-1, 1], classes hundredths apart):
    under autocast they are computed in float32 from the half rows, not rounded to the half type
    (where bfloat16's step near 1 is 2^-8 and the classes tied)."""
    from gnnkit.strategies.forward.losses import sf_logits

    g = torch.Generator().manual_seed(0)
    base = torch.nn.functional.normalize(torch.randn(1, 64, generator=g), dim=1)
    vn = torch.nn.functional.normalize(base + 1e-2 * torch.randn(3, 64, generator=g), dim=1)  # 3 close classes
    h = torch.cat([base, vn]).to(dtype)
    with torch.autocast("cpu", dtype=dtype):
        got = sf_logits(h, 1)
    want = h[:1].double() @ h[1:].double().t()
    assert got.dtype == torch.float32 and (got.double() - want).abs().max() < 1e-6
    assert got.unique().numel() == 3  # no tie between the classes
