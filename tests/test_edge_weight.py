"""Edge weights through every path: the whole-graph operator (against PyG's gcn_norm / GCNConv), the
stores, the neighbor sampler's estimator, Cluster-GCN's batches, MVS, training; edge_attr refused."""
from __future__ import annotations

import copy

import pytest
import torch
from helpers import two_community_graph
from torch_geometric.nn import GCNConv as PygGCNConv

from gnnkit.errors import GnnkitError
from gnnkit.models import build_model
from gnnkit.samplers.cluster import ClusterSampler
from gnnkit.samplers.mvs import MVSSampler
from gnnkit.samplers.neighbor import NeighborSampler
from gnnkit.sparse import Adjacency
from gnnkit.stores import from_data
from gnnkit.trainer import Trainer
from sampler_context import make_ctx


def weighted(seed: int = 0, symmetric_weights: bool = False):
    """The two-community graph with random weights in (0.1, 2.1) (symmetric ones on request)."""
    data = two_community_graph(n_per=20, seed=seed)
    g = torch.Generator().manual_seed(seed + 1)
    w = torch.rand(data.edge_index.shape[1], generator=g) * 2 + 0.1
    if symmetric_weights:  # w(j -> i) = w(i -> j): the weight of the pair's smaller-first orientation
        n = data.num_nodes
        src, dst = data.edge_index
        key = torch.minimum(src, dst) * n + torch.maximum(src, dst)
        w = torch.rand(n * n, generator=g)[key] * 2 + 0.1
    data.edge_weight = w
    data.is_symmetric = True
    return data


def dense_operator(data, norm: str) -> torch.Tensor:
    """The weighted operator by dense algebra: A[i, j] = Σ a of j -> i; gcn: D^-1/2 (A + I) D^-1/2."""
    n = data.num_nodes
    a = torch.zeros(n, n, dtype=torch.float64)
    a.index_put_((data.edge_index[1], data.edge_index[0]), data.edge_weight.double(), accumulate=True)
    if norm == "gcn":
        a = a + torch.eye(n, dtype=torch.float64)
        d = a.sum(1).rsqrt()
        return d[:, None] * a * d[None, :]
    if norm == "mean":
        return a / a.sum(1, keepdim=True).clamp(min=1e-30)
    return a


@pytest.mark.parametrize("symmetric_weights", [False, True])
@pytest.mark.parametrize("norm", ["gcn", "mean", "sum"])
def test_store_adjacency_is_the_weighted_operator(norm, symmetric_weights):
    data = weighted(symmetric_weights=symmetric_weights)
    graph, _ = from_data(data)
    assert graph.symmetric_adjacency == symmetric_weights  # the structure is symmetric either way
    got = graph.adjacency(norm).to_dense().double()
    assert torch.allclose(got, dense_operator(data, norm), atol=1e-6)
    assert torch.allclose(graph.adjacency(norm).t().to_dense().double(), dense_operator(data, norm).T, atol=1e-6)
    a = dense_operator(data, "sum")
    assert torch.allclose(graph.weighted_in_degree().double(), a.sum(1), atol=1e-5)


def test_gcn_forward_equals_pyg_gcnconv_with_edge_weight():
    data = weighted()
    torch.manual_seed(0)
    model = build_model("gcn", data.num_features, 3, hidden=16, num_layers=2, dropout=0.0).eval()
    conv1, conv2 = PygGCNConv(data.num_features, 16), PygGCNConv(16, 3)
    with torch.no_grad():
        conv1.lin.weight.copy_(model.layers[0].lin.weight)
        conv1.bias.copy_(model.layers[0].bias)
        conv2.lin.weight.copy_(model.head.weight)
        conv2.bias.copy_(model.head.bias)
        ours = model(data.x, from_data(data)[0].adjacency("gcn"))
        ref = conv2(torch.relu(conv1(data.x, data.edge_index, data.edge_weight)), data.edge_index, data.edge_weight)
        unweighted = conv2(torch.relu(conv1(data.x, data.edge_index)), data.edge_index)
    assert (ours - ref).abs().max() < 1e-5
    assert (ours - unweighted).abs().max() > 1e-3  # the weights matter on this graph


@pytest.mark.parametrize("norm", ["gcn", "mean", "sum"])
def test_neighbor_blocks_all_neighbors_are_exact_and_samples_unbiased(norm):
    data = weighted()
    ctx = make_ctx(data, adj_norm=norm)
    model = build_model("gcn", data.num_features, 2, hidden=8, num_layers=1)
    sampler = NeighborSampler(fanouts=[-1], batch_size=8)
    sampler.setup(ctx, model)
    seeds = torch.arange(data.num_nodes)
    block = sampler.sample_from_nodes(seeds).adj[0]
    assert torch.allclose(block.to_dense().double(), dense_operator(data, norm), atol=1e-6)
    sampler = NeighborSampler(fanouts=[2], batch_size=8)
    sampler.setup(ctx, model)
    gen, total, trials = torch.Generator().manual_seed(0), torch.zeros(data.num_nodes, data.num_nodes), 1500
    for _ in range(trials):  # E[sampled row] = the full row (Horvitz-Thompson)
        batch = sampler.sample_from_nodes(seeds, gen)
        dense = batch.adj[0].to_dense()
        total[:, batch.n_id] += dense
    # entry (i, j) is kept with probability p_i = s_i / d_i, worth a_ij / p_i: 5 standard errors
    true, d = dense_operator(data, norm), from_data(data)[0].in_degree().double()
    p = (d.clamp(max=2) / d)[:, None]
    bound = 5 * (p * (1 - p) / trials).sqrt() * true / p + 1e-6
    assert ((total / trials).double() - true).abs().le(bound).all()


def test_cluster_batch_uses_the_weights():
    data = weighted()
    ctx = make_ctx(data)
    model = build_model("gcn", data.num_features, 2, hidden=8)
    sampler = ClusterSampler(num_parts=2, clusters_per_batch=2)
    sampler.setup(ctx, model)
    batch = sampler.batch(torch.arange(2))  # every cluster: the whole graph, permuted
    dense = dense_operator(data, "gcn")[batch.n_id][:, batch.n_id]
    assert torch.allclose(batch.adj.to_dense().double(), dense, atol=1e-6)


def fit(data, sampler, model_name="gcn", epochs=3):
    torch.manual_seed(0)
    model = build_model(model_name, data.num_features, 2, hidden=16, dropout=0.0)
    Trainer(sampler=sampler, max_epochs=epochs, progress=False, device="cpu", seed=0).fit(model, data)
    return torch.cat([p.detach().flatten() for p in model.parameters()])


@pytest.mark.parametrize("make", [lambda: "full", lambda: NeighborSampler([5, 5], 8),
                                  lambda: ClusterSampler(num_parts=4, clusters_per_batch=2),
                                  lambda: MVSSampler(batch_size=8)], ids=["full", "neighbor", "cluster", "mvs"])
def test_weighted_graph_trains_differently(make, tmp_path):
    data = weighted()
    plain = copy.copy(data)
    del plain.edge_weight
    ones = copy.copy(data)
    ones.edge_weight = torch.ones_like(data.edge_weight)
    sampler = make()
    if isinstance(sampler, ClusterSampler):
        sampler.cache_dir = str(tmp_path)
    a, b = fit(data, sampler), fit(plain, make() if not isinstance(sampler, ClusterSampler) else sampler)
    assert not torch.equal(a, b)
    if not isinstance(sampler, ClusterSampler):
        c = fit(ones, make())  # weights of 1 are the unweighted graph (up to rounding)
        assert torch.allclose(b, c, atol=1e-4)


def test_bad_weights_are_refused():
    data = weighted()
    data.edge_weight = data.edge_weight.clone()
    data.edge_weight[0] = float("nan")
    with pytest.raises(GnnkitError, match="edge_weight must be finite"):
        from_data(data)
    data.edge_weight = torch.ones(3)
    with pytest.raises(GnnkitError, match=r"edge_weight must have shape \[E\]"):
        from_data(data)


def test_edge_attr_is_refused_by_gnnkit_models():
    data = two_community_graph()
    data.edge_attr = torch.randn(data.edge_index.shape[1], 3)
    model = build_model("gcn", data.num_features, 2, hidden=8)
    for sampler in ("full", NeighborSampler([3, 3], 8)):
        with pytest.raises(GnnkitError, match="edge_attr .* cannot use edge features"):
            Trainer(sampler=sampler, max_epochs=1, progress=False, device="cpu").fit(model, data)


def test_adjacency_rejects_weights_of_the_wrong_length():
    with pytest.raises(GnnkitError, match="edge_weight must have shape"):
        Adjacency.from_edge_index(torch.tensor([[0, 1], [1, 0]]), 2, edge_weight=torch.ones(3))


def test_load_drop_edge_attr_trains_and_keeps_the_users_graph():
    from gnnkit.data import load

    data = weighted()
    data.edge_attr = torch.randn(data.edge_index.shape[1], 3)
    loaded = load(data, drop_edge_attr=True)
    assert getattr(loaded, "edge_attr", None) is None and data.edge_attr is not None
    assert torch.equal(loaded.edge_weight, data.edge_weight)  # weights are kept
    model = build_model("gcn", data.num_features, 2, hidden=8)
    r = Trainer(sampler="full", max_epochs=2, progress=False, device="cpu").fit(model, loaded)
    assert r["epochs"] == 2
