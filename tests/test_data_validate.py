"""gnnkit.data.validate: every error names the field and the offending count/index.

The base graph, 4 nodes, 2 classes, a path with both directions:

    0 -- 1 -- 2 -- 3        y = [0, 0, 1, 1]; train {0, 2}, val {1}, test {3}
"""
import pytest
import torch
from torch_geometric.data import Data

from gnnkit.data import GraphValidationError, GraphWarning, load, validate


def graph(**changes) -> Data:
    d = Data(x=torch.randn(4, 3), y=torch.tensor([0, 0, 1, 1]),
             edge_index=torch.tensor([[0, 1, 1, 2, 2, 3], [1, 0, 2, 1, 3, 2]]),
             train_mask=torch.tensor([True, False, True, False]), val_mask=torch.tensor([False, True, False, False]),
             test_mask=torch.tensor([False, False, False, True]))
    d.num_classes = 2
    for k, v in changes.items():
        setattr(d, k, v)
    return d


def test_valid_graph_passes_unchanged():
    d = graph()
    assert validate(d) is d
    assert d.edge_index.size(1) == 6


@pytest.mark.parametrize("changes, message", [
    (dict(edge_index=torch.tensor([[0, 1, 2]])), r"edge_index must be a 2 x E integer tensor, got \(1, 3\)"),
    (dict(edge_index=torch.tensor([[0.0, 1.0], [1.0, 0.0]])), r"edge_index must hold integers, got dtype torch.float32"),
    (dict(edge_index=torch.tensor([[0, -1, 2], [1, 0, -3]])), r"edge_index has 2 negative node ids \(first at column 1: \[-1, 0\]\)"),
    (dict(edge_index=torch.tensor([[0, 1, 7], [1, 4, 0]])), r"edge_index has 2 node ids >= num_nodes=4 \(first at column 1: \[1, 4\]\)"),
    (dict(x=torch.tensor([[0.0], [float("nan")], [1.0], [float("inf")]])), r"x has 2 NaN or inf values in 2 rows \(first at node 1\)"),
    (dict(x=torch.randn(3, 2)), r"y has 4 labels but the graph has 3 nodes"),  # x sets N = 3
    (dict(x=torch.randn(3, 2), num_nodes=4), r"x has 3 rows but num_nodes is 4"),
    (dict(y=torch.tensor([0, 1, 1])), r"y has 3 labels but the graph has 4 nodes"),
    (dict(y=torch.tensor([0, 2, 1, -2])), r"y has 2 labels outside \[-1, num_classes=2\) \(first at node 1: 2\)"),
    (dict(num_classes=None), r"num_classes must be a non-negative int, got None"),
    (dict(train_mask=torch.tensor([True, False, True])), r"train_mask has 3 entries but the graph has 4 nodes"),
    (dict(val_mask=torch.tensor([0, 1, 0, 0])), r"val_mask must be a 1-d bool tensor, got torch.int64"),
    (dict(test_mask=torch.tensor([False, False, True, True])), r"train_mask and test_mask overlap in 1 nodes \(first node 2\)"),
    (dict(y=torch.tensor([0, 0, -1, 1])), r"train_mask holds 1 unlabeled nodes \(y = -1\), first node 2"),
])
def test_each_error_names_field_and_count(changes, message):
    with pytest.raises(GraphValidationError, match=message):
        validate(graph(**changes))


def test_empty_graph():
    d = Data(x=torch.zeros(0, 3), y=torch.zeros(0, dtype=torch.long), edge_index=torch.zeros(2, 0, dtype=torch.long))
    d.num_classes = 1
    with pytest.raises(GraphValidationError, match="empty graph: 0 nodes"):
        validate(d)


def test_error_is_a_value_error():
    assert issubclass(GraphValidationError, ValueError)


def test_unknown_dataset_lists_known_names():
    with pytest.raises(GraphValidationError, match=r"unknown dataset 'Coraa'; known: Cora, CiteSeer, PubMed, ogbn-arxiv"):
        load("Coraa")


def test_self_loops_and_duplicates_reported_then_fixed():
    # edges: the path, plus a self-loop 3->3 (column 6) and a second copy of 1->2 (column 7)
    ei = torch.tensor([[0, 1, 1, 2, 2, 3, 3, 1], [1, 0, 2, 1, 3, 2, 3, 2]])
    attr = torch.arange(8.0)
    d = graph(edge_index=ei, edge_attr=attr)
    with pytest.warns(GraphWarning, match="1 self-loops and 1 duplicate edges"):
        validate(d)
    assert d.edge_index.size(1) == 8  # reported, not changed
    validate(d, fix=True)
    assert d.edge_index.tolist() == ei[:, :6].tolist()  # order kept, first copy kept
    assert d.edge_attr.tolist() == [0, 1, 2, 3, 4, 5]  # edge attributes follow


def test_duplicates_found_in_unsorted_edges_keep_first_copy():
    ei = torch.tensor([[2, 0, 2, 1, 0], [1, 1, 1, 0, 1]])  # (2,1) at 0 and 2, (0,1) at 1 and 4
    from gnnkit.data.validate import duplicate_mask

    assert duplicate_mask(ei, 3).tolist() == [False, False, True, False, True]
