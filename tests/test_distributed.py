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
