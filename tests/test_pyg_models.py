"""PyG-style models (forward(x, edge_index)) in the Trainer: full, cluster and neighbor samplers, the
plain PyG loop they must match, edge weights/attributes handed on, MVS and ForwardGNN refusing."""
from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from helpers import two_community_graph
from torch import nn
from torch_geometric.nn import GATConv, GCNConv
from torch_geometric.nn.models import GraphSAGE

from gnnkit.errors import GnnkitError
from gnnkit.models.pyg import PyGModel, as_model, is_pyg_model
from gnnkit.samplers.batch import PygEdges
from gnnkit.samplers.cluster import ClusterSampler
from gnnkit.samplers.mvs import MVSSampler
from gnnkit.samplers.neighbor import NeighborSampler
from gnnkit.trainer import Trainer
from sampler_context import make_ctx


class GAT(nn.Module):
    """Two GATConv layers, written as a PyG user writes them."""

    def __init__(self, in_dim: int, hidden: int, out_dim: int, heads: int = 2):
        super().__init__()
        self.conv1 = GATConv(in_dim, hidden, heads=heads)
        self.conv2 = GATConv(hidden * heads, out_dim, heads=1)

    def forward(self, x, edge_index):
        return self.conv2(F.elu(self.conv1(x, edge_index)), edge_index)


class WeightedGCN(nn.Module):
    def __init__(self, in_dim: int, out_dim: int):
        super().__init__()
        self.conv1, self.conv2 = GCNConv(in_dim, 16), GCNConv(16, out_dim)

    def forward(self, x, edge_index, edge_weight=None):
        return self.conv2(torch.relu(self.conv1(x, edge_index, edge_weight)), edge_index, edge_weight)


class EdgeAttrNet(nn.Module):
    """Sees the edge features: mean of edge_attr into each target, concatenated to x."""

    def __init__(self, in_dim: int, attr_dim: int, out_dim: int):
        super().__init__()
        self.conv = GCNConv(in_dim + attr_dim, out_dim)
        self.seen = []

    def forward(self, x, edge_index, edge_attr=None):
        self.seen.append((self.training, None if edge_attr is None else edge_attr.shape[0]))
        agg = torch.zeros(x.shape[0], edge_attr.shape[1]).index_add_(0, edge_index[1], edge_attr)
        return self.conv(torch.cat([x, agg], 1), edge_index)


def data():
    return two_community_graph(n_per=30, seed=1)


def samplers(tmp_path):
    return {"full": lambda: "full", "neighbor": lambda: NeighborSampler([5, 5], 16),
            "cluster": lambda: ClusterSampler(num_parts=4, clusters_per_batch=2, cache_dir=str(tmp_path))}


@pytest.mark.parametrize("make_model", [lambda d: GAT(d.num_features, 8, 2),
                                        lambda d: GraphSAGE(d.num_features, 16, 2, out_channels=2)],
                         ids=["GATConv", "GraphSAGE"])
@pytest.mark.parametrize("kind", ["full", "neighbor", "cluster"])
def test_pyg_models_train_with_full_cluster_neighbor(make_model, kind, tmp_path):
    d = data()
    torch.manual_seed(0)
    module = make_model(d)
    before = copy.deepcopy(module.state_dict())
    r = Trainer(sampler=samplers(tmp_path)[kind](), max_epochs=25, progress=False, device="cpu",
                seed=0).fit(PyGModel(module), d)
    assert r["val"] > 0.8 and r["test"] > 0.75, r
    assert any(not torch.equal(before[k], v) for k, v in module.state_dict().items())  # the user's module trained


def plain_pyg_loop(module, d, epochs: int, lr: float, weight_decay: float):
    """The PyG tutorial loop: Adam, full-batch cross-entropy on the training nodes, evaluation each epoch."""
    opt = torch.optim.Adam(module.parameters(), lr=lr, weight_decay=weight_decay)
    curve = []
    for _ in range(epochs):
        module.train()
        opt.zero_grad()
        F.cross_entropy(module(d.x, d.edge_index)[d.train_mask], d.y[d.train_mask]).backward()
        opt.step()
        module.eval()
        with torch.no_grad():
            out = module(d.x, d.edge_index)
        pred = out.argmax(1)
        curve.append({s: float((pred[m] == d.y[m]).float().mean()) for s, m in
                      (("val", d.val_mask), ("test", d.test_mask))})
        curve[-1]["val_loss"] = float(F.cross_entropy(out[d.val_mask], d.y[d.val_mask]))
    return curve


def select(curve) -> int:
    """The epoch the Trainer selects: the best validation accuracy, ties to the lower validation loss,
    then the earlier epoch."""
    return max(range(len(curve)), key=lambda e: (curve[e]["val"], -curve[e]["val_loss"], -e))


@pytest.mark.parametrize("make_model", [lambda d: GAT(d.num_features, 8, 2),
                                        lambda d: GraphSAGE(d.num_features, 16, 2, out_channels=2)],
                         ids=["GATConv", "GraphSAGE"])
def test_full_batch_matches_a_plain_pyg_loop(make_model):
    d = data()
    for seed in range(3):
        torch.manual_seed(seed)
        module = make_model(d)
        twin = copy.deepcopy(module)
        r = Trainer(sampler="full", max_epochs=20, lr=0.01, weight_decay=5e-4, progress=False, device="cpu",
                    seed=seed).fit(PyGModel(module), d)
        torch.manual_seed(seed)
        curve = plain_pyg_loop(twin, d, 20, 0.01, 5e-4)
        ours = [h["val_accuracy"] for h in r["history"]]
        assert ours == pytest.approx([c["val"] for c in curve], abs=1e-6)
        assert r["test"] == pytest.approx(curve[r["best_epoch"]]["test"], abs=1e-6)
        assert select(curve) == r["best_epoch"]


def test_edge_weight_reaches_the_module_on_every_sampler(tmp_path):
    d = data()
    d.edge_weight = torch.rand(d.edge_index.shape[1], generator=torch.Generator().manual_seed(0)) + 0.1
    d.is_symmetric = True
    plain = copy.copy(d)
    del plain.edge_weight
    for kind, make in samplers(tmp_path).items():
        out = []
        for graph in (d, plain):
            torch.manual_seed(0)
            module = WeightedGCN(d.num_features, 2)
            Trainer(sampler=make(), max_epochs=3, progress=False, device="cpu", seed=0).fit(PyGModel(module), graph)
            out.append(torch.cat([p.detach().flatten() for p in module.parameters()]))
        assert not torch.equal(out[0], out[1]), kind


def test_edge_attr_reaches_a_module_that_takes_it(tmp_path):
    d = data()
    d.edge_attr = torch.randn(d.edge_index.shape[1], 3)
    for kind, make in samplers(tmp_path).items():
        module = EdgeAttrNet(d.num_features, 3, 2)
        model = PyGModel(module, num_layers=2)
        assert model.takes_edge_attr and not model.takes_edge_weight
        Trainer(sampler=make(), max_epochs=2, progress=False, device="cpu", seed=0).fit(model, d)
        assert module.seen and all(n for _, n in module.seen), kind  # training and evaluation
        assert {training for training, _ in module.seen} == {True, False}


def test_neighbor_subgraph_is_pyg_style():
    d = data()
    ctx = make_ctx(d)
    model = PyGModel(GraphSAGE(d.num_features, 8, 2, out_channels=2))
    sampler = NeighborSampler([3, 2], 4)
    sampler.setup(ctx, model)
    seeds = torch.tensor([0, 5, 9, 30])
    batch = sampler.sample_from_nodes(seeds)
    assert isinstance(batch.adj, PygEdges) and torch.equal(batch.n_id[:4], seeds)
    src, dst = batch.adj.edge_index
    glob = torch.stack([batch.n_id[src], batch.n_id[dst]])
    real = set(map(tuple, d.edge_index.t().tolist()))
    assert all(tuple(e) in real for e in glob.t().tolist())  # every edge is a graph edge j -> i
    indeg = torch.bincount(dst, minlength=batch.n_id.numel())
    assert (indeg[:4] <= 3).all() and (indeg[4:] <= 2).all()  # seeds: fanout 3, hop-1 nodes: fanout 2
    assert len(set(map(tuple, batch.adj.edge_index.t().tolist()))) == src.numel()  # each node sampled once


def test_detection_and_refusals():
    d = data()
    module = GraphSAGE(d.num_features, 8, 2, out_channels=2)
    assert is_pyg_model(module) and isinstance(as_model(module), PyGModel)
    from gnnkit.models import build_model

    gcn = build_model("gcn", d.num_features, 2)
    assert not is_pyg_model(gcn) and as_model(gcn) is gcn
    with pytest.raises(GnnkitError, match="MVS sampler needs a gnnkit model.*GraphSAGE is a PyG-style module"):
        Trainer(sampler=MVSSampler(batch_size=8), max_epochs=1, progress=False, device="cpu").fit(PyGModel(module), d)
    with pytest.raises(GnnkitError, match="forward strategy needs a model with `layers`"):
        Trainer(strategy="forward", max_epochs=1, progress=False, device="cpu").fit(PyGModel(module), d)
    with pytest.raises(GnnkitError, match="takes no edge_index"):
        PyGModel(nn.Linear(3, 2))


def test_cora_gat_through_the_trainer_matches_pyg_and_samplers_reach_it(cora_root, tmp_path):
    """Cora, GATConv (8 heads of 8): full batch gives the plain PyG loop's selected figures (2 seeds);
    neighbor and cluster batches land within 3 points of it (benchmarks/pyg_models.py: 10 seeds)."""
    from gnnkit.data import load

    d = load("Cora", root=cora_root)
    for seed in range(2):
        torch.manual_seed(seed)
        module = GAT(d.num_features, 8, 7, heads=8)
        twin = copy.deepcopy(module)
        r = Trainer(sampler="full", max_epochs=30, weight_decay=5e-4, progress=False, device="cpu",
                    seed=seed).fit(PyGModel(module), d)
        torch.manual_seed(seed)
        curve = plain_pyg_loop(twin, d, 30, 0.01, 5e-4)
        assert [h["val_accuracy"] for h in r["history"]] == pytest.approx([c["val"] for c in curve], abs=1e-6)
        assert r["test"] == pytest.approx(curve[r["best_epoch"]]["test"], abs=1e-6)
        assert select(curve) == r["best_epoch"]
        assert r["test"] > 0.75
    for make in (lambda: NeighborSampler([10, 10], 128),
                 lambda: ClusterSampler(num_parts=20, clusters_per_batch=4, cache_dir=str(tmp_path))):
        torch.manual_seed(0)
        s = Trainer(sampler=make(), max_epochs=30, weight_decay=5e-4, progress=False, device="cpu",
                    seed=0).fit(PyGModel(GAT(d.num_features, 8, 7, heads=8)), d)
        assert s["test"] > r["test"] - 0.03 or s["test"] > 0.78, s


def test_an_unwrapped_pyg_module_trains_and_holds_the_weights():
    d = data()
    torch.manual_seed(0)
    module = GraphSAGE(d.num_features, 8, 2, out_channels=2)
    before = copy.deepcopy(module.state_dict())
    r = Trainer(sampler=NeighborSampler([4, 4], 16), max_epochs=5, progress=False, device="cpu").fit(module, d)
    assert r["epochs"] == 5 and any(not torch.equal(before[k], v) for k, v in module.state_dict().items())
    ctx = make_ctx(d)
    with pytest.raises(GnnkitError, match=r"PyGModel\(model\)"):  # a sampler handed a bare module says how
        NeighborSampler([4, 4], 16).setup(ctx, module)


def test_evaluation_chunks_when_asked():
    d = data()
    torch.manual_seed(0)
    r1 = Trainer(sampler="full", max_epochs=3, progress=False, device="cpu").fit(GAT(d.num_features, 4, 2), d)
    torch.manual_seed(0)
    r2 = Trainer(sampler="full", max_epochs=3, progress=False, device="cpu",
                 inference_batch_size=9).fit(GAT(d.num_features, 4, 2), d)
    assert [h["val_loss"] for h in r1["history"]] == pytest.approx([h["val_loss"] for h in r2["history"]], abs=1e-5)


def test_chunked_inference_equals_the_whole_graph_forward():
    from gnnkit.stores import from_data

    d = data()
    torch.manual_seed(0)
    model = PyGModel(GraphSAGE(d.num_features, 8, 2, out_channels=2))
    adj = from_data(d)[0].adjacency("sum")
    whole = model.inference(d.x, adj)
    chunked = model.inference(d.x, adj, batch_size=7)
    assert torch.allclose(whole, chunked, atol=1e-5) and whole.shape == (d.num_nodes, 2)
    assert torch.allclose(model.inference(d.x, adj, batch_size=7, rows=(7, 21), gather=lambda h: h), whole[7:21],
                          atol=1e-5)
