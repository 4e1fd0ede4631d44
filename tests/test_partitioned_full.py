"""Full-batch partition-parallel training (gnnkit.partitioned.halo / fullbatch): P gloo processes, each
holding one part, train to the same weights as one process holding the whole graph."""
import os
import socket
from types import SimpleNamespace

import pytest
import torch
import torch.multiprocessing as mp

from gnnkit.models import GCN, GraphSAGE
from gnnkit.stores import from_data
from gnnkit.stores.memory import InMemoryFeatureStore

from helpers import two_community_graph

pytestmark = pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed is unavailable")

EPOCHS = 8


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def graph(directed: bool = False, weighted: bool = False):
    data = two_community_graph(n_per=40, num_features=6, seed=3)
    if directed:  # drop a third of the edges one way: in-degrees differ from out-degrees
        keep = torch.arange(data.edge_index.shape[1]) % 3 != 0
        data.edge_index = data.edge_index[:, keep]
    if weighted:
        g = torch.Generator().manual_seed(1)
        data.edge_weight = torch.rand(data.edge_index.shape[1], generator=g) + 0.5
    return data


class _Graph:
    """The owned rows of the whole graph's CSR (global source ids) and their weights."""

    def __init__(self, indptr, indices, weight):
        self._csr, self._w = (indptr, indices), weight

    def csr(self):
        return self._csr

    def csr_weight(self):
        return self._w


def memory_part(data, owner: torch.Tensor, rank: int):
    """Part ``rank`` of ``data`` held in memory: what a part store holds (owned rows only)."""
    g, f = from_data(data)
    indptr, indices = g.csr()
    w = g.csr_weight()
    own = (owner == rank).nonzero().squeeze(1)
    counts = indptr.diff()[own]
    starts = indptr[own]
    pos = torch.repeat_interleave(starts - torch.cat([torch.zeros(1, dtype=torch.long), counts.cumsum(0)[:-1]]),
                                  counts) + torch.arange(int(counts.sum()))
    local_indptr = torch.cat([torch.zeros(1, dtype=torch.long), counts.cumsum(0)])
    position = torch.empty_like(owner)
    for q in range(int(owner.max()) + 1):
        ids = (owner == q).nonzero().squeeze(1)
        position[ids] = torch.arange(ids.numel())
    feats = InMemoryFeatureStore({k: f.get(k)[own] for k in ("x", "y", "train_mask", "val_mask", "test_mask")})
    return SimpleNamespace(rank=rank, num_parts=int(owner.max()) + 1, num_nodes=data.num_nodes, global_ids=own,
                           graph=_Graph(local_indptr, indices[pos], None if w is None else w[pos]),
                           features=feats, book=SimpleNamespace(part=owner, local=position))


def owners(n: int, parts: int) -> torch.Tensor:
    return torch.randperm(n, generator=torch.Generator().manual_seed(7)) % parts


def make_model(kind: str):
    torch.manual_seed(0)
    cls = {"gcn": GCN, "sage": GraphSAGE}[kind]
    return cls(6, 16, 2, num_layers=3, dropout=0.0, norm="layer" if kind == "sage" else None)


def train_single(data, kind: str, norm=None):
    model = make_model(kind)
    g, f = from_data(data)
    adj = g.adjacency(norm or model.adj_norm)
    x, y, train = f.get("x"), f.get("y"), f.index("train_mask")
    opt = torch.optim.Adam(model.parameters(), lr=0.02)
    for _ in range(EPOCHS):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x, adj)[train], y[train]).backward()
        opt.step()
    return model.state_dict(), model.inference(x, adj)


def _worker(rank, world, port, out_dir, kind, directed, weighted, norm):
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    torch.distributed.init_process_group("gloo")
    from gnnkit.partitioned import fullbatch

    data = graph(directed, weighted)
    part = memory_part(data, owners(data.num_nodes, world), rank)
    model = make_model(kind)
    fullbatch.check_model(model)
    adj = fullbatch.part_adjacency(part, norm or model.adj_norm)
    ddp = torch.nn.parallel.DistributedDataParallel(model)
    x, y = part.features.get("x"), part.features.get("y")
    idx, w = fullbatch.train_rows(part.features)
    opt = torch.optim.Adam(model.parameters(), lr=0.02)
    for _ in range(EPOCHS):
        opt.zero_grad()
        losses = torch.nn.functional.cross_entropy(ddp(x, adj)[idx], y[idx], reduction="none")
        (losses * w).sum().backward()
        opt.step()
    logits = fullbatch.predict(model, x, adj)
    torch.save({"state": model.state_dict(), "logits": logits, "ids": part.global_ids,
                "halo": adj.plan.num_halo, "owned": adj.num_owned},
               os.path.join(out_dir, f"rank{rank}.pt"))
    torch.distributed.destroy_process_group()


def run_parts(tmp_path, world, kind="gcn", directed=False, weighted=False, norm=None):
    mp.spawn(_worker, args=(world, free_port(), str(tmp_path), kind, directed, weighted, norm), nprocs=world,
             join=True)
    return [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(world)]


@pytest.mark.parametrize("world,kind,directed,weighted,norm", [
    (2, "gcn", False, False, None), (4, "gcn", True, True, None), (2, "sage", True, False, None),
    (4, "sage", False, True, None), (2, "gcn", True, True, "diag")])
def test_parts_train_to_the_one_process_weights(tmp_path, world, kind, directed, weighted, norm):
    data = graph(directed, weighted)
    state, logits = train_single(data, kind, norm)
    ranks = run_parts(tmp_path, world, kind, directed, weighted, norm)
    for r in ranks:
        for k in state:
            assert torch.allclose(state[k], r["state"][k], atol=1e-5), (k, (state[k] - r["state"][k]).abs().max())
        assert torch.allclose(logits[r["ids"]], r["logits"], atol=1e-4)
        assert 0 < r["owned"] < data.num_nodes and r["halo"] > 0
    assert sorted(torch.cat([r["ids"] for r in ranks]).tolist()) == list(range(data.num_nodes))
