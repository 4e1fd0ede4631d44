"""Edge weights in the link task: the split keeps every edge's weight, the run's message-passing graph
and every sampler propagate with them (as for node classification), mismatched weights refused."""
from __future__ import annotations

import pytest
import torch

from gnnkit import Trainer
from gnnkit.data.csbm import csbm
from gnnkit.errors import GnnkitError
from gnnkit.link import random_link_split
from gnnkit.models import GCN
from gnnkit.samplers.edges import EdgeLoader, link_edges_of
from gnnkit.samplers.neighbor import NeighborSampler
from gnnkit.sparse import Adjacency
from gnnkit.tasks.link import LinkPrediction
from sampler_context import make_ctx


def _weighted(n=200, seed=0):
    """A csbm graph whose pair {u, v} has the weight table[min * n + max] in both directions."""
    data = csbm(num_nodes=n, num_classes=4, avg_degree=6, num_features=8, homophily=0.9, seed=seed)
    src, dst = data.edge_index
    table = torch.rand(n * n, generator=torch.Generator().manual_seed(seed + 1)) * 2 + 0.1
    data.edge_weight = table[torch.minimum(src, dst) * n + torch.maximum(src, dst)]
    return data, table


def _weights_of(pairs, table, n):
    return table[torch.minimum(pairs[0], pairs[1]) * n + torch.maximum(pairs[0], pairs[1])]


def test_split_keeps_each_edge_weight_and_draws_as_without():
    data, table = _weighted()
    n = data.num_nodes
    split = random_link_split(data.edge_index, n, seed=3, edge_weight=data.edge_weight)
    plain = random_link_split(data.edge_index, n, seed=3)
    assert torch.equal(split.train_pos, plain.train_pos) and torch.equal(split.test_neg, plain.test_neg)
    assert torch.equal(split.train_weight, _weights_of(split.train_pos, table, n))
    assert torch.equal(split.val_weight, _weights_of(split.val_pos, table, n))
    assert torch.equal(split.extra["test_weight"], _weights_of(split.test_pos, table, n))
    mp, w = split.message_edges("train"), split.message_weights("train")
    assert torch.equal(w, _weights_of(mp, table, n)) and plain.message_weights("train") is None
    split.val_in_test_graph = True
    assert torch.equal(split.message_weights("test"), _weights_of(split.message_edges("test"), table, n))


def test_weights_that_differ_between_directions_are_refused():
    data, _ = _weighted()
    data.edge_weight = data.edge_weight.clone()
    data.edge_weight[0] += 1.0
    with pytest.raises(GnnkitError, match="one weight per edge"):
        random_link_split(data.edge_index, data.num_nodes, edge_weight=data.edge_weight)


def test_the_run_propagates_with_the_weights():
    data, table = _weighted()
    torch.manual_seed(0)
    trainer = Trainer(task="link", max_epochs=2, seed=0, progress=False, device="cpu")
    model = GCN(8, 16, 16, num_layers=2, dropout=0.0)
    trainer.fit(model, data)
    graph, split = trainer.ctx.graph, trainer.task.split
    assert torch.equal(graph.edge_weight(), _weights_of(graph.edge_index(), table, data.num_nodes))
    model.eval()
    x = trainer.ctx.features.get("x")
    mp = split.message_edges("train")
    with torch.no_grad():
        z = trainer.strategy.predict(trainer.ctx, model)
        weighted = model(x, Adjacency.from_edge_index(mp, data.num_nodes, edge_weight=split.message_weights("train")))
        plain = model(x, Adjacency.from_edge_index(mp, data.num_nodes))
    assert torch.allclose(z, weighted, atol=1e-5) and not torch.allclose(z, plain, atol=1e-3)


def test_neighbor_edge_batches_use_the_weights():
    """With every neighbor kept, an edge batch's embeddings are the weighted whole-graph ones."""
    data, _ = _weighted()
    task = LinkPrediction()
    prepared = task.prepare_data(data, seed=0)
    ctx = make_ctx(prepared)
    model = GCN(8, 16, 16, num_layers=2, dropout=0.0).eval()
    sampler = NeighborSampler(fanouts=(-1, -1), batch_size=16)
    sampler.setup(ctx, model)
    eli, lab = next(iter(EdgeLoader(link_edges_of(ctx), batch_size=16).batches(ctx, 0)))
    batch = sampler.sample_from_edges(eli, lab)
    with torch.no_grad():
        z = model(batch.x, batch.adj)
        full = model(prepared.x, ctx.graph.adjacency("gcn", 0.0))
    assert torch.allclose(z, full[batch.n_id[:batch.batch_size]], atol=1e-5)
    assert prepared.edge_weight is not None and not torch.all(prepared.edge_weight == 1)
