"""Trainer.fit over partitioned stores, 2 gloo processes: each rank walks exactly its own training
nodes per epoch, the ranks take the same number of steps, and the evaluation figures agree on
every rank and with the one-process evaluation of the same weights."""
import json
import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from gnnkit import Trainer
from gnnkit.callbacks import Callback
from gnnkit.data.csbm import csbm
from gnnkit.models import GraphSAGE
from gnnkit.partitioned import write_partition

pytestmark = pytest.mark.skipif(not dist.is_available(), reason="torch.distributed is unavailable")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Seen(Callback):
    def __init__(self):
        self.seeds = {}

    def on_batch_end(self, trainer, batch, outputs):
        self.seeds.setdefault(trainer.epoch, []).extend(batch.n_id[: batch.batch_size].tolist())


def _worker(rank: int, world: int, port: int, path: str, out_dir: str) -> None:
    from gnnkit.partitioned.sampler import open_dataset
    from gnnkit.samplers.neighbor import NeighborSampler

    torch.set_num_threads(1)
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port))
    stores = open_dataset(path)
    torch.manual_seed(0)
    model = GraphSAGE(8, 16, 3, num_layers=2, dropout=0.0)
    seen = Seen()
    trainer = Trainer(max_epochs=2, seed=0, progress=False, device="cpu", callbacks=[seen],
                      sampler=NeighborSampler(fanouts=[4, 3], batch_size=32))
    result = trainer.fit(model, stores)
    own = stores[1].index("train_mask").tolist()
    torch.save(model.state_dict(), os.path.join(out_dir, f"rank{rank}.pt"))
    with open(os.path.join(out_dir, f"rank{rank}.json"), "w") as f:
        json.dump({"seen": seen.seeds, "own": own, "owned": stores[0].part.global_ids.tolist(),
                   "metrics": result["metrics"], "steps": trainer.last_train_logs["steps"]}, f)


def test_fit_over_parts(tmp_path):
    data = csbm(num_nodes=240, avg_degree=6, num_features=8, num_classes=3, seed=2)
    path = str(tmp_path / "parts")
    write_partition(data, 2, path, method="metis")
    mp.start_processes(_worker, args=(2, free_port(), path, str(tmp_path)), nprocs=2, join=True, start_method="fork")
    res = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    assert res[0]["steps"] == res[1]["steps"] > 1
    for r in res:
        assert set(r["own"]) <= set(r["owned"])
        for epoch in ("0", "1"):  # every own training node, each as often as index() lists it
            assert sorted(r["seen"][epoch]) == sorted(r["own"])
    assert res[0]["metrics"] == res[1]["metrics"]
    w0, w1 = (torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(2))
    assert all(torch.equal(w0[k], w1[k]) for k in w0)  # DDP kept the replicas equal
    model = GraphSAGE(8, 16, 3, num_layers=2, dropout=0.0)
    model.load_state_dict(w0)
    one = Trainer(max_epochs=0, progress=False, device="cpu")
    one.fit(model, data)
    for split in ("val", "test"):
        assert abs(one.evaluate(split)[f"{split}_accuracy"] - res[0]["metrics"][f"{split}_accuracy"]) < 1e-6
