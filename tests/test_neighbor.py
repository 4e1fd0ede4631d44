"""NeighborSampler on a hand-built graph.

    0 ── 1 ── 2        node 0: neighbors 1, 3, 4, 5, 6, 7 (degree 6)
    │ ╲  │             node 1: 0, 2, 3
    3    4   5 ─ 6     node 2: 1        node 5: 0, 6
    (0 also links 5, 6, 7)                node 7: 0
"""
import pytest
import torch
from torch_geometric.data import Data

from gnnkit.errors import GnnkitError
from gnnkit.models import build_model
from gnnkit.sparse import Adjacency
from gnnkit.trainer import Trainer
from gnnkit.samplers.neighbor import NeighborSampler, sample_blocks
from gnnkit.stores import from_data
from sampler_context import make_ctx

UNDIRECTED = [(0, 1), (1, 2), (0, 3), (1, 3), (0, 4), (0, 5), (5, 6), (0, 6), (0, 7)]


def hand_graph():
    e = torch.tensor(UNDIRECTED).t()
    ei = torch.cat([e, e.flip(0)], 1)
    x = torch.randn(8, 4, generator=torch.Generator().manual_seed(0))
    y = torch.tensor([0, 1, 0, 1, 0, 1, 0, 1])
    mask = torch.ones(8, dtype=torch.bool)
    return Data(x=x, y=y, edge_index=ei, train_mask=mask, val_mask=mask, test_mask=mask, num_classes=2)


def neighbors_of():
    nb = {i: set() for i in range(8)}
    for a, b in UNDIRECTED:
        nb[a].add(b)
        nb[b].add(a)
    return nb


def draw(seeds, fanouts, norm="mean", seed=0):
    graph, _ = from_data(hand_graph())
    lid = torch.full((8,), -1)
    gen = torch.Generator().manual_seed(seed)
    return sample_blocks(graph, torch.tensor(seeds), fanouts, norm, gen, lid)


@pytest.mark.parametrize("norm", ["mean", "sum", "gcn"])
def test_sampled_neighbors_are_real_distinct_and_within_fanout(norm):
    nb = neighbors_of()
    for seed in range(20):
        n_id, blocks = draw([0, 2, 5], [2, 3], norm, seed)
        assert n_id[:3].tolist() == [0, 2, 5] and len(set(n_id.tolist())) == n_id.numel()
        for block in blocks:
            dense = block.to_dense()
            assert block.num_cols >= block.num_rows
            for r in range(block.num_rows):
                g = int(n_id[r])
                cols = [int(n_id[c]) for c in dense[r].nonzero().view(-1)]
                kept = [c for c in cols if not (norm == "gcn" and c == g)]
                assert set(kept) <= nb[g], (g, kept)
                assert len(kept) == len(set(kept))
                k = 2 if block is blocks[-1] else 3  # the seeds' hop is fanouts[0], the last layer
                assert len(kept) == min(k, len(nb[g]))  # all neighbors when the degree is below k
        assert blocks[-1].num_rows == 3  # the last layer's rows are the seeds


def test_mean_rows_sum_to_one_and_full_fanout_gcn_is_exact():
    _, blocks = draw([0, 1, 7], [2], "mean")
    assert torch.allclose(blocks[0].to_dense().sum(1), torch.ones(3))
    data = hand_graph()
    full = Adjacency.from_edge_index(data.edge_index, 8, norm="gcn").to_dense()
    n_id, blocks = draw([0, 1, 7], [-1], "gcn")
    assert torch.allclose(blocks[0].to_dense(), full[n_id[:3]][:, n_id], atol=1e-6)


def test_draws_are_uniform_without_replacement():
    # node 0 has 6 neighbors; with fanout 2 each is kept with probability 1/3
    counts = torch.zeros(8)
    trials = 3000
    graph, _ = from_data(hand_graph())
    lid, gen = torch.full((8,), -1), torch.Generator().manual_seed(1)
    for _ in range(trials):
        n_id, _ = sample_blocks(graph, torch.tensor([0]), [2], "mean", gen, lid)
        counts[n_id[1:]] += 1
    p = counts[[1, 3, 4, 5, 6, 7]] / trials
    sd = (1 / 3 * 2 / 3 / trials) ** 0.5
    assert ((p - 1 / 3).abs() < 5 * sd).all(), p


def test_fit_with_neighbor_sampler_learns_and_is_reproducible():
    from test_history import random_graph

    data = random_graph()
    results = []
    for _ in range(2):
        torch.manual_seed(0)
        model = build_model("sage", data.num_features, 3, hidden=16, num_layers=2, dropout=0.0)
        sampler = NeighborSampler(fanouts=[5, 5], batch_size=32)
        r = Trainer(sampler=sampler, max_epochs=8, progress=False, device="cpu", seed=3).fit(model, data)
        assert r["history"][-1]["train_accuracy"] > 0.6
        results.append(r["history"][-1]["val_loss"])
    assert results[0] == results[1]


def test_fanouts_must_match_layers():
    model = build_model("gcn", 4, 2, hidden=8, num_layers=3)
    with pytest.raises(GnnkitError, match="3 graph layers but 2 fanouts"):
        Trainer(sampler=NeighborSampler([2, 2], 4), max_epochs=1, progress=False, device="cpu").fit(model, hand_graph())
    with pytest.raises(GnnkitError, match="fanouts"):
        NeighborSampler("3,x", 4)


def test_sample_from_edges_expands_both_endpoints_and_negatives():
    data = hand_graph()
    sampler = NeighborSampler(fanouts=[2, 2], batch_size=4)
    model = build_model("sage", 4, 2, hidden=8, num_layers=2)
    sampler.setup(make_ctx(data, adj_norm="mean"), model)
    edges = torch.tensor([[2, 6, 3], [1, 5, 2]])  # the last one a negative (not an edge)
    label = torch.tensor([1.0, 1.0, 0.0])
    batch = sampler.sample_from_edges(edges, label)
    assert batch.n_id[:batch.batch_size].tolist() == [1, 2, 3, 5, 6]  # the distinct endpoints
    assert torch.equal(batch.n_id[batch.edge_label_index], edges)
    assert torch.equal(batch.edge_label, label) and batch.loss_index.tolist() == [0, 1, 2]
    assert torch.equal(batch.x, data.x[batch.n_id])
    out = model(batch.x, batch.adj)
    assert out.shape[0] == batch.batch_size


def test_samplers_without_edge_sampling_name_themselves():
    from gnnkit.samplers.mvs import MVSSampler

    with pytest.raises(GnnkitError, match="mvs sampler does not sample from edges"):
        MVSSampler().sample_from_edges(torch.tensor([[0], [1]]))


def _trained(strategy=None, seed=3):
    from test_history import random_graph

    data = random_graph()
    torch.manual_seed(0)
    model = build_model("sage", data.num_features, 3, hidden=16, num_layers=2, dropout=0.0)
    kw = {} if strategy is None else {"strategy": strategy}
    trainer = Trainer(sampler=NeighborSampler(fanouts=[5, 5], batch_size=32), max_epochs=2, progress=False,
                      device="cpu", seed=seed, **kw)
    trainer.fit(model, data)
    return trainer, model, data


def test_sampled_inference_with_all_neighbors_equals_whole_graph_inference():
    from gnnkit.samplers.neighbor import SampledPredictions
    from gnnkit.strategies import Strategy

    trainer, model, data = _trained()
    model.eval()
    with torch.no_grad():
        full = trainer.strategy.predict(trainer.ctx, model)
        pred = SampledPredictions(trainer.ctx, model, fanouts=[-1, -1], batch_size=7)
        ids = torch.tensor([5, 0, 99, 5])
        assert pred.shape == full.shape and torch.allclose(pred[ids], full[ids], atol=1e-5)
        assert torch.allclose(pred[data.test_mask], full[data.test_mask], atol=1e-5)
        sampled = SampledPredictions(trainer.ctx, model, fanouts=[2, 2])
        assert torch.equal(sampled[ids], sampled[ids]) and torch.equal(sampled[ids][0], sampled[ids][3])
        assert not torch.allclose(sampled[data.test_mask], full[data.test_mask], atol=1e-3)
    with pytest.raises(GnnkitError, match="inference fanouts"):
        SampledPredictions(trainer.ctx, model, fanouts=[5])
    with pytest.raises(GnnkitError, match="outside"):
        pred[torch.tensor([data.num_nodes])]
    with pytest.raises(GnnkitError, match="inference must be one of"):
        Strategy.resolve("backprop").set_inference("approximate")


def test_trainer_evaluates_on_sampled_neighborhoods_when_the_graph_would_not_fit(monkeypatch):
    """``inference="auto"`` switches to sampled neighborhoods above half the memory limit; with every
    neighbor kept the figures are the whole-graph ones; the same seed gives the same figures."""
    from gnnkit.samplers.neighbor import SampledPredictions
    from gnnkit.strategies import Strategy
    from gnnkit.strategies.base import whole_graph_bytes

    trainer, model, _ = _trained()
    full = trainer.evaluate("test")
    need = whole_graph_bytes(trainer.ctx, model)
    monkeypatch.setenv("GNNKIT_MEMORY_LIMIT", str(2 * need + 2))
    assert not isinstance(trainer.strategy.predict(trainer.ctx, model), SampledPredictions)
    monkeypatch.setenv("GNNKIT_MEMORY_LIMIT", str(2 * need - 2))
    assert isinstance(trainer.strategy.predict(trainer.ctx, model), SampledPredictions)
    trainer.strategy.set_inference("auto", fanouts=[-1, -1])
    exact = trainer.evaluate("test")
    assert exact.keys() == full.keys() and all(abs(exact[k] - full[k]) < 1e-5 for k in full)
    figures = []
    for _ in range(2):
        t, _, _ = _trained(Strategy.resolve("backprop").set_inference("sampled", fanouts=[2, 2]))
        figures.append(t.evaluate("test"))
    assert figures[0] == figures[1] and figures[0]["test_loss"] != full["test_loss"]
    trainer.strategy.set_inference("full")
    assert trainer.evaluate("test") == full


def test_sampled_evaluation_scores_val_and_test_only():
    """On sampled neighborhoods the loop does not score the training nodes (papers100M: 1.2M of them,
    hours of sampled inference per evaluation); whole-graph inference scores all three splits."""
    from gnnkit.strategies import Strategy

    sampled, _, _ = _trained(Strategy.resolve("backprop").set_inference("sampled", fanouts=[2, 2]))
    full, _, _ = _trained(Strategy.resolve("backprop").set_inference("full"))
    assert not any(k.startswith("train_") for k in sampled.result["metrics"]) and "val_accuracy" in sampled.history[0]
    assert {"train_accuracy", "val_accuracy", "test_accuracy"} <= set(full.result["metrics"])
    assert "train_accuracy" in sampled.evaluate("train")  # asked for, it is still scored


def test_sampled_evaluation_reuses_the_selected_weights_figures(monkeypatch):
    """At the end of fit the selected weights' figures from their own validation are the final ones
    (no second evaluation at scale), and they equal a fresh evaluation of the restored weights."""
    from gnnkit.strategies import Strategy

    calls, real = [], Trainer._evaluate

    def counting(self, splits=None):
        calls.append(splits)
        return real(self, splits)

    monkeypatch.setattr(Trainer, "_evaluate", counting)
    t, _, _ = _trained(Strategy.resolve("backprop").set_inference("sampled", fanouts=[2, 2]))
    assert len(calls) == 2  # one validation per epoch, none at the end
    assert t.result["metrics"] == {**t.evaluate("val"), **t.evaluate("test")}
    calls.clear()
    _trained(Strategy.resolve("backprop").set_inference("full"))
    assert len(calls) == 3  # whole-graph inference: the final evaluation runs as before
