"""Several processes on torch.distributed (gloo, CPU): same results as one process."""
import os
import socket

import pytest
import torch
import torch.multiprocessing as mp

from gnnkit import Trainer
from gnnkit.models import GCN

from helpers import two_community_graph

pytestmark = pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed is unavailable")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _train(out_path: str, sampler="full", epochs=15) -> None:
    torch.set_num_threads(1)
    data = two_community_graph(n_per=30)
    torch.manual_seed(0)
    model = GCN(8, 16, 2, num_layers=2, dropout=0.5)
    Trainer(max_epochs=epochs, seed=0, progress=False, sampler=sampler, device="cpu").fit(model, data)
    if out_path:
        torch.save(model.state_dict(), out_path)


def _worker(rank: int, world: int, port: int, out_dir: str) -> None:
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    _train(os.path.join(out_dir, f"rank{rank}.pt"))


def test_two_processes_match_one(tmp_path):
    _train(str(tmp_path / "single.pt"))
    mp.spawn(_worker, args=(2, free_port(), str(tmp_path)), nprocs=2, join=True)
    single = torch.load(tmp_path / "single.pt", weights_only=True)
    for r in (0, 1):
        multi = torch.load(tmp_path / f"rank{r}.pt", weights_only=True)
        for k in single:
            assert torch.allclose(single[k], multi[k], atol=1e-5), (r, k)


class _Visits:
    """Records the global node ids of every batch, per epoch."""

    def __init__(self):
        from gnnkit.callbacks import Callback

        self.cb = type("V", (Callback,), {"on_batch_end": lambda s, t, b, o: self.seen.setdefault(t.epoch, []).append(
            b.n_id.tolist())})()
        self.seen = {}


def _cluster_worker(rank: int, world: int, port: int, out_dir: str) -> None:
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    from gnnkit.samplers.cluster import ClusterSampler

    data = two_community_graph(n_per=40)
    visits = _Visits()
    sampler = ClusterSampler(num_parts=8, clusters_per_batch=2, cache_dir=os.path.join(out_dir, "parts"))
    torch.manual_seed(0)
    Trainer(max_epochs=3, seed=0, progress=False, sampler=sampler, device="cpu",
            callbacks=[visits.cb]).fit(GCN(8, 16, 2), data)
    torch.save(visits.seen, os.path.join(out_dir, f"visits{rank}.pt"))


def test_cluster_batches_dealt_once_per_epoch_across_ranks(tmp_path):
    mp.spawn(_cluster_worker, args=(2, free_port(), str(tmp_path)), nprocs=2, join=True)
    seen = [torch.load(tmp_path / f"visits{r}.pt", weights_only=True) for r in (0, 1)]
    for epoch in range(3):
        per_rank = [seen[r][epoch] for r in (0, 1)]
        assert len(per_rank[0]) == len(per_rank[1]) == 2  # 4 batches of 2 clusters, 2 steps per rank
        nodes = [n for batches in per_rank for b in batches for n in b]
        assert sorted(nodes) == list(range(80))  # every node (so every cluster) exactly once
    assert seen[0][0] != seen[0][1]  # a new draw of batches each epoch


def _escape_worker(rank: int, world: int, port: int, out_dir: str) -> None:
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    from gnnkit.escape.milp import MILPEscape
    from test_escape import plateau_graph, plateau_model

    # lr 1e-30: gradient descent never moves the weights, so the escape alone can (rank 0 solves)
    esc = MILPEscape(solver="cbc", patience=1, max_calls=1, radius=0.1, margin=0.05, nodes=40, time_limit=20)
    model = plateau_model()
    before = model.head.weight.detach().clone()
    result = Trainer(max_epochs=3, seed=0, progress=False, lr=1e-30, weight_decay=5e-4, escape=esc,
                     device="cpu").fit(model, plateau_graph())
    torch.save({"weight": model.head.weight.detach().clone(), "bias": model.head.bias.detach().clone(),
                "before": before, "records": result["escape"]}, os.path.join(out_dir, f"head{rank}.pt"))


def test_escape_head_identical_on_all_ranks(tmp_path):
    mp.spawn(_escape_worker, args=(2, free_port(), str(tmp_path)), nprocs=2, join=True)
    h0, h1 = (torch.load(tmp_path / f"head{r}.pt", weights_only=True) for r in (0, 1))
    assert h0["records"] and h0["records"][-1]["accepted"] and h0["records"] == h1["records"]
    assert not torch.equal(h0["weight"], h0["before"])  # the escape moved the head...
    assert torch.equal(h0["weight"], h1["weight"]) and torch.equal(h0["bias"], h1["bias"])  # ...on both ranks


def _resume_worker(rank: int, world: int, ports: tuple, out_dir: str) -> None:
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1")
    torch.set_num_threads(1)
    data, ckdir = two_community_graph(n_per=30), os.path.join(out_dir, "ckpt")
    for epochs, port in zip((6, 15), ports):  # interrupted after 6 epochs, then resumed to 15 (a new group)
        os.environ["MASTER_PORT"] = str(port)
        torch.manual_seed(0)
        model = GCN(8, 16, 2, num_layers=2, dropout=0.5)
        Trainer(max_epochs=epochs, seed=0, progress=False, device="cpu", checkpoint_dir=ckdir).fit(
            model, data, ckpt_path="last")
    torch.save(model.state_dict(), os.path.join(out_dir, f"resumed{rank}.pt"))


def test_two_processes_resume_from_checkpoints(tmp_path):
    _train(str(tmp_path / "single.pt"))
    mp.spawn(_resume_worker, args=(2, (free_port(), free_port()), str(tmp_path)), nprocs=2, join=True)
    assert sorted(os.listdir(tmp_path / "ckpt")) == ["epoch-000013.pt", "epoch-000014.pt"]  # rank 0 writes
    single = torch.load(tmp_path / "single.pt", weights_only=True)
    ranks = [torch.load(tmp_path / f"resumed{r}.pt", weights_only=True) for r in (0, 1)]
    for k in single:
        assert torch.equal(ranks[0][k], ranks[1][k]), k
        assert torch.allclose(single[k], ranks[0][k], atol=1e-5), k


def _native_threads() -> int:
    import threading

    return len(os.listdir("/proc/self/task")) - threading.active_count()


def _shutdown_worker(rank: int, world: int, port: int, out_dir: str) -> None:
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    from gnnkit import distributed as gdist
    from gnnkit.partitioned.halo import HaloPlan

    before = _native_threads()
    started = gdist.init(torch.device("cpu"))
    halo = gdist.side_group("halo")
    assert gdist.side_group("halo") is halo  # made once
    plan = HaloPlan.build(torch.tensor([1 - rank]), torch.tensor([0]), 1, halo)  # kept past shutdown
    model = gdist.wrap_model(torch.nn.Linear(4, 2), torch.device("cpu"))
    model(torch.randn(3, 4)).sum().backward()
    torch.distributed.all_reduce(torch.ones(2), group=halo)
    del model, halo
    gdist.shutdown(started)
    torch.save({"before": before, "after": _native_threads(), "plan_refused": _refused(plan)},
               os.path.join(out_dir, f"threads{rank}.pt"))


def _refused(plan) -> str:
    from gnnkit.errors import GnnkitError

    try:
        plan.group
    except GnnkitError as exc:
        return str(exc)
    return ""


def test_shutdown_frees_the_process_groups(tmp_path):
    """Gloo threads left at interpreter exit abort a rank now and then (a finished collective's
    tensors released without the GIL); shutdown must free every group gnnkit made, so none is left."""
    mp.spawn(_shutdown_worker, args=(2, free_port(), str(tmp_path)), nprocs=2, join=True)
    for r in (0, 1):
        seen = torch.load(tmp_path / f"threads{r}.pt", weights_only=True)
        assert seen["after"] == seen["before"], seen
        assert "shut down" in seen["plan_refused"]
