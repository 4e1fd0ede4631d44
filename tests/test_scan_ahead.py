"""Scan-ahead (gnnkit.samplers.scan): several batches' feature rows read in one pass over a store,
the same batches and the same training bit for bit; refusals in one line."""
from __future__ import annotations

import hashlib
import math

import pytest
import torch

import gnnkit.stores.ondisk.scan as scan_mod
from gnnkit.cli import main
from gnnkit.data.csbm import csbm
from gnnkit.errors import GnnkitError
from gnnkit.stores import from_data
from gnnkit.stores.ondisk import open_store, write_data

SMALL = dict(num_nodes=3000, avg_degree=6.0, num_features=12, num_classes=4, seed=5)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    path = tmp_path_factory.mktemp("scan") / "s"
    write_data(csbm(**SMALL), path, feature_dtype="float16")
    return path


@pytest.fixture
def scans(monkeypatch):
    """The number of scan_rows passes made (the real function runs)."""
    calls = []
    real = scan_mod.scan_rows

    def counting(files, name, ids, *args, **kw):
        calls.append(ids.numel())
        return real(files, name, ids, *args, **kw)

    monkeypatch.setattr(scan_mod, "scan_rows", counting)
    return calls


def _batches(stores, group: int, x_dtype=None):
    from gnnkit.samplers.neighbor import NeighborSampler
    from gnnkit.samplers.scan import scan_ahead, scan_context
    from models import build_model
    from tests.sampler_context import RankedContext

    graph, features = stores
    if x_dtype is not None:
        features = features.with_dtype("x", x_dtype)
    model = build_model("sage", 12, 4, hidden=8, num_layers=2)
    sampler = NeighborSampler(fanouts=[5, 3], batch_size=100)
    ctx = RankedContext(device=torch.device("cpu"), seed=4, graph=graph, features=features, data=None,
                        adj_norm=model.adj_norm, diag_lambda=model.diag_lambda)
    ctx = scan_context(ctx, sampler, group)
    sampler.setup(ctx, model)
    sampler.set_epoch(1)
    return list(scan_ahead(sampler, ctx.features, group) if group else sampler)


@pytest.mark.parametrize("x_dtype,fill_rows", [(None, None), (torch.bfloat16, None), (None, 7)])
def test_scan_ahead_batches_are_the_plain_batches(store, scans, monkeypatch, x_dtype, fill_rows):
    """Groups of 1, 3 and more than the epoch: bitwise the plain sampler's batches, in one scan per group
    (also through a cast store: float16 on disk, bfloat16 for the run; and filled 7 rows at a time)."""
    if fill_rows:
        import gnnkit.samplers.scan as scan_ahead_mod

        monkeypatch.setattr(scan_ahead_mod, "FILL_ROWS", fill_rows)
    plain = _batches(open_store(store), 0, x_dtype)
    assert not scans and len(plain) > 3
    for group in (1, 3, len(plain) + 5):
        scans.clear()
        got = _batches(open_store(store), group, x_dtype)
        assert len(scans) == math.ceil(len(plain) / group), group
        assert len(got) == len(plain)
        for a, b in zip(plain, got):
            assert a.x.dtype == b.x.dtype == (x_dtype or torch.float32)
            for field in ("x", "y", "n_id", "loss_index"):
                assert torch.equal(getattr(a, field), getattr(b, field)), (group, field)
            assert all(torch.equal(getattr(u.csr, f)(), getattr(v.csr, f)())
                       for u, v in zip(a.adj, b.adj) for f in ("crow_indices", "col_indices", "values"))


def test_reads_outside_a_scan_are_the_store(store):
    from gnnkit.samplers.scan import ScanFeatures

    _, features = open_store(store)
    wrapped, ids = ScanFeatures(features), torch.tensor([7, 3, 2999, 3])
    assert torch.equal(wrapped.get("x", ids), features.get("x", ids))
    with wrapped.recording() as pending:
        deferred = wrapped.get("x", ids)
        assert torch.equal(wrapped.get("y", ids), features.get("y", ids))  # other names: read at once
    assert len(pending) == 1 and wrapped.fill(pending) == 3
    assert torch.equal(deferred, features.get("x", ids))


def _weights(stores, sampler: str = "neighbor", **kw) -> str:
    from gnnkit import Trainer
    from gnnkit.samplers.cluster import ClusterSampler
    from gnnkit.samplers.neighbor import NeighborSampler
    from models import build_model

    torch.manual_seed(0)
    model = build_model("sage" if sampler == "neighbor" else "gcn", 12, 4, hidden=16, num_layers=2)
    s = NeighborSampler(fanouts=[4, 4], batch_size=64) if sampler == "neighbor" else \
        ClusterSampler(num_parts=12, clusters_per_batch=2)
    Trainer(sampler=s, max_epochs=2, seed=0, progress=False, device="cpu", **kw).fit(model, stores)
    return hashlib.sha256(b"".join(p.detach().numpy().tobytes() for p in model.parameters())).hexdigest()


@pytest.mark.parametrize("sampler", ["neighbor", "cluster"])
def test_trainer_scan_group_trains_the_same_weights(store, scans, sampler):
    plain = _weights(open_store(store), sampler)
    assert not scans
    assert _weights(open_store(store), sampler, scan_group=3) == plain
    assert scans
    assert _weights(open_store(store), sampler, scan_group=3, num_workers=1) == plain  # in the pipeline's thread


def test_sampled_evaluation_reads_in_passes_with_the_same_figures(store, scans):
    """With scan_group, the evaluation's sampled neighborhoods are read group by group (one scan per
    group of 64-seed batches), and every figure equals the plain evaluation's."""
    from gnnkit import Trainer
    from gnnkit.samplers.neighbor import NeighborSampler
    from gnnkit.strategies.backprop import Backprop
    from models import build_model

    def run(**kw):
        torch.manual_seed(0)
        model = build_model("sage", 12, 4, hidden=16, num_layers=2)
        trainer = Trainer(sampler=NeighborSampler(fanouts=[4, 4], batch_size=64), max_epochs=0, seed=0,
                          progress=False, device="cpu", strategy=Backprop().set_inference("sampled", [4, 4]), **kw)
        trainer.fit(model, open_store(store))
        return trainer.result["metrics"]

    plain = run()
    assert not scans
    assert run(scan_group=5) == plain
    assert len(scans) >= 2 and all(0 < n <= SMALL["num_nodes"] for n in scans)  # val and test lookups, in passes


def test_trainer_refuses_scan_group_without_a_store_or_with_feedback(store):
    from gnnkit import Trainer
    from models import build_model

    model = build_model("sage", 12, 4, hidden=8, num_layers=2)
    with pytest.raises(GnnkitError, match="on-disk store"):
        Trainer(sampler="neighbor", max_epochs=1, progress=False, device="cpu", scan_group=2).fit(
            model, from_data(csbm(**dict(SMALL, num_nodes=300))))
    with pytest.raises(GnnkitError, match="depends on the step"):
        Trainer(sampler="mvs", max_epochs=1, progress=False, device="cpu", scan_group=2).fit(
            build_model("sage", 12, 4, hidden=8, num_layers=2), open_store(store))
    with pytest.raises(GnnkitError, match="scan_group must be >= 0"):
        Trainer(scan_group=-1)


def test_train_command_scan_group(store, tmp_path, capsys):
    common = ["--sampler", "neighbor", "--epochs", "1", "--no-progress", "--num-workers", "0"]
    assert main(["train", "--dataset", str(store), *common, "--scan-group", "4", "--out", str(tmp_path / "a")]) == 0
    capsys.readouterr()
    graph = ["--num-nodes", "300", "--avg-degree", "6", "--num-features", "12", "--num-classes", "4"]
    assert main(["train", "--dataset", "csbm", *graph, *common, "--scan-group", "2", "--out", str(tmp_path / "b")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "scan" in err and "on-disk store" in err
