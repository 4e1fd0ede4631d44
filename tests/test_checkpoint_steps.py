"""Checkpoints inside an epoch (``checkpoint_every_steps``): a run stopped midway through an epoch
and resumed from its newest step checkpoint ends with the uninterrupted run's weights bit for bit
(neighbor and cluster samplers, dropout on, inline or in the sampling pipeline's thread, from
memory or from an on-disk store whose dropped batches are never read); refusals name the problem."""
from __future__ import annotations

import os

import pytest
import torch

from gnnkit import Trainer
from gnnkit.callbacks import Callback
from gnnkit.errors import GnnkitError

from helpers import two_community_graph


class Stop(Exception):
    pass


class StopAt(Callback):
    """Raises after step ``step`` of epoch ``epoch`` (after the step's checkpoint, if any, was written)."""

    state_key = "test-stop"

    def __init__(self, epoch: int, step: int):
        self.epoch, self.step = epoch, step

    def on_checkpoint(self, trainer, path: str) -> None:
        if trainer.epoch == self.epoch and trainer.step_in_epoch == self.step:
            raise Stop


class Steps(Callback):
    """Records ``(epoch, step)`` of every step the run trains on."""

    state_key = "test-steps"

    def __init__(self):
        self.seen = []

    def on_batch_end(self, trainer, batch, outputs) -> None:
        self.seen.append((trainer.epoch, trainer.step_in_epoch))


def _sampler(name: str):
    from gnnkit.samplers.cluster import ClusterSampler
    from gnnkit.samplers.mvs import MVSSampler
    from gnnkit.samplers.neighbor import NeighborSampler

    return {"neighbor": lambda: NeighborSampler(fanouts=[4, 4], batch_size=4),
            "cluster": lambda: ClusterSampler(num_parts=12, clusters_per_batch=2),
            "mvs": lambda: MVSSampler(batch_size=8)}[name]()


def _fit(data, folder, sampler="neighbor", callbacks=(), ckpt=None, **kw):
    from models import build_model

    torch.manual_seed(0)
    model = build_model("sage", 8, 2, hidden=16, num_layers=2, dropout=0.5)
    trainer = Trainer(sampler=_sampler(sampler), max_epochs=3, seed=0, progress=False, device="cpu",
                      checkpoint_dir=str(folder), checkpoint_every_steps=2, callbacks=callbacks, **kw)
    result = trainer.fit(model, data, ckpt_path=ckpt)
    return result, [p.detach().clone() for p in model.parameters()]


@pytest.mark.parametrize("sampler,workers", [("neighbor", 0), ("neighbor", 1), ("cluster", 0)])
def test_stopped_mid_epoch_and_resumed_is_the_uninterrupted_run(tmp_path, sampler, workers):
    data = two_community_graph(n_per=40)
    ref, ref_w = _fit(data, tmp_path / "ref", sampler, num_workers=workers)
    with pytest.raises(Stop):
        _fit(data, tmp_path / "cut", sampler, [StopAt(epoch=1, step=4)], num_workers=workers)
    names = sorted(os.listdir(tmp_path / "cut"))
    assert names[-1] == "epoch-000001-step-000004.pt", names  # the newest: 4 steps into epoch 1
    steps = Steps()
    res, res_w = _fit(data, tmp_path / "cut", sampler, [steps], ckpt="last", num_workers=workers)
    assert steps.seen[0] == (1, 5)  # goes on with the 5th step of epoch 1
    assert all(torch.equal(a, b) for a, b in zip(ref_w, res_w))
    assert res["test"] == ref["test"] and res["history"] == [
        {**h, "seconds": r["seconds"]} for h, r in zip(ref["history"], res["history"])]


def test_dropped_batches_of_an_on_disk_store_are_not_read(tmp_path, monkeypatch):
    from gnnkit.stores.ondisk import OnDiskFeatureStore, open_store, write_data

    data = two_community_graph(n_per=40)
    write_data(data, tmp_path / "store")
    _, ref_w = _fit(open_store(tmp_path / "store"), tmp_path / "ref")
    with pytest.raises(Stop):
        _fit(open_store(tmp_path / "store"), tmp_path / "cut", callbacks=[StopAt(epoch=1, step=4)])
    reads, real = [], OnDiskFeatureStore.get

    def counting(self, name, ids=None):
        if name == "x" and ids is not None:
            reads.append(ids.numel())
        return real(self, name, ids)

    monkeypatch.setattr(OnDiskFeatureStore, "get", counting)
    steps = Steps()
    _, res_w = _fit(open_store(tmp_path / "store"), tmp_path / "cut", callbacks=[steps], ckpt="last")
    assert all(torch.equal(a, b) for a, b in zip(ref_w, res_w))
    assert steps.seen[0] == (1, 5)
    assert len(reads) == len(steps.seen)  # one gather per trained step, none for the 4 batches drawn again


def test_refusals_name_the_problem(tmp_path):
    data = two_community_graph(n_per=40)
    with pytest.raises(GnnkitError, match="mvs sampler's batches depend on the steps"):
        _fit(data, tmp_path / "mvs", "mvs")
    with pytest.raises(GnnkitError, match="checkpoint_every_steps must be >= 1"):
        Trainer(checkpoint_dir=str(tmp_path / "z"), checkpoint_every_steps=0)
    from types import SimpleNamespace

    from gnnkit.callbacks import Checkpointing
    from gnnkit.tasks.temporal_link import TemporalLinkPrediction

    trainer = SimpleNamespace(sampler=_sampler("neighbor"), task=TemporalLinkPrediction())
    with pytest.raises(GnnkitError, match="temporal-link task's steps change state"):
        Checkpointing(str(tmp_path / "t"), every_steps=3).on_fit_start(trainer)


def test_cli_needs_a_checkpoint_dir(capsys):
    from gnnkit.cli import main

    code = main(["train", "--dataset", "csbm", "--num-nodes", "200", "--checkpoint-every-steps", "5", "--no-progress"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err == ["gnnkit: error: --checkpoint-every-steps needs --checkpoint-dir (where the "
                                 "checkpoints go)"]


class StopAfter(Callback):
    """Raises on every rank after step ``step`` of epoch ``epoch`` (the checkpoint before it is on disk)."""

    state_key = "test-stop-after"

    def __init__(self, epoch: int, step: int):
        self.epoch, self.step = epoch, step

    def on_batch_end(self, trainer, batch, outputs) -> None:
        if trainer.epoch == self.epoch and trainer.step_in_epoch == self.step:
            raise Stop


def _two_rank_worker(rank: int, ports: tuple, out_dir: str) -> None:
    os.environ.update(RANK=str(rank), WORLD_SIZE="2", LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1")
    torch.set_num_threads(1)
    data = two_community_graph(n_per=40)
    runs = (("ref", (), None), ("cut", (StopAfter(epoch=1, step=3),), None), ("cut", (), "last"))
    for (folder, callbacks, ckpt), port in zip(runs, ports):  # each run its own process group
        os.environ["MASTER_PORT"] = str(port)
        try:
            _, weights = _fit(data, os.path.join(out_dir, folder), callbacks=callbacks, ckpt=ckpt)
        except Stop:
            if rank == 0:
                torch.save(sorted(os.listdir(os.path.join(out_dir, folder))), os.path.join(out_dir, "at-stop.pt"))
            continue
        torch.save(weights, os.path.join(out_dir, f"{folder}{rank}.pt"))


def test_two_ranks_stopped_mid_epoch_resume_bitwise(tmp_path):
    """Under DDP (2 ranks, gloo): rank 0 writes the step checkpoints, both ranks resume from one and
    end with the uninterrupted run's weights."""
    import torch.multiprocessing as mp

    from test_distributed import free_port

    mp.spawn(_two_rank_worker, args=((free_port(), free_port(), free_port()), str(tmp_path)), nprocs=2, join=True)
    assert torch.load(tmp_path / "at-stop.pt", weights_only=True) == ["epoch-000000.pt", "epoch-000001-step-000002.pt"]
    ref = torch.load(tmp_path / "ref0.pt", weights_only=True)
    for rank in (0, 1):
        res = torch.load(tmp_path / f"cut{rank}.pt", weights_only=True)
        assert all(torch.equal(a, b) for a, b in zip(ref, res)), rank
