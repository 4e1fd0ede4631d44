"""Planetoid, npz (both layouts) and networkx sources through gnnkit.data.load."""
import warnings

import networkx as nx
import numpy as np
import pytest
import scipy.sparse as sp
import torch

from gnnkit.data import GraphWarning, default_root, is_present, load
from gnnkit.errors import GnnkitError


def test_planetoid_cora(cora_root):
    data = load("cora", root=cora_root)  # case-insensitive
    assert data.name == "Cora" and data.num_classes == 7
    assert tuple(data.x.shape) == (2708, 1433) and data.x.dtype == torch.float32
    assert data.edge_index.shape == (2, 10556) and data.edge_index.dtype == torch.long
    assert data.y.dtype == torch.long
    assert [int(data[k].sum()) for k in ("train_mask", "val_mask", "test_mask")] == [140, 500, 1000]
    assert is_present("Cora", cora_root) and not is_present("CiteSeer", cora_root)


def test_planetoid_missing_files_named(tmp_path):
    with pytest.raises(GnnkitError, match=r"CiteSeer not found: expected ind\.citeseer\.x, .*ind\.citeseer\.test\.index in "):
        load("CiteSeer", root=tmp_path)


def test_gnn_benchmark_npz(shared_data):
    data = load(shared_data / "npz" / "cora.npz")
    assert data.num_nodes == 2708 and data.num_classes == 7 and data.x.shape == (2708, 1433)
    assert data.edge_index.size(1) == 10556  # 5429 stored entries, symmetrized and coalesced
    assert [int(data[k].sum()) for k in ("train_mask", "val_mask", "test_mask")] == [140, 500, 1000]
    per_class = torch.bincount(data.y[data.train_mask], minlength=7)
    assert per_class.tolist() == [20] * 7


def _write_dotted(path, dense_attr: bool):
    #   0 -> 1, 1 -> 2, 3 -> 0, 4 -> 4 (a self-loop); node 5 is isolated and unlabeled
    adj = sp.csr_matrix((np.ones(4), ([0, 1, 3, 4], [1, 2, 0, 4])), shape=(6, 6))
    attr = np.arange(12, dtype=np.float64).reshape(6, 2)
    arrays = {"adj_matrix.data": adj.data, "adj_matrix.indices": adj.indices, "adj_matrix.indptr": adj.indptr,
              "adj_matrix.shape": np.array(adj.shape), "labels": np.array([0, 1, 0, 1, 0, -1])}
    if dense_attr:
        arrays["attr_matrix"] = attr
    else:
        a = sp.csr_matrix(attr)
        arrays.update({"attr_matrix.data": a.data, "attr_matrix.indices": a.indices,
                       "attr_matrix.indptr": a.indptr, "attr_matrix.shape": np.array(a.shape)})
    np.savez(path, **arrays)


@pytest.mark.parametrize("dense_attr", [True, False])
def test_dotted_npz_layout(tmp_path, dense_attr):
    path = tmp_path / "tiny.npz"
    _write_dotted(path, dense_attr)
    with pytest.warns(GraphWarning, match="1 self-loops"):
        data = load(path, split="random", train_frac=0.4, val_frac=0.2)
    assert data.name == "tiny" and data.num_classes == 2
    assert data.x.tolist() == np.arange(12.0).reshape(6, 2).tolist()
    assert sorted(map(tuple, data.edge_index.t().tolist())) == [(0, 1), (0, 3), (1, 0), (1, 2), (2, 1), (3, 0), (4, 4)]
    masks = data.train_mask | data.val_mask | data.test_mask
    assert masks.tolist() == [True] * 5 + [False]  # the unlabeled node is in no split
    assert [int(data[k].sum()) for k in ("train_mask", "val_mask", "test_mask")] == [2, 1, 2]
    fixed = load(path, split="random", normalize=True)
    assert fixed.edge_index.size(1) == 6


def test_npz_planetoid_split_too_small_says_so(tmp_path):
    path = tmp_path / "tiny.npz"
    _write_dotted(path, True)
    with pytest.raises(GnnkitError, match=r"needs 1500 labeled nodes outside the training set .* only 0 remain"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", GraphWarning)
            load(path, split="planetoid")  # asked for explicitly: refused


def test_small_graph_gets_a_default_split_that_fits(tmp_path):
    # issue 19: a well-formed small graph failed with "planetoid split needs 1500 labeled nodes"
    path = tmp_path / "tiny.npz"
    _write_dotted(path, True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", GraphWarning)
        data = load(path)
    assert [int(data[k].sum()) for k in ("train_mask", "val_mask", "test_mask")] == [3, 1, 1]
    assert data.split_info.startswith("random 0.6/0.2/rest of the 5 labeled nodes (default")


def test_npz_without_adjacency(tmp_path):
    np.savez(tmp_path / "bad.npz", labels=np.zeros(3))
    with pytest.raises(GnnkitError, match=r"bad\.npz: no adjacency matrix; expected adj_data"):
        load(tmp_path / "bad.npz")


def test_networkx_graph_with_attributes():
    #   a -- b -- c    d (isolated, unlabeled)     DiGraph version: a -> b -> c
    for directed, edges in ((False, 4), (True, 2)):
        G = nx.DiGraph() if directed else nx.Graph()
        for i, v in enumerate("abcd"):
            G.add_node(v, x=[float(i), 1.0], y=None if v == "d" else i % 2)
        G.add_edges_from([("a", "b"), ("b", "c")])
        data = load(G, split="random", train_frac=1 / 3, val_frac=1 / 3)
        assert data.x.shape == (4, 2) and data.y.tolist() == [0, 1, 0, -1]
        assert data.edge_index.size(1) == edges and data.num_classes == 2
        assert int((data.train_mask | data.val_mask | data.test_mask).sum()) == 3


def test_networkx_masks_from_attributes():
    G = nx.path_graph(3)
    for v, (tr, va, te) in zip(G.nodes, [(1, 0, 0), (0, 1, 0), (0, 0, 1)]):
        G.nodes[v].update(x=float(v), y=v % 2, train_mask=tr, val_mask=va, test_mask=te)
    data = load(G)
    assert data.train_mask.tolist() == [True, False, False] and data.test_mask.tolist() == [False, False, True]


def test_networkx_partial_features_rejected():
    G = nx.path_graph(3)
    G.nodes[0]["x"] = 1.0
    with pytest.raises(GnnkitError, match="node attribute 'x' is missing on 2 of 3 nodes"):
        load(G)


def test_default_root(monkeypatch, tmp_path):
    monkeypatch.setenv("GNNKIT_DATA", str(tmp_path))
    assert default_root() == tmp_path
    monkeypatch.delenv("GNNKIT_DATA")
    assert default_root().name == "data"
