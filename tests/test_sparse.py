"""gnnkit.sparse: Adjacency normalizations against dense algebra, spmm gradients, bad input.

The hand-built graph (edge ``j -> i`` is ``edge_index[:, k] = (j, i)``, entry ``A[i, j]``)::

    0 ──► 1 ──► 2        4 (isolated)
    ▲     │
    │     ▼
    └──── 3 ◄── 5 ──┐
                ▲    │ 5 -> 5 (self-loop)
                └────┘

Edges: 0->1, 1->2, 1->3, 3->0, 5->3, 5->5, plus a duplicate 1->2 (duplicates add up).
"""
import pytest
import torch

from gnnkit.sparse import Adjacency, SparseInputError, spmm
from gnnkit.sparse.build import insert_diagonal, sort_csr, transpose_csr

N = 6
EDGES = torch.tensor([[0, 1, 1, 3, 5, 5, 1],
                      [1, 2, 3, 0, 3, 5, 2]])
WEIGHTS = torch.tensor([0.5, 2.0, 1.0, 3.0, 0.25, 1.5, 1.0], dtype=torch.float64)
D = torch.float64
CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device: cuSPARSE path not exercised")


def dense_reference(edge_index, n, norm, weight=None, lam=0.0, n_rows=None):
    """The normalizations written out in dense algebra, ``A[i, j]`` for ``j -> i``."""
    n_rows = n if n_rows is None else n_rows
    w = torch.ones(edge_index.shape[1], dtype=D) if weight is None else weight
    a = torch.zeros(n_rows, n, dtype=D).index_put_((edge_index[1], edge_index[0]), w, accumulate=True)
    if norm in ("gcn", "diag"):
        a = a + torch.eye(n, dtype=D)
    deg = a.sum(1)
    if norm == "gcn":
        dinv = torch.where(deg > 0, deg.pow(-0.5), 0.0)
        return dinv[:, None] * a * dinv[None, :]
    if norm == "mean":
        return torch.where(deg > 0, 1.0 / deg, 0.0)[:, None] * a
    if norm == "diag":
        at = a / deg[:, None]
        return at + lam * torch.diag(torch.diag(at))
    return a


@pytest.mark.parametrize("norm", ["gcn", "mean", "sum", "diag"])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("sort_columns", [False, True])
def test_normalization_matches_dense(norm, weighted, sort_columns):
    w = WEIGHTS if weighted else None
    adj = Adjacency.from_edge_index(EDGES, N, norm=norm, edge_weight=w, diag_lambda=0.7, dtype=D,
                                    sort_columns=sort_columns)
    ref = dense_reference(EDGES, N, norm, w, lam=0.7)
    torch.testing.assert_close(adj.to_dense(), ref)
    torch.testing.assert_close(adj.csr_t.to_dense(), ref.T)
    x = torch.randn(N, 3, dtype=D)
    torch.testing.assert_close(adj @ x, ref @ x)


def test_gcn_by_hand():
    # row 3 aggregates 1, 5 and itself; degrees of A + I: d1 = 2, d3 = 3, d5 = 2 (self-loop + I)
    a = Adjacency.from_edge_index(EDGES, N, norm="gcn", dtype=D).to_dense()
    assert a[3, 1].item() == pytest.approx(1 / (3 * 2) ** 0.5)
    assert a[3, 3].item() == pytest.approx(1 / 3)
    assert a[5, 5].item() == pytest.approx(2 / 2)  # existing loop + I, over d5 = 2
    assert a[4].tolist() == [0, 0, 0, 0, 1, 0]  # isolated node: only its self-loop


def test_isolated_nodes_have_no_inf_or_nan():
    # node 4 and (without self-loops) nodes 4, 5 have in-degree 0: their rows must be zero
    for norm in ("gcn", "mean", "sum", "diag"):
        adj = Adjacency.from_edge_index(torch.tensor([[0], [1]]), 6, norm=norm, dtype=D)
        dense = adj.to_dense()
        assert torch.isfinite(dense).all(), norm
        assert torch.isfinite(adj @ torch.ones(6, 2, dtype=D)).all(), norm
    mean = Adjacency.from_edge_index(torch.tensor([[0], [1]]), 6, norm="mean", dtype=D).to_dense()
    assert mean.sum().item() == 1.0 and mean[1, 0].item() == 1.0


def test_empty_graph():
    adj = Adjacency.from_edge_index(torch.empty(2, 0, dtype=torch.long), 4, norm="gcn", dtype=D)
    torch.testing.assert_close(adj.to_dense(), torch.eye(4, dtype=D))
    assert Adjacency.from_edge_index(torch.empty(2, 0, dtype=torch.long), 4, norm="sum").nnz == 0


def test_bipartite():
    # 5 source nodes, 2 target rows (the first 2 nodes): 2->0, 3->0, 4->1, 0->1
    ei = torch.tensor([[2, 3, 4, 0], [0, 0, 1, 1]])
    for norm in ("mean", "sum"):
        adj = Adjacency.from_edge_index(ei, 5, num_rows=2, norm=norm, dtype=D)
        assert (adj.num_rows, adj.num_cols) == (2, 5)
        ref = dense_reference(ei, 5, norm, n_rows=2)
        torch.testing.assert_close(adj.to_dense(), ref)
        x = torch.randn(5, 3, dtype=D, requires_grad=True)
        (adj @ x).pow(2).sum().backward()
        torch.testing.assert_close(x.grad, 2 * ref.T @ (ref @ x.detach()))
    with pytest.raises(Exception, match="square"):
        Adjacency.from_edge_index(ei, 5, num_rows=2, norm="gcn")


def test_row_slice():
    adj = Adjacency.from_edge_index(EDGES, N, norm="gcn", dtype=D)
    dense = adj.to_dense()
    for s, e in [(0, 6), (1, 4), (3, 3), (5, 6)]:
        part = adj.row_slice(s, e)
        assert (part.num_rows, part.num_cols) == (e - s, N)
        torch.testing.assert_close(part.to_dense(), dense[s:e])
        torch.testing.assert_close(part.csr_t.to_dense(), dense[s:e].T)
    with pytest.raises(SparseInputError, match="outside"):
        adj.row_slice(4, 9)


def test_gradcheck_spmm():
    for norm in ("gcn", "mean"):
        adj = Adjacency.from_edge_index(EDGES, N, norm=norm, edge_weight=WEIGHTS, dtype=D)
        x = torch.randn(N, 4, dtype=D, requires_grad=True)
        assert torch.autograd.gradcheck(lambda t: spmm(adj, t), (x,))
        assert torch.autograd.gradgradcheck(lambda t: spmm(adj, t), (x,))
    bip = Adjacency.from_edge_index(torch.tensor([[2, 3, 4], [0, 0, 1]]), 5, num_rows=2, norm="sum", dtype=D)
    assert torch.autograd.gradcheck(lambda t: spmm(bip, t), (torch.randn(5, 2, dtype=D, requires_grad=True),))


def test_unsorted_input_same_as_sorted():
    g = torch.Generator().manual_seed(0)
    ei = torch.randint(0, 50, (2, 400), generator=g)
    order = torch.argsort(ei[1] * 50 + ei[0])
    for norm in ("gcn", "diag"):
        a = Adjacency.from_edge_index(ei, 50, norm=norm, diag_lambda=1.0, dtype=D).to_dense()
        b = Adjacency.from_edge_index(ei[:, order], 50, norm=norm, diag_lambda=1.0, dtype=D).to_dense()
        torch.testing.assert_close(a, b)
        torch.testing.assert_close(a, dense_reference(ei, 50, norm, lam=1.0))


def assert_torch_csr_invariants(csr):
    torch.sparse_csr_tensor(csr.crow_indices(), csr.col_indices(), csr.values(), csr.shape, check_invariants=True)


def test_sorted_columns_meet_torch_invariants():
    # sort_columns=True (the CUDA default) sums repeats (the duplicate 1->2, the loop 5->5 + I)
    for norm in ("gcn", "mean", "diag", "sum"):
        adj = Adjacency.from_edge_index(EDGES, N, norm=norm, sort_columns=True, dtype=D)
        assert adj.sorted_columns
        assert_torch_csr_invariants(adj.csr)
        assert_torch_csr_invariants(adj.csr_t)
        plain = Adjacency.from_edge_index(EDGES, N, norm=norm, dtype=D)
        assert_torch_csr_invariants(sort_csr(plain.csr))
        torch.testing.assert_close(sort_csr(plain.csr).to_dense(), plain.to_dense())
    # the CPU default keeps repeats and puts the diagonal first: not torch-valid, still right (above)
    assert not Adjacency.from_edge_index(EDGES, N, norm="gcn").sorted_columns
    with pytest.raises(RuntimeError, match="sorted and distinct"):
        assert_torch_csr_invariants(Adjacency.from_edge_index(EDGES, N, norm="gcn").csr)


def test_symmetric_reuses_matrix_and_accepts_source_order():
    # undirected path 0 - 1 - 2 - 3, edge_index ordered by source (as PyG's to_undirected leaves it)
    ei = torch.tensor([[0, 1, 1, 2, 2, 3], [1, 0, 2, 1, 3, 2]])
    adj = Adjacency.from_edge_index(ei, 4, norm="gcn", symmetric=True, dtype=D)
    assert adj.csr_t is adj.csr
    torch.testing.assert_close(adj.to_dense(), dense_reference(ei, 4, "gcn"))
    mean = Adjacency.from_edge_index(ei, 4, norm="mean", symmetric=True, dtype=D)
    torch.testing.assert_close(mean.csr_t.to_dense(), dense_reference(ei, 4, "mean").T)


def test_backward_uses_transpose_and_matches_dense():
    adj = Adjacency.from_edge_index(EDGES, N, norm="mean", edge_weight=WEIGHTS, dtype=D)
    x = torch.randn(N, 3, dtype=D, requires_grad=True)
    g = torch.randn(N, 3, dtype=D)
    (adj @ x).backward(g)
    torch.testing.assert_close(x.grad, adj.to_dense().T @ g)
    torch.testing.assert_close(adj.t().to_dense(), adj.to_dense().T)


def test_helpers_insert_diagonal_and_transpose():
    crow, col, val = torch.tensor([0, 2, 2, 3]), torch.tensor([0, 2, 1]), torch.tensor([1.0, 2.0, 3.0])
    c, k, v = insert_diagonal(crow, col, val, torch.tensor([7.0, 8.0, 9.0]))
    assert c.tolist() == [0, 3, 4, 6] and k.tolist() == [0, 0, 2, 1, 2, 1]
    assert v.tolist() == [7.0, 1.0, 2.0, 8.0, 9.0, 3.0]
    csr = torch.sparse_csr_tensor(crow, col, val, (3, 3), check_invariants=True)
    torch.testing.assert_close(transpose_csr(csr).to_dense(), csr.to_dense().T)


def test_int32_indices_and_dtype():
    adj = Adjacency.from_edge_index(EDGES.int(), N, norm="gcn")
    assert adj.csr.col_indices().dtype == torch.int32 and adj.csr.dtype == torch.float32
    torch.testing.assert_close(adj.to_dense().double(), dense_reference(EDGES, N, "gcn"), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("bad, message", [
    (torch.tensor([0, 1, 2]), r"\[2, E\]"),
    (torch.zeros(3, 4, dtype=torch.long), r"\[2, E\]"),
    (torch.zeros(2, 4), "int64 or int32"),
    (torch.tensor([[0, 6], [1, 2]]), "out of range"),
    (torch.tensor([[0, -1], [1, 2]]), "out of range"),
    ([[0, 1], [1, 2]], r"\[2, E\]"),
])
def test_bad_edge_index(bad, message):
    with pytest.raises(SparseInputError, match=message):
        Adjacency.from_edge_index(bad, N)


def test_bad_arguments():
    with pytest.raises(SparseInputError, match="edge_weight must have shape"):
        Adjacency.from_edge_index(EDGES, N, edge_weight=torch.ones(3))
    with pytest.raises(SparseInputError, match="floating point"):
        Adjacency.from_edge_index(EDGES, N, edge_weight=torch.ones(7, dtype=torch.long))
    with pytest.raises(SparseInputError, match="dtype must be floating"):
        Adjacency.from_edge_index(EDGES, N, dtype=torch.int64)
    with pytest.raises(Exception, match="unknown normalization"):
        Adjacency.from_edge_index(EDGES, N, norm="sym")
    adj = Adjacency.from_edge_index(EDGES, N)
    with pytest.raises(SparseInputError, match=r"x must be \[6, F\]"):
        adj @ torch.ones(5, 2)
    with pytest.raises(SparseInputError, match=r"x must be \[6, F\]"):
        adj @ torch.ones(6)
    with pytest.raises(SparseInputError, match="dtype"):
        adj @ torch.ones(6, 2, dtype=D)
    assert isinstance(SparseInputError("x"), ValueError)


@CUDA
def test_cuda_matches_cpu():
    adj = Adjacency.from_edge_index(EDGES, N, norm="gcn", edge_weight=WEIGHTS, dtype=D)
    built = Adjacency.from_edge_index(EDGES.cuda(), N, norm="gcn", edge_weight=WEIGHTS.cuda(), dtype=D)
    moved = adj.to("cuda")
    assert built.device.type == "cuda" and moved.device.type == "cuda"
    assert built.sorted_columns and moved.sorted_columns  # cuSPARSE gets sorted, distinct columns
    x = torch.randn(N, 4, dtype=D)
    for a in (built, moved):
        torch.testing.assert_close(a.to_dense().cpu(), adj.to_dense())
        xc = x.cuda().requires_grad_()
        (a @ xc).sum().backward()
        torch.testing.assert_close(xc.grad.cpu(), adj.to_dense().T @ torch.ones(N, 4, dtype=D))


@CUDA
def test_cuda_gradcheck_and_device_mismatch():
    adj = Adjacency.from_edge_index(EDGES, N, norm="mean", dtype=D).to("cuda")
    x = torch.randn(N, 3, dtype=D, device="cuda", requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: spmm(adj, t), (x,))
    with pytest.raises(SparseInputError, match="adj.to"):
        adj @ torch.ones(N, 3, dtype=D)


def test_concat_ranges_and_floyd_offsets():
    from gnnkit.sparse.segments import concat_ranges, floyd_offsets

    assert concat_ranges(torch.tensor([5, 0, 9]), torch.tensor([2, 0, 3])).tolist() == [5, 6, 9, 10, 11]
    assert concat_ranges(torch.tensor([], dtype=torch.long), torch.tensor([], dtype=torch.long)).numel() == 0
    off = floyd_offsets(torch.tensor([3, 10, 4]), 3, torch.Generator().manual_seed(0))
    assert off.shape == (3, 3) and all(len(set(r.tolist())) == 3 for r in off)
    assert sorted(off[0].tolist()) == [0, 1, 2] and (off[1] < 10).all() and (off[2] < 4).all()


def test_induced_edges_keep_edge_order_and_number_by_position():
    from gnnkit.sparse.subgraph import induced_edges, relabel

    ei = torch.tensor([[0, 3, 1, 2, 3, 4], [1, 2, 0, 1, 1, 0]])
    assert induced_edges(ei, torch.tensor([3, 1, 2]), 5).tolist() == [[0, 2, 0], [2, 1, 1]]  # any node order
    lid = torch.full((6,), -1)
    local, new = relabel(lid, torch.tensor([4, 1]), torch.tensor([1, 5, 0, 4, 5]))
    assert new.tolist() == [0, 5] and local.tolist() == [1, 3, 2, 0, 3] and (lid == -1).all()


def test_exact_blocks_are_the_full_rows_hop_by_hop():
    from gnnkit.sparse.blocks import exact_blocks

    adj = Adjacency.from_edge_index(EDGES, N, norm="gcn")
    dense = adj.to_dense()
    lid = torch.full((N,), -1)
    n_id, blocks = exact_blocks(adj, torch.tensor([2]), 2, lid)
    assert len(blocks) == 2 and n_id[0] == 2 and n_id.unique().numel() == n_id.numel()
    for block in blocks:  # layer order: the last block's rows are the seeds
        rows, cols = n_id[:block.num_rows], n_id[:block.num_cols]
        assert torch.equal(block.to_dense(), dense[rows][:, cols])
        crow = adj.csr.crow_indices()
        assert int((crow[rows + 1] - crow[rows]).sum()) == block.nnz  # every stored entry of those rows
    assert blocks[-1].num_rows == 1
