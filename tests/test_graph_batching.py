"""Graph collections and block-diagonal batching (issue 24): a batch gives the same outputs as
each graph alone, the operator and its transpose are block-diagonal, the loader is seeded."""
from __future__ import annotations

import pytest
import torch
from torch_geometric.data import Data

from gnnkit.errors import GraphValidationError
from gnnkit.graphs import GraphBatcher, GraphCollection, GraphLoader, add_degree_features
from gnnkit.models.gin import GIN
from gnnkit.models.readout import GraphConvNet
from gnnkit.sparse import Adjacency


def random_graphs(count: int = 12, features: int = 5, seed: int = 0, edge_dim: int = 0):
    g = torch.Generator().manual_seed(seed)
    out = []
    for i in range(count):
        n = 1 if i == 3 else int(torch.randint(2, 9, (1,), generator=g))
        e = 0 if i in (3, 5) else int(torch.randint(1, 3 * n, (1,), generator=g))
        ei = torch.randint(0, n, (2, e), generator=g)
        ei = torch.cat([ei, ei.flip(0)], 1)
        d = Data(x=torch.randn(n, features, generator=g), edge_index=ei, y=torch.tensor([i % 3]))
        if edge_dim:
            d.edge_attr = torch.randn(ei.shape[1], edge_dim, generator=g)
        out.append(d)
    return out


def test_collection_concatenates_and_orders_edges():
    graphs = random_graphs()
    coll = GraphCollection.from_data_list(graphs)
    assert coll.num_graphs == 12 and coll.num_classes == 3
    assert coll.node_ptr.diff().tolist() == [g.num_nodes for g in graphs]
    assert coll.edge_ptr.diff().tolist() == [g.num_edges for g in graphs]
    assert torch.equal(coll.y, torch.tensor([i % 3 for i in range(12)]))
    dst = coll.edge_index[1]
    assert bool((dst[1:] >= dst[:-1]).all())  # CSR order
    for k, g in enumerate(graphs):  # the same edge multiset per graph, shifted by the node offset
        lo, hi = coll.edge_ptr[k], coll.edge_ptr[k + 1]
        mine = (coll.edge_index[:, lo:hi] - coll.node_ptr[k]).T.tolist()
        assert sorted(mine) == sorted(g.edge_index.T.tolist())


def _alone(model, g: Data, norm: str) -> torch.Tensor:
    adj = Adjacency.from_edge_index(g.edge_index, g.num_nodes, norm=norm)
    return model(g.x, adj, torch.tensor([0, g.num_nodes]))


@pytest.mark.parametrize("make", [
    lambda f: GIN(f, 16, 3, num_layers=3, train_eps=True),
    lambda f: GraphConvNet(f, 16, 3, conv="gcn", pooling="max"),
    lambda f: GraphConvNet(f, 16, 3, conv="sage", readout="all", pooling="mean"),
])
def test_block_diagonal_batch_equals_each_graph_alone(make):
    torch.manual_seed(0)
    graphs = random_graphs()
    coll = GraphCollection.from_data_list(graphs)
    model = make(coll.num_features)
    model.train()
    batcher = GraphBatcher(coll, model.adj_norm)
    model(*(lambda b: (b.x, b.adj, b.ptr))(batcher(torch.arange(12))))  # move the BatchNorm statistics
    model.eval()
    idx = torch.tensor([7, 3, 0, 11, 5, 7])
    b = batcher(idx)
    out = model(b.x, b.adj, b.ptr)
    alone = torch.cat([_alone(model, graphs[i], model.adj_norm) for i in idx.tolist()])
    torch.testing.assert_close(out, alone, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("norm", ["sum", "gcn", "mean"])
@pytest.mark.parametrize("sort_columns", [False, True])  # True: the CUDA layout (sorted, coalesced)
def test_batch_operator_and_transpose_are_the_graphs_blocks(norm, sort_columns):
    graphs = random_graphs(seed=1)
    coll = GraphCollection.from_data_list(graphs)
    idx = torch.tensor([4, 1, 9, 3])
    b = GraphBatcher(coll, norm, sort_columns=sort_columns)(idx)
    assert b.adj.sorted_columns == sort_columns
    if sort_columns:  # torch's CSR invariant holds for the batch's operator and its transpose
        for csr in (b.adj.csr, b.adj.csr_t):
            torch.sparse_csr_tensor(csr.crow_indices(), csr.col_indices(), csr.values(), csr.shape,
                                    check_invariants=True)
    blocks = [Adjacency.from_edge_index(graphs[i].edge_index, graphs[i].num_nodes, norm=norm).to_dense()
              for i in idx.tolist()]
    expect = torch.block_diag(*blocks)
    torch.testing.assert_close(b.adj.to_dense(), expect)
    torch.testing.assert_close(b.adj.csr_t.to_dense(), expect.T)
    assert torch.equal(b.x, torch.cat([graphs[i].x for i in idx.tolist()]))
    assert b.batch.tolist() == sum(([k] * graphs[i].num_nodes for k, i in enumerate(idx.tolist())), [])
    assert torch.equal(b.y, coll.y[idx])


def test_gradient_through_the_batch_operator():
    graphs = random_graphs(seed=2)
    coll = GraphCollection.from_data_list(graphs)
    b = GraphBatcher(coll, "gcn")(torch.tensor([0, 2, 6]))
    x = b.x.clone().requires_grad_(True)
    (b.adj @ x).pow(2).sum().backward()
    dense = b.adj.to_dense()
    x2 = b.x.clone().requires_grad_(True)
    (dense @ x2).pow(2).sum().backward()
    torch.testing.assert_close(x.grad, x2.grad)


def test_batch_edges_and_edge_features():
    graphs = random_graphs(seed=3, edge_dim=2)
    coll = GraphCollection.from_data_list(graphs)
    idx = torch.tensor([8, 2, 5])
    b = GraphBatcher(coll, "sum", edges=True)(idx)
    got = sorted(zip(b.edge_index.T.tolist(), b.edge_attr.tolist()))
    want = []
    for k, i in enumerate(idx.tolist()):
        shift = int(b.ptr[k])
        want += list(zip((graphs[i].edge_index + shift).T.tolist(), graphs[i].edge_attr.tolist()))
    assert got == sorted(want)


def test_loader_is_seeded_covering_and_sharded():
    coll = GraphCollection.from_data_list(random_graphs(count=30))
    batcher = GraphBatcher(coll)
    ids = torch.arange(30)
    loader = GraphLoader(batcher, ids, 8, seed=5)
    first = torch.cat([b.graph_ids for b in loader])
    assert sorted(first.tolist()) == list(range(30)) and len(loader) == 4
    again = torch.cat([b.graph_ids for b in GraphLoader(batcher, ids, 8, seed=5)])
    assert torch.equal(first, again)
    loader.set_epoch(1)
    assert not torch.equal(torch.cat([b.graph_ids for b in loader]), first)
    from gnnkit.distributed import shard

    loaders = [GraphLoader(batcher, ids, 4, seed=5, shard=lambda items, r=r: shard(items, r, 3), world_size=3)
               for r in range(3)]
    assert [len(ld) for ld in loaders] == [3, 3, 3]
    shards = [torch.cat([b.graph_ids for b in ld]) for ld in loaders]
    assert len(set(sum((s.tolist() for s in shards), []))) == 30
    assert [s.numel() for s in shards] == [10, 10, 10]
    assert len(GraphLoader(batcher, ids, 8, drop_last=True)) == 3


def test_degree_features_when_none():
    graphs = [Data(edge_index=g.edge_index, y=g.y, num_nodes=g.num_nodes) for g in random_graphs(seed=4)]
    coll = add_degree_features(GraphCollection.from_data_list(graphs))
    deg = torch.bincount(coll.edge_index[1], minlength=coll.num_nodes)
    assert coll.x.shape == (coll.num_nodes, int(deg.max()) + 1)
    assert torch.equal(coll.x.argmax(1), deg) and torch.equal(coll.x.sum(1), torch.ones(coll.num_nodes))
    capped = add_degree_features(coll, "replace", max_degree=2)
    assert capped.x.shape[1] == 3 and torch.equal(capped.x.argmax(1), deg.clamp(max=2))


@pytest.mark.parametrize("mutate, message", [
    (lambda gs: gs[2].__setattr__("edge_index", torch.tensor([[0], [40]])), "outside"),
    (lambda gs: gs[1].__setattr__("x", torch.randn(gs[1].num_nodes, 3)), "feature widths"),
    (lambda gs: gs[0].__setattr__("y", None), "no label"),
    (lambda gs: gs[4].__setattr__("y", torch.tensor([-1])), "no label"),
    (lambda gs: gs.__setitem__(0, "graph"), "not a torch_geometric Data"),
])
def test_invalid_graphs_raise_one_line(mutate, message):
    graphs = random_graphs()
    mutate(graphs)
    with pytest.raises(GraphValidationError, match=message) as info:
        GraphCollection.from_data_list(graphs)
    assert "\n" not in str(info.value)
