"""Historical embeddings: the store, the exact 1-hop block, and exactness with fresh history."""
import pytest
import torch
from torch_geometric.data import Data

from gnnkit.errors import GnnkitError
from gnnkit.history import HistoryBlocks, HistoryStore, exact_pass
from gnnkit.sparse.blocks import exact_blocks, row_block
from gnnkit.models import build_model
from gnnkit.sparse import Adjacency


def random_graph(n: int = 120, classes: int = 3, feats: int = 6, degree: int = 4, noise: float = 0.2, seed: int = 0):
    """A small homophilous random graph (symmetric, no self-loops) with some noisy labels."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % classes
    src = torch.randint(0, n, (n * degree,), generator=g)
    same = torch.rand(n * degree, generator=g) < 0.8
    dst = torch.where(same, (src + classes * torch.randint(1, n // classes, (n * degree,), generator=g)) % n,
                      torch.randint(0, n, (n * degree,), generator=g))
    e = torch.stack([src, dst])[:, src != dst]
    e = torch.unique(torch.cat([e, e.flip(0)], 1), dim=1)
    x = torch.randn(n, feats, generator=g) + 1.5 * torch.nn.functional.one_hot(y, feats).float()
    flip = torch.rand(n, generator=g) < noise
    y = torch.where(flip, torch.randint(0, classes, (n,), generator=g), y)
    train = torch.rand(n, generator=g) < 0.6
    return Data(x=x, y=y, edge_index=e, train_mask=train, val_mask=~train, test_mask=~train, num_classes=classes)


def test_store_push_pull_and_errors():
    store = HistoryStore(5)
    store.push(1, torch.tensor([0, 3]), torch.tensor([[1.0, 2.0], [3.0, 4.0]]))
    assert store.pull(1, torch.tensor([3, 0])).tolist() == [[3.0, 4.0], [1.0, 2.0]]
    with pytest.raises(GnnkitError, match="never written"):
        store.pull(1, torch.tensor([1]))
    with pytest.raises(GnnkitError, match="never written"):
        store.pull(2, torch.tensor([0]))
    with pytest.raises(GnnkitError, match="width"):
        store.push(1, torch.tensor([1]), torch.zeros(1, 3))


def test_row_block_holds_the_exact_rows():
    data = random_graph()
    adj = Adjacency.from_edge_index(data.edge_index, data.num_nodes, norm="gcn")
    lid = torch.full((data.num_nodes,), -1)
    batch = torch.tensor([7, 2, 50])
    block, halo = row_block(adj, batch, lid)
    cols = torch.cat([batch, halo])
    dense = adj.to_dense()
    assert torch.equal(block.to_dense(), dense[batch][:, cols])
    assert dense[batch].ne(0).sum() == block.nnz and (lid == -1).all()
    assert not set(halo.tolist()) & set(batch.tolist())


def test_store_layers_can_live_in_a_file(tmp_path):
    made = []

    def mapped(rows, width, dtype):
        path = tmp_path / f"history-{len(made)}.bin"
        made.append(path)
        return torch.from_file(str(path), shared=True, size=rows * width, dtype=dtype).view(rows, width)

    store = HistoryStore(4, allocate=mapped)
    store.push(2, torch.tensor([1, 3]), torch.tensor([[1.0, 2.0], [3.0, 4.0]]))
    assert store.pull(2, torch.tensor([3])).tolist() == [[3.0, 4.0]]
    on_disk = torch.from_file(str(made[0]), shared=False, size=8, dtype=torch.float32).view(4, 2)
    assert on_disk[3].tolist() == [3.0, 4.0] and on_disk[0].tolist() == [0.0, 0.0]


@pytest.mark.parametrize("name", ["gcn", "sage"])
def test_fresh_history_reproduces_the_full_model(name):
    data = random_graph()
    torch.manual_seed(0)
    model = build_model(name, data.num_features, 3, hidden=8, num_layers=3, dropout=0.0).eval()
    adj = Adjacency.from_edge_index(data.edge_index, data.num_nodes, norm=model.adj_norm)
    full = model.inference(data.x, adj)
    store, lid = HistoryStore(data.num_nodes), torch.full((data.num_nodes,), -1)
    everyone = torch.arange(data.num_nodes)
    n_id, blocks = exact_blocks(adj, everyone, model.num_layers, lid)
    logits, _ = exact_pass(model, data.x[n_id], blocks, n_id, store)
    assert torch.allclose(logits, full, atol=1e-5)
    batch = torch.tensor([3, 40, 41, 99])
    block, halo = row_block(adj, batch, lid)
    out = model(data.x[torch.cat([batch, halo])], HistoryBlocks(block, model.num_layers, batch, halo, store))
    assert torch.allclose(out, full[batch], atol=1e-5)
    # stale history (other parameters) changes the output rows
    with torch.no_grad():
        model.layers[0].lin.weight.mul_(1.5) if name == "gcn" else model.layers[0].lin_l.weight.mul_(1.5)
    stale = model(data.x[torch.cat([batch, halo])], HistoryBlocks(block, model.num_layers, batch, halo, store,
                                                                  push=False))
    assert not torch.allclose(stale, model.inference(data.x, adj)[batch], atol=1e-3)


def test_dropout_training_forward_does_not_push():
    data = random_graph()
    model = build_model("gcn", data.num_features, 3, hidden=8, num_layers=2, dropout=0.5).train()
    adj = Adjacency.from_edge_index(data.edge_index, data.num_nodes, norm="gcn")
    store, lid = HistoryStore(data.num_nodes), torch.full((data.num_nodes,), -1)
    store.push(1, torch.arange(data.num_nodes), torch.zeros(data.num_nodes, 8))
    batch = torch.tensor([0, 1, 2])
    block, halo = row_block(adj, batch, lid)
    model(data.x[torch.cat([batch, halo])], HistoryBlocks(block, 2, batch, halo, store))
    assert store.pull(1, batch).abs().sum() == 0
    model.eval()(data.x[torch.cat([batch, halo])], HistoryBlocks(block, 2, batch, halo, store))
    assert store.pull(1, batch).abs().sum() > 0


def test_file_backed_layers_are_zero_filled_and_leave_no_file(tmp_path):
    from gnnkit.history import file_backed

    t = file_backed(str(tmp_path))(6, 3, torch.float32)
    assert t.shape == (6, 3) and t.abs().sum() == 0 and list(tmp_path.iterdir()) == []
    t[2] = torch.tensor([1.0, 2.0, 3.0])
    assert t[2].tolist() == [1.0, 2.0, 3.0]
    with pytest.raises(GnnkitError, match="needs .* of disk"):
        file_backed(str(tmp_path))(2**40, 2**10, torch.float32)
    with pytest.raises(GnnkitError, match="does not exist"):
        file_backed(str(tmp_path / "absent"))(2, 2, torch.float32)


def test_auto_history_maps_only_layers_above_the_budget(tmp_path, monkeypatch):
    from gnnkit import history as H

    made = []
    real = H.file_backed(str(tmp_path))
    monkeypatch.setattr(H, "file_backed", lambda folder=None: lambda *a: made.append(a) or real(*a))
    allocate = H.history_allocator("auto", "cpu", str(tmp_path), budget=100)
    assert allocate(5, 5, torch.float32).shape == (5, 5) and made == []  # 100 bytes: in memory
    allocate(5, 6, torch.float32)  # 120 bytes: to a file
    assert made == [(5, 6, torch.float32)]
    assert H.history_allocator("memory") is None
    assert H.history_allocator("auto", "cuda") is None
    with pytest.raises(GnnkitError, match="history must be one of"):
        H.history_allocator("ssd")
