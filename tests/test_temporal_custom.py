"""The open temporal-link task (issue 27): a user's TemporalModule (examples/custom_temporal.py)
trains and scores (src, dst, t) queries; gnnkit's TGN conforms to the interface; a wrong sampler or
model is refused in one line; user metrics under both protocols."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

from gnnkit import Trainer
from gnnkit.errors import GnnkitError
from gnnkit.samplers import Sampler
from gnnkit.samplers.temporal import TemporalSampler
from gnnkit.tasks.temporal_link import TemporalLinkPrediction
from gnnkit.temporal.events import EventBatch
from gnnkit.temporal.interface import TemporalModule
from gnnkit.temporal.memory import TemporalMemory
from gnnkit.temporal.model import TGN
from gnnkit.temporal.neighbors import LastNeighbors
from test_temporal_data import random_stream

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "custom_temporal.py"


def example():
    spec = importlib.util.spec_from_file_location("custom_temporal", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def fit_custom(epochs=3, **task_kw):
    ex = example()
    stream, partner = ex.partner_stream(num_nodes=40, num_events=1200)
    torch.manual_seed(0)
    task = TemporalLinkPrediction(num_neighbors=4, eval_batch_size=50, **task_kw)
    trainer = Trainer(task=task, sampler=TemporalSampler(50), max_epochs=epochs, lr=1e-2, seed=0, progress=False,
                      device="cpu")
    model = ex.MeanTGN(stream.msg_dim, memory_dim=16, time_dim=4, embedding_dim=16, num_nodes=stream.num_nodes)
    return trainer, trainer.fit(model, stream), stream, partner


@pytest.fixture(scope="module")
def trained():
    return fit_custom(metrics=["average_precision"])


def test_custom_module_trains_and_beats_chance(trained):
    trainer, result, _, _ = trained
    m = result["metrics"]
    assert m["val_ap"] > 0.75 and m["test_ap"] > 0.75, m
    # the user metric: AP over all the split's pairs at once, reported beside the per-batch mean
    assert 0.6 < m["test_average_precision"] <= 1.0 and "val_new_average_precision" in m
    assert trainer.task.metric_direction("new_average_precision") is True


def test_predict_scores_queries(trained):
    trainer, _, stream, partner = trained
    task, model = trainer.task, trainer.raw_model
    before = trainer.test()
    src = torch.arange(40)
    rand = torch.randint(40, (40,), generator=torch.Generator().manual_seed(5))
    rand = torch.where(rand == partner[src], (rand + 1) % 40, rand)
    t = torch.full((80,), float(stream.t[-1]) + 1.0)
    probs = task.predict_queries(model, (torch.cat([src, src]), torch.cat([partner[src], rand]), t))
    assert probs.shape == (80,) and bool(((probs >= 0) & (probs <= 1)).all())
    pos, neg = probs[:40], probs[40:]
    assert float((pos.unsqueeze(1) > neg.unsqueeze(0)).float().mean()) > 0.8  # AUC of the queries
    # query order is kept; the task's state is unchanged (evaluation gives the same figures)
    perm = torch.randperm(80, generator=torch.Generator().manual_seed(0))
    again = task.predict_queries(model, {"src": torch.cat([src, src])[perm],
                                         "dst": torch.cat([partner[src], rand])[perm], "t": t[perm]})
    assert torch.allclose(again, probs[perm], atol=1e-6)
    assert trainer.test() == before


def replayed_state(task, model, upto):
    """The memory and neighbors after replaying the validation + test events with time < ``upto``
    from the state evaluation starts from, by hand."""
    d = task.data
    state = task.snapshot()
    task.restore(task._best) if task._best is not None else None
    ids = (d.val_mask | d.test_mask).nonzero().view(-1)
    bs = task.eval_batch_size
    for lo in range(0, ids.numel(), bs):
        e = ids[lo: lo + bs]
        if float(d.t[e[-1]]) >= upto:
            break
        b = EventBatch(e_id=e, src=d.src[e], dst=d.dst[e], t=d.t[e], msg=d.msg[e], neg_dst=d.dst[e])
        model.commit(task.memory, task.neighbors, b, model.score(task.memory, task.neighbors, d, b)[2])
    return state


def test_query_time_decides_what_the_model_has_seen(trained):
    trainer, _, stream, partner = trained
    task, model = trainer.task, trainer.raw_model.eval()
    d = task.data
    replay = (d.val_mask | d.test_mask).nonzero().view(-1)
    t_mid = float(d.t[replay[replay.numel() // 2]])  # mid-way through the replayed events
    src = torch.arange(10)
    for when in (t_mid, float(stream.t[-1]) + 1.0, float(d.t[replay[0]])):
        queries = (src, partner[src], torch.full((10,), when))
        got = task.predict_queries(model, queries)
        saved = replayed_state(task, model, when)
        b = EventBatch(e_id=src, src=src, dst=partner[src], t=torch.full((10,), when, dtype=torch.float64),
                       msg=torch.zeros(10, 0), neg_dst=partner[src])
        with torch.no_grad():
            want = model.score(task.memory, task.neighbors, d, b)[0].sigmoid()
        task.restore(saved)
        assert torch.allclose(got, want, atol=1e-6), when


def test_bad_queries_and_predict_before_fit(trained):
    trainer, _, _, _ = trained
    task, model = trainer.task, trainer.raw_model
    with pytest.raises(GnnkitError, match=r"node id outside \[0, 40\)"):
        task.predict_queries(model, ([0, 40], [1, 2], [1.0, 2.0]))
    with pytest.raises(GnnkitError, match="have 2, 1 and 2 entries"):
        task.predict_queries(model, ([0, 1], [1], [1.0, 2.0]))
    with pytest.raises(GnnkitError, match="NaN or infinite"):
        task.predict_queries(model, ([0], [1], [float("nan")]))
    with pytest.raises(GnnkitError, match=r"queries are \(src, dst, t\)"):
        task.predict_queries(model, ([0], [1]))
    with pytest.raises(GnnkitError, match="after Trainer.fit"):
        TemporalLinkPrediction().predict_queries(model, ([0], [1], [1.0]))
    with pytest.raises(GnnkitError, match="as they stream in"):
        task.predict(None, model, None)


def test_wrong_sampler_and_model_are_refused_in_one_line():
    task = TemporalLinkPrediction()
    with pytest.raises(GnnkitError, match="sampler 'full' does not sample one: use sampler='temporal'") as err:
        task.check_sampler(Sampler.resolve("full"))
    assert "\n" not in str(err.value)
    task.check_sampler(TemporalSampler())  # the right one passes
    from gnnkit.tasks.node import NodeClassification

    with pytest.raises(GnnkitError, match="sampler 'temporal' samples an event stream, the node task"):
        NodeClassification().check_sampler(TemporalSampler())
    s = random_stream(num_nodes=10, num_events=100)
    with pytest.raises(GnnkitError, match="TemporalModule .* got Linear"):
        Trainer(task=TemporalLinkPrediction(), sampler=TemporalSampler(20), max_epochs=1, progress=False,
                device="cpu").fit(torch.nn.Linear(2, 2), s)


def test_tgn_conforms_to_the_interface():
    """TGN's fused score equals the interface's generic score over TGN's four parts."""
    s = random_stream(num_nodes=15, num_events=200, msg_dim=3)
    for aggregator, message in (("last", "identity"), ("mean", "mlp")):
        torch.manual_seed(0)
        model = TGN(3, memory_dim=8, time_dim=6, embedding_dim=8, aggregator=aggregator, message=message).eval()
        assert isinstance(model, TemporalModule)
        memory, nbrs = TemporalMemory(15, 8, 3), LastNeighbors(15, 4)
        g = torch.Generator().manual_seed(0)
        for lo in range(0, 200, 20):
            e = torch.arange(lo, lo + 20)
            b = EventBatch(e_id=e, src=s.src[e], dst=s.dst[e], t=s.t[e], msg=s.msg[e],
                           neg_dst=torch.randint(15, (20,), generator=g))
            with torch.no_grad():
                pos, neg, ctx = model.score(memory, nbrs, s, b)
                pos2, neg2, ctx2 = TemporalModule.score(model, memory, nbrs, s, b)
            assert torch.allclose(pos, pos2, atol=1e-5) and torch.allclose(neg, neg2, atol=1e-5)
            assert torch.allclose(ctx.memory[torch.searchsorted(ctx.n_id, ctx2.n_id)], ctx2.memory, atol=1e-5)
            model.commit(memory, nbrs, b, ctx)


def test_custom_module_and_user_metric_under_tgb_protocol(tmp_path):
    """Under the TGB protocol the custom module ranks events against fixed negatives; a user metric
    declared lower-is-better selects the epoch with its minimum, and every figure has a direction."""
    from gnnkit.metrics import Metric, cross_entropy

    bce = Metric("bce", cross_entropy, higher_is_better=False)  # binary cross-entropy of the scored pairs
    ex = example()
    stream, _ = ex.partner_stream(num_nodes=40, num_events=800)
    torch.manual_seed(0)
    task = TemporalLinkPrediction(num_neighbors=4, eval_batch_size=50, protocol="tgb", num_negatives=10,
                                  negatives_dir=str(tmp_path), metrics=[bce])
    trainer = Trainer(task=task, sampler=TemporalSampler(50), max_epochs=6, lr=1e-2, seed=0, progress=False,
                      device="cpu", metric="bce")
    result = trainer.fit(ex.MeanTGN(0, memory_dim=16, time_dim=4, embedding_dim=16, num_nodes=40), stream)
    values = [h["val_bce"] for h in result["history"]]
    assert result["selected_on"] == "val_bce" and max(values) > min(values)
    assert values[result["best_epoch"]] == min(values)
    assert result["metrics"]["test_mrr"] > 0.3  # random ranking among 11 candidates: about 0.27
    for key in result["metrics"]:
        assert isinstance(task.metric_direction(key.split("_", 1)[1]), bool), key
    with pytest.raises(GnnkitError, match="'new_bce' has no declared direction"):
        task.metric_direction("new_bce")  # no inductive sets under TGB


def test_through_the_trainer_defaults_refusals_and_predict(trained):
    trainer, _, stream, partner = trained
    src = torch.arange(8)
    queries = (src, partner[src], torch.full((8,), float(stream.t[-1]) + 1.0))
    assert torch.equal(trainer.predict(queries), trainer.task.predict_queries(trainer.raw_model, queries))
    with pytest.raises(GnnkitError, match="as they stream in"):
        trainer.predict()
    # forgetting sampler="temporal": the task's default; a wrong one is refused when the Trainer is built
    assert Trainer(task="temporal-link", progress=False).sampler.name == "temporal"
    with pytest.raises(GnnkitError, match="sampler 'full' does not sample one: use sampler='temporal'"):
        Trainer(task="temporal-link", sampler="full", progress=False)
    # a node task: user metrics given to the Trainer; it predicts every node and takes no queries
    from gnnkit.models import GCN
    from helpers import two_community_graph

    node = Trainer(max_epochs=1, progress=False, device="cpu", metrics=["macro_f1"], metric="macro_f1")
    node.fit(GCN(8, 8, 2), two_community_graph())
    assert "val_macro_f1" in node.result["metrics"] and node.result["selected_on"] == "val_macro_f1"
    with pytest.raises(GnnkitError, match="takes no queries"):
        node.predict(queries)


class PyGParts(TemporalModule):
    """A PyG user's TGN assembled from PyG's own parts: ``IdentityMessage`` and ``TimeEncoder``
    (torch_geometric.nn.models.tgn), a ``GRUCell``, ``TransformerConv`` over the links with
    ``[φ(t_last(j) − t) ‖ msg]`` edge features, and a concatenation MLP."""

    def __init__(self, msg_dim, memory_dim=16, time_dim=8, emb_dim=16):
        super().__init__()
        from torch_geometric.nn import TransformerConv
        from torch_geometric.nn.models.tgn import IdentityMessage, TimeEncoder

        self.msg_dim, self.memory_dim = msg_dim, memory_dim
        self.time_enc = TimeEncoder(time_dim)
        self.msg_module = IdentityMessage(msg_dim, memory_dim, time_dim)
        self.gru = torch.nn.GRUCell(self.msg_module.out_channels, memory_dim)
        self.conv = TransformerConv(memory_dim, emb_dim // 2, heads=2, dropout=0.1, edge_dim=msg_dim + time_dim)
        self.head = torch.nn.Sequential(torch.nn.Linear(2 * emb_dim, emb_dim), torch.nn.ReLU(),
                                        torch.nn.Linear(emb_dim, 1))

    def message(self, s_node, s_other, raw_msg, dt):
        return self.msg_module(s_node, s_other, raw_msg, self.time_enc(dt.to(s_node.dtype)))

    def update_memory(self, s, m):
        return self.gru(m, s)

    def embed(self, h, last_update, edge_index, t, msg):
        rel_t = (last_update[edge_index[0]] - t).to(h.dtype)
        return self.conv(h, edge_index, torch.cat([self.time_enc(rel_t), msg.to(h.dtype)], -1))

    def predict_link(self, z_src, z_dst):
        return self.head(torch.cat([z_src, z_dst], -1)).view(-1)


def test_a_module_of_pyg_parts_trains_and_predicts():
    """The partner stream whose events carry a fixed code of their source as the raw message (so that
    memories tell nodes apart without static node vectors)."""
    from gnnkit.temporal.events import make_stream

    g = torch.Generator().manual_seed(0)
    partner, src = torch.randperm(40, generator=g), torch.randint(40, (1200,), generator=g)
    code = torch.randn(40, 4, generator=g)
    stream = make_stream(src, partner[src], torch.arange(1200).double(), code[src], num_nodes=40)
    torch.manual_seed(0)
    trainer = Trainer(task=TemporalLinkPrediction(num_neighbors=4, eval_batch_size=50), max_epochs=6, lr=1e-2,
                      seed=0, progress=False, device="cpu")
    result = trainer.fit(PyGParts(stream.msg_dim), stream)
    assert trainer.sampler.name == "temporal"
    assert result["metrics"]["val_ap"] > 0.65 and result["metrics"]["test_ap"] > 0.65, result["metrics"]
    src = torch.arange(40)
    probs = trainer.predict((src, partner[src], torch.full((40,), 1300.0)))
    assert probs.shape == (40,) and bool(((probs > 0) & (probs < 1)).all())
