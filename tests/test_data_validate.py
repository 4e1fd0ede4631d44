"""gnnkit.data.validate: every error names the field and the offending count/index.

The base graph, 4 nodes, 2 classes, a path with both directions:

    0 -- 1 -- 2 -- 3        y = [0, 0, 1, 1]; train {0, 2}, val {1}, test {3}
"""
import pytest
import torch
from torch_geometric.data import Data

from gnnkit.data import GraphValidationError, GraphWarning, load, validate
from gnnkit.errors import GnnkitError


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


# -- issue 27: a PyG Data as a first-class input -----------------------------------------------------------
def test_load_accepts_a_pyg_data_and_converts():
    g = Data(x=torch.randint(0, 3, (6, 2)), edge_index=torch.tensor([[0, 1], [1, 2]], dtype=torch.int32),
             y=torch.tensor([0, 1, 2, 0, 1, 2]))
    d = load(g)
    assert d.x.dtype == torch.float32 and d.edge_index.dtype == torch.long and d.num_classes == 3
    assert g.x.dtype == torch.long and g.get("train_mask") is None  # the user's object is not changed
    assert [int(d[k].sum()) for k in ("train_mask", "val_mask", "test_mask")] == [4, 1, 1]
    assert d.split_info.startswith("random 0.6/0.2/rest of the 6 labeled nodes")


def test_karate_club_gets_the_missing_masks():
    from torch_geometric.datasets import KarateClub

    d = load(KarateClub()[0])
    assert d.num_classes == 4 and int(d.train_mask.sum()) == 4
    assert int(d.val_mask.sum()) == 15 and int(d.test_mask.sum()) == 15
    assert not bool((d.train_mask & (d.val_mask | d.test_mask)).any())
    assert "val_mask and test_mask drawn from the other 30 labeled nodes" in d.split_info


@pytest.mark.parametrize("change, message", [
    ({"val_mask": "all", "train_mask": "all"}, r"train_mask and val_mask overlap in 6 nodes"),
    ({"train_mask": "none"}, r"train_mask selects no node"),
    ({"y": torch.tensor([0.5, 1, 2, 0, 1, 2])}, r"y must be whole class ids, got 0\.5 at node 0"),
    ({"y": torch.tensor([0, 1, 2, 0, 1, 10 ** 9])}, r"y: class id 1000000000 at node 5 is outside \[-1, num_nodes=6\)"),
    ({"train_mask": torch.tensor([0, 2, 0, 0, 0, 0])}, r"train_mask must be a bool mask \(or 0/1\)"),
])
def test_bad_pyg_data_refused(change, message):
    fill = {"all": torch.ones(6, dtype=torch.bool), "none": torch.zeros(6, dtype=torch.bool)}
    g = Data(x=torch.randn(6, 2), edge_index=torch.tensor([[0, 1], [1, 2]]), y=torch.tensor([0, 1, 2, 0, 1, 2]))
    for key, value in change.items():
        g[key] = fill[value] if isinstance(value, str) else value
    with pytest.raises(GraphValidationError, match=message):
        load(g)


# -- issue 19: info on any valid graph, fingerprint, size check ---------------------------------------------
def test_info_describes_a_four_node_graph():
    from gnnkit.data.info import describe

    info = describe(load(Data(x=torch.eye(4), edge_index=torch.tensor([[0, 1, 2, 3], [1, 2, 3, 0]]),
                              y=torch.tensor([0, 1, 0, 1]))))
    assert info["nodes"] == 4 and info["classes"] == 2 and info["split"] == {"train": 2, "val": 1, "test": 1}


def test_fingerprint_follows_content_not_name():
    from gnnkit.data import fingerprint

    a = load("csbm:num_nodes=300,num_features=4,seed=1")
    b = load("csbm:num_nodes=300,num_features=4,seed=1")
    b.name = "renamed"
    assert fingerprint(a) == fingerprint(b) and len(fingerprint(a)) == 32
    b.y = b.y.clone()
    b.y[7] = (b.y[7] + 1) % 10
    assert fingerprint(a) != fingerprint(b)  # small tensors are hashed whole
    c = load("csbm:num_nodes=300,num_features=4,seed=2")
    assert fingerprint(a) != fingerprint(c)


def test_hash_tensors_exact_and_sampled():
    from gnnkit.data import hash_tensors

    t = torch.arange(1000)
    u = t.clone()
    u[1] = -1
    assert hash_tensors(t) != hash_tensors(u)  # exact: every element
    assert hash_tensors(t, sample=100) == hash_tensors(u, sample=100)  # element 1 is not sampled
    assert hash_tensors(t, sample=100) != hash_tensors(t[:-1], sample=100)  # the shape always counts


def test_check_allocation_names_the_figure(monkeypatch):
    from gnnkit.data import check_allocation

    check_allocation(1024, "small")
    with pytest.raises(GnnkitError, match=r"node features \[1e12 x 100\] needs 363\.8 TiB, more than this machine's"):
        check_allocation(4e14, "node features [1e12 x 100]")
    monkeypatch.setenv("GNNKIT_MEMORY_LIMIT", "2G")
    with pytest.raises(GnnkitError, match=r"x needs 3\.0 GiB, more than this machine's 2\.0 GiB"):
        check_allocation(3 << 30, "x")
    with pytest.raises(GnnkitError, match="needs an unbounded amount"):
        check_allocation(float("inf"), "y")


def test_integer_features_refused_by_validate_converted_by_load():
    d = Data(x=torch.ones(3, 2, dtype=torch.long), edge_index=torch.tensor([[0], [1]]), y=torch.tensor([0, 1, 0]),
             num_classes=2)
    with pytest.raises(GraphValidationError, match=r"x must hold floating-point features, got dtype torch\.int64"):
        validate(d)
    assert load(d).x.dtype == torch.float32
