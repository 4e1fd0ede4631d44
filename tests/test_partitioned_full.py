"""Full-batch partition-parallel training (gnnkit.partitioned.halo / fullbatch): P gloo processes, each
holding one part, train to the same weights as one process holding the whole graph."""
import os
import socket

import pytest
import torch
import torch.multiprocessing as mp

from gnnkit.models import GCN, GraphSAGE
from gnnkit.stores import from_data

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


def write_parts(data, world: int, out, method: str = "random") -> str:
    from gnnkit.partitioned import write_partition

    write_partition(data, world, out, method=method, seed=0)
    return str(out)


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


CASES = {2: [("gcn", False, False, None, "metis"), ("sage", True, False, None, "random"),
             ("gcn", True, True, "diag", "random")],
         4: [("gcn", True, True, None, "random"), ("sage", False, True, None, "metis")]}


def _worker(rank, world, port, out_dir):
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    torch.distributed.init_process_group("gloo")
    from gnnkit.partitioned import fullbatch, halo, open_part

    halo.ROWS = 7  # the part's CSR read in chunks of 7 rows: chunk boundaries inside every part
    for c, (kind, directed, weighted, norm, _) in enumerate(CASES[world]):
        part = open_part(os.path.join(out_dir, f"parts{c}"), rank)
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
        torch.save({"state": model.state_dict(), "logits": logits, "ids": part.global_ids.clone(),
                    "halo": adj.plan.num_halo, "owned": adj.num_owned,
                    "block_cols": adj.own.num_cols + adj.far.num_cols,
                    "halo_ids": part.halo_ids().numel(), "x_rows": x.shape[0],
                    "csr": [t.numel() for t in part.graph.csr()],
                    "traffic": [adj.plan.sent_bytes, adj.plan.received_bytes, adj.plan.rounds]},
                   os.path.join(out_dir, f"case{c}-rank{rank}.pt"))
    torch.distributed.destroy_process_group()


@pytest.mark.parametrize("world", [2, 4])
def test_parts_train_to_the_one_process_weights(tmp_path, world):
    """Each rank opens only its part and trains to the one-process weights (within 1e-5): GCN/SAGE,
    undirected and directed, weighted or not, "gcn"/"mean"/"diag" operators, METIS and random parts."""
    expected = []
    for c, (kind, directed, weighted, norm, method) in enumerate(CASES[world]):
        data = graph(directed, weighted)
        write_parts(data, world, tmp_path / f"parts{c}", method)
        expected.append((data.num_nodes, *train_single(data, kind, norm)))
    mp.start_processes(_worker, args=(world, free_port(), str(tmp_path)), nprocs=world, join=True,
                       start_method="fork")
    for c, (n, state, logits) in enumerate(expected):
        in_deg = torch.bincount(graph(*CASES[world][c][1:3]).edge_index[1], minlength=n)
        ranks = [torch.load(tmp_path / f"case{c}-rank{r}.pt", weights_only=True) for r in range(world)]
        for r in ranks:
            for k in state:
                diff = (state[k] - r["state"][k]).abs().max()
                assert torch.allclose(state[k], r["state"][k], atol=1e-5), (c, k, diff)
            assert torch.allclose(logits[r["ids"]], r["logits"], atol=1e-4), c
            # each rank held its rows and a halo of remote in-neighbours, never the whole graph
            assert 0 < r["owned"] < n and r["halo"] == r["halo_ids"] > 0
            assert r["block_cols"] == r["owned"] + r["halo"] and r["x_rows"] == r["owned"]
            assert r["csr"] == [r["owned"] + 1, int(in_deg[r["ids"]].sum())]
        assert sorted(torch.cat([r["ids"] for r in ranks]).tolist()) == list(range(n))
        # every row sent is received once; every rank took part in every exchange (forward and backward)
        sent, received, rounds = zip(*(r["traffic"] for r in ranks))
        assert sum(sent) == sum(received) > 0 and len(set(rounds)) == 1 and rounds[0] > EPOCHS


def _fit(data, epochs):
    from gnnkit import Trainer

    model = make_model("gcn")
    result = Trainer(max_epochs=epochs, seed=0, progress=False, sampler="full", device="cpu", lr=0.02,
                     metrics=["macro_f1", "roc_auc"]).fit(model, data)  # user metrics: gathered over the parts
    return model.state_dict(), result


def _trainer_worker(rank, world, port, out_dir):
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    from gnnkit.partitioned.sampler import open_dataset

    state, result = _fit(open_dataset(os.path.join(out_dir, "parts")), EPOCHS)
    torch.save({"state": state, "metrics": result["metrics"], "best": result["best_epoch"]},
               os.path.join(out_dir, f"trainer{rank}.pt"))


def test_trainer_full_sampler_on_parts_equals_one_process(tmp_path):
    """`Trainer(sampler="full")` on each rank's partitioned store (what `gnnkit train --dataset DIR` gets
    under torchrun): the same weights and the same figures as one process on the whole graph."""
    data = graph(directed=True)
    write_parts(data, 2, tmp_path / "parts", "metis")
    state, result = _fit(data, EPOCHS)
    mp.start_processes(_trainer_worker, args=(2, free_port(), str(tmp_path)), nprocs=2, join=True,
                       start_method="fork")
    for r in range(2):
        got = torch.load(tmp_path / f"trainer{r}.pt", weights_only=True)
        for k in state:
            assert torch.allclose(state[k], got["state"][k], atol=1e-5), (r, k)
        assert got["best"] == result["best_epoch"]
        assert "test_roc_auc" in result["metrics"] and set(result["metrics"]) == set(got["metrics"])
        for k, v in result["metrics"].items():
            assert abs(v - got["metrics"][k]) < 1e-5, (r, k, v, got["metrics"][k])


def test_refuses_what_it_cannot_train_exactly():
    from gnnkit.errors import GnnkitError
    from gnnkit.models import GCN
    from gnnkit.partitioned import fullbatch

    with pytest.raises(GnnkitError, match="batch normalization"):
        fullbatch.check_model(GCN(6, 8, 2, num_layers=3, norm="batch"))
    with pytest.raises(GnnkitError, match="GCN, GraphSAGE and MLP"):
        fullbatch.check_model(torch.nn.Linear(3, 2))
    # one process (or one rank alone, inside distributed.local_only) cannot compute over 2 parts
    part = type("P", (), {"num_parts": 2, "rank": 0})()
    with pytest.raises(GnnkitError, match="one per part"):
        fullbatch.cached_adjacency(part, "gcn", 0.0, "cpu")


@pytest.mark.parametrize("norm", ["gcn", "mean", "sum", "diag"])
def test_block_is_the_rows_of_the_whole_adjacency(norm):
    """One part's block (global degrees, halo columns in arrival order) equals those rows of the
    one-process matrix, on a weighted directed graph with a self-loop and a repeated edge."""
    from gnnkit.partitioned.halo import HaloIndex, normalized_block

    data = graph(directed=True, weighted=True)
    n = data.num_nodes
    owner = torch.randperm(n, generator=torch.Generator().manual_seed(7)) % 2
    a, b = (owner == 0).nonzero()[:2, 0].tolist()  # a loop a->a and a repeated edge b->a on owned rows
    data.edge_index = torch.cat([data.edge_index, torch.tensor([[a, b, b], [a, a, a]])], 1)
    data.edge_weight = torch.cat([data.edge_weight, torch.tensor([0.7, 1.3, 0.4])])
    lam = 0.5 if norm == "diag" else 0.0
    g, _ = from_data(data)
    whole = g.adjacency(norm, lam).to_dense()
    pos = torch.empty_like(owner)
    for q in (0, 1):
        pos[owner == q] = torch.arange(int((owner == q).sum()))
    own = (owner == 0).nonzero().squeeze(1)
    indptr, indices = g.csr()
    w = g.csr_weight()
    take = torch.cat([torch.arange(int(indptr[i]), int(indptr[i + 1])) for i in own.tolist()])
    local_ptr = torch.cat([torch.zeros(1, dtype=torch.long), indptr.diff()[own].cumsum(0)])
    far = indices[take][owner[indices[take]] != 0].unique()
    halo = HaloIndex(far, owner[far], pos[far], own.numel())
    order = torch.cat([own, far[torch.argsort(halo.column)]])  # the nodes of the local columns
    deg = torch.zeros(n).index_add_(0, data.edge_index[1], data.edge_weight) + (norm in ("gcn", "diag"))
    mine, halo_part = normalized_block(local_ptr, indices[take], w[take],
                                       lambda c: halo.local(c, owner[c], pos[c], 0), deg[order], norm, lam)
    assert (mine.num_rows, mine.num_cols, halo_part.num_cols) == (own.numel(), own.numel(), far.numel())
    assert torch.allclose(torch.cat([mine.to_dense(), halo_part.to_dense()], 1), whole[own][:, order], atol=1e-6)
