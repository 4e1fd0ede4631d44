"""Graph and feature stores: the in-memory backend answers every question like the raw graph."""
import pytest
import torch

from gnnkit.errors import GnnkitError
from gnnkit.sparse import Adjacency
from gnnkit.stores import FeatureStore, GraphStore, from_data
from helpers import two_community_graph


def _directed():
    # 0->1, 2->1, 3->1, 1->0, 3->2 (targets unsorted on purpose)
    from torch_geometric.data import Data

    ei = torch.tensor([[0, 3, 1, 2, 3], [1, 2, 0, 1, 1]])
    return Data(x=torch.arange(8.0).view(4, 2), y=torch.tensor([0, 1, 1, 0]), edge_index=ei,
                train_mask=torch.tensor([True, False, True, False]), num_nodes=4)


def test_abstract_bases_cannot_be_built():
    with pytest.raises(TypeError):
        GraphStore()
    with pytest.raises(TypeError):
        FeatureStore()


def test_csr_by_destination_and_degrees():
    graph, _ = from_data(_directed())
    indptr, indices = graph.csr()
    assert indptr.tolist() == [0, 1, 4, 5, 5] and indptr.dtype == torch.int64
    assert indices.tolist() == [1, 0, 2, 3, 3]  # row 1: sources 0, 2, 3 in edge order
    assert graph.in_degree().tolist() == [1, 3, 1, 0]
    assert graph.in_degree(torch.tensor([3, 1])).tolist() == [0, 3]
    assert (graph.num_nodes, graph.num_edges, graph.is_symmetric) == (4, 5, False)
    counts, src = graph.neighbors(torch.tensor([2, 1]))
    assert counts.tolist() == [1, 3] and src.tolist() == [3, 0, 2, 3]


def test_sample_neighbors_is_a_subset_without_repeats():
    data = two_community_graph(30)
    graph, _ = from_data(data)
    ids = torch.arange(data.num_nodes)
    counts, src = graph.sample_neighbors(ids, 3, torch.Generator().manual_seed(0))
    deg = graph.in_degree(ids)
    assert torch.equal(counts, deg.clamp(max=3))
    full_counts, full_src = graph.neighbors(ids)
    for i, (row, full) in enumerate(zip(src.split(counts.tolist()), full_src.split(full_counts.tolist()))):
        assert set(row.tolist()) <= set(full.tolist()) and row.unique().numel() == row.numel(), i
    all_counts, all_src = graph.sample_neighbors(ids, -1, None)
    assert torch.equal(all_counts, full_counts) and torch.equal(all_src, full_src)


def test_adjacency_is_the_whole_graphs_and_cached():
    data = two_community_graph()
    data.is_symmetric = True
    graph, _ = from_data(data)
    a = graph.adjacency("gcn")
    want = Adjacency.from_edge_index(data.edge_index, data.num_nodes, norm="gcn", symmetric=True)
    assert torch.equal(a.to_dense(), want.to_dense())
    assert graph.adjacency("gcn") is a and graph.adjacency("gcn", 0.5) is a  # λ only matters for diag
    assert graph.adjacency("diag", 0.5) is not graph.adjacency("diag", 0.0)


def test_induced_subgraph_renumbers_in_node_order():
    graph, _ = from_data(_directed())
    assert graph.induced_subgraph(torch.tensor([1, 2, 3])).tolist() == [[2, 1, 2], [1, 0, 0]]


def test_feature_store_get_names_shapes_meta():
    data = _directed()
    data.num_classes = 2
    _, feats = from_data(data)
    assert feats.names() == ["train_mask", "x", "y"]
    ids = torch.tensor([3, 0, 3])
    assert torch.equal(feats.get("x", ids), data.x[ids]) and feats.get("x") is data.x
    assert feats.shape("x") == (4, 2) and feats.dtype("y") == torch.int64
    assert feats.index("train_mask").tolist() == [0, 2]
    assert feats.meta["num_classes"] == 2 and feats.meta["is_symmetric"] is False
    with pytest.raises(GnnkitError, match="no tensor 'val_mask'"):
        feats.get("val_mask")


def _imports(path):
    import ast

    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module if node.level == 0 else "." * node.level + node.module)
    return names


def test_layering_data_layer_and_samplers_import_nothing_of_training():
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    data_layer = list((root / "gnnkit" / "stores").glob("*.py")) + list((root / "gnnkit" / "sparse").glob("*.py"))
    data_layer += [root / "gnnkit" / "history.py", root / "gnnkit" / "partition.py"]
    training = ("gnnkit.trainer", "gnnkit.tasks", "gnnkit.strategies", "gnnkit.samplers", "gnnkit.cli",
                "gnnkit.commands", "gnnkit.distributed", "gnnkit.context")
    for path in data_layer:
        bad = [n for n in _imports(path) if n.startswith(training)]
        assert not bad, (path.name, bad)
    for path in (root / "samplers").glob("*.py"):
        bad = [n for n in _imports(path) if n.startswith(("gnnkit.trainer", "gnnkit.cli", "gnnkit.commands",
                                                          "gnnkit.distributed"))]
        assert not bad, (path.name, bad)
