"""The sampling pipeline (samplers/pipeline.py): same batches, same weights, clean shutdown."""
from __future__ import annotations

import threading

import pytest
import torch

from gnnkit import Trainer
from gnnkit.callbacks import Callback
from gnnkit.context import RunContext
from gnnkit.data.csbm import csbm
from gnnkit.errors import GnnkitError
from gnnkit.models import build_model
from gnnkit.samplers.cluster import ClusterSampler
from gnnkit.samplers.mvs import MVSSampler
from gnnkit.samplers.neighbor import NeighborSampler
from gnnkit.samplers.pipeline import THREAD_NAME, Prefetcher, epoch_batches, plan
from gnnkit.stores import from_data
from gnnkit.strategies.backprop import Backprop


def _data():
    return csbm(num_nodes=600, num_classes=3, avg_degree=6, num_features=12, seed=1)


def _sampler_threads() -> list:
    return [t for t in threading.enumerate() if t.name == THREAD_NAME]


class _Threads(Callback):
    """Records how many sampling threads are alive at each step."""

    def __init__(self):
        self.alive = []

    def on_batch_end(self, trainer, batch, outputs):
        self.alive.append(len(_sampler_threads()))


def _fit(sampler, workers: int, prefetch: int = 2, strategy="backprop", epochs: int = 2, threads=None):
    torch.manual_seed(0)
    data = _data()
    model = build_model("sage", data.num_features, 3, hidden=16, num_layers=2, dropout=0.5)
    trainer = Trainer(sampler=sampler, strategy=strategy, max_epochs=epochs, seed=3, progress=False, lr=0.01,
                      num_workers=workers, prefetch=prefetch, device="cpu", callbacks=[threads or _Threads()])
    trainer.fit(model, data)
    return {k: v.clone() for k, v in model.state_dict().items()}


def _same(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


@pytest.mark.parametrize("prefetch", [1, 3])
def test_neighbor_same_weights_with_and_without_pipeline(prefetch):
    seen0, seen1 = _Threads(), _Threads()
    inline = _fit(NeighborSampler(fanouts=(4, 3), batch_size=64), 0, threads=seen0)
    piped = _fit(NeighborSampler(fanouts=(4, 3), batch_size=64), 1, prefetch, threads=seen1)
    _same(inline, piped)
    # the pipeline ran (one thread; it may have ended before the last step of an epoch)
    assert set(seen0.alive) == {0} and seen1.alive[0] == 1 and max(seen1.alive) == 1
    assert not _sampler_threads()


def test_cluster_same_weights_with_and_without_pipeline():
    inline = _fit(ClusterSampler(num_parts=8, clusters_per_batch=2), 0)
    piped = _fit(ClusterSampler(num_parts=8, clusters_per_batch=2), 2)
    _same(inline, piped)
    assert not _sampler_threads()


def _setup_neighbor(workers: int = 1, prefetch: int = 2, batch_size: int = 32):
    data = _data()
    model = build_model("sage", data.num_features, 3, hidden=8, num_layers=2)
    graph, features = from_data(data)
    ctx = RunContext(device=torch.device("cpu"), graph=graph, features=features, adj_norm=model.adj_norm,
                     num_workers=workers, prefetch=prefetch)
    sampler = NeighborSampler(fanouts=(3, 2), batch_size=batch_size)
    sampler.setup(ctx, model)
    return sampler, ctx


def test_same_batches_in_same_order():
    sampler, ctx = _setup_neighbor()
    sampler.set_epoch(1)
    inline = list(sampler)
    with epoch_batches(sampler, ctx) as batches:
        piped = list(batches)
    assert len(piped) == len(inline) == len(sampler) > 2
    for a, b in zip(inline, piped):
        assert torch.equal(a.n_id, b.n_id) and torch.equal(a.x, b.x) and torch.equal(a.y, b.y)
        for ba, bb in zip(a.adj, b.adj):
            assert torch.equal(ba.csr.crow_indices(), bb.csr.crow_indices())
            assert torch.equal(ba.csr.col_indices(), bb.csr.col_indices())
            assert torch.equal(ba.csr.values(), bb.csr.values())
    assert not _sampler_threads()


def test_early_break_joins_the_thread():
    sampler, ctx = _setup_neighbor(prefetch=1, batch_size=8)
    with epoch_batches(sampler, ctx) as batches:
        for i, _ in enumerate(batches):
            assert len(_sampler_threads()) == 1
            if i == 1:
                break
    assert not _sampler_threads()


class _Failing:
    """An iterable sampler stand-in whose third batch raises."""

    name, wants_feedback = "failing", False

    def __init__(self, exc: BaseException, at: int = 2, n: int = 6):
        self.exc, self.at, self.n, self.closed = exc, at, n, False

    def __len__(self):
        return self.n

    def __iter__(self):
        try:
            for i in range(self.n):
                if i == self.at:
                    raise self.exc
                yield torch.full((2,), float(i))
        finally:
            self.closed = True


def test_sampler_error_is_raised_in_the_loop_at_its_batch():
    src = _Failing(GnnkitError("bad batch"))
    seen = []
    with pytest.raises(GnnkitError, match="bad batch"):
        with epoch_batches(src, RunContext(device=torch.device("cpu"), num_workers=1)) as batches:
            for b in batches:
                seen.append(int(b[0]))
    assert seen == [0, 1] and src.closed
    assert not _sampler_threads()


def test_keyboard_interrupt_in_the_step_and_in_the_sampler():
    src = _Failing(GnnkitError("never reached"), at=99, n=100)
    with pytest.raises(KeyboardInterrupt):
        with epoch_batches(src, RunContext(device=torch.device("cpu"), num_workers=1, prefetch=2)) as batches:
            for i, _ in enumerate(batches):
                if i == 3:
                    raise KeyboardInterrupt
    assert src.closed and not _sampler_threads()
    src = _Failing(KeyboardInterrupt())
    with pytest.raises(KeyboardInterrupt):
        with epoch_batches(src, RunContext(device=torch.device("cpu"), num_workers=1)) as batches:
            list(batches)
    assert not _sampler_threads()


def test_error_in_the_step_stops_the_trainer_thread():
    class Boom(Backprop):
        calls = 0

        def step(self, ctx, model, batch, task):
            Boom.calls += 1
            if Boom.calls == 3:
                raise GnnkitError("step failed")
            return super().step(ctx, model, batch, task)

    with pytest.raises(GnnkitError, match="step failed"):
        _fit(NeighborSampler(fanouts=(4, 3), batch_size=32), 1, strategy=Boom())
    assert not _sampler_threads()


def test_plan_runs_feedback_and_single_batch_samplers_inline():
    sampler, ctx = _setup_neighbor(workers=0)
    assert plan(sampler, ctx)[0] == 0
    assert plan(sampler, ctx.replace(num_workers=4)) == (1, "one sequential random stream per epoch")
    mvs = MVSSampler(batch_size=32)
    threads, why = plan(mvs, ctx.replace(num_workers=2))
    assert threads == 0 and "feedback" in why
    one = _Failing(GnnkitError("x"), n=1)
    assert plan(one, ctx.replace(num_workers=1)) == (0, "the epoch has one batch")
    one.n, one.background = 5, False
    assert plan(one, ctx.replace(num_workers=1))[0] == 0
    one.background = True
    assert plan(one, ctx.replace(num_workers=1))[0] == 1

    class Talking:  # a store that exchanges rows with other ranks
        background = False

    threads, why = plan(one, ctx.replace(num_workers=1, features=Talking()))
    assert threads == 0 and "Talking" in why


def test_mvs_trains_unpipelined_with_workers():
    seen = _Threads()
    a = _fit(MVSSampler(batch_size=64), 0, epochs=1)
    b = _fit(MVSSampler(batch_size=64), 2, epochs=1, threads=seen)
    _same(a, b)
    assert set(seen.alive) == {0}
    assert not _sampler_threads()


def test_prefetch_must_be_positive():
    with pytest.raises(ValueError, match="prefetch"):
        Prefetcher([1, 2], prefetch=0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_pinned_non_blocking_copies_give_the_same_batches():
    sampler, ctx = _setup_neighbor()
    sampler.set_epoch(0)
    inline = [b.to("cuda") for b in sampler]
    with epoch_batches(sampler, ctx.replace(device=torch.device("cuda"))) as batches:
        piped = list(batches)
    for a, b in zip(inline, piped):
        assert b.x.is_cuda and torch.equal(a.x, b.x) and torch.equal(a.n_id, b.n_id)
    assert not _sampler_threads()


def test_per_rank_seeds_are_not_sharded_again(monkeypatch):
    from gnnkit.samplers import loader

    sampler, ctx = _setup_neighbor()
    monkeypatch.setattr(type(ctx), "world_size", property(lambda self: 2))
    monkeypatch.setattr(type(ctx), "shard", lambda self, items, equal=True: items[::2])
    ids = torch.arange(10)
    assert torch.equal(loader.shard(ctx, ids), ids[::2]) and sampler.loader.steps_for(ctx) == sampler.loader.steps(2)
    monkeypatch.setattr(type(ctx.features), "seeds_per_rank", True, raising=False)
    assert loader.per_rank(ctx) and torch.equal(loader.shard(ctx, ids), ids)
    assert sampler.loader.steps_for(ctx) == sampler.loader.steps(1)


def test_device_tensors_finds_every_tensor_of_a_batch():
    from gnnkit.samplers.batch import device_tensors

    sampler, ctx = _setup_neighbor()
    batch = sampler.sample_from_nodes(torch.arange(8))
    found = list(device_tensors(batch))
    ids = {t.data_ptr() for t in found}
    assert batch.x.data_ptr() in ids and batch.n_id.data_ptr() in ids
    for adj in batch.adj:  # a block's CSR as its index and value tensors
        assert adj.csr.values().data_ptr() in ids and adj.csr.col_indices().data_ptr() in ids
    assert all(t.layout == torch.strided for t in found)
    moved = batch.to("cpu", non_blocking=True)
    assert torch.equal(moved.x, batch.x) and len(moved.adj) == len(batch.adj)
