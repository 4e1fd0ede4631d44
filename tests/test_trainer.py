import os

import pytest
import torch

from gnnkit import CheckpointError, GnnkitError, Trainer
from gnnkit.callbacks import Callback
from gnnkit.models import GCN, MLP, GraphSAGE
from gnnkit.stores import from_data

from helpers import two_community_graph


class Recorder(Callback):
    def __init__(self):
        self.calls = []
        self.count = 0

    def on_fit_start(self, trainer): self.calls.append("fit_start")
    def on_epoch_start(self, trainer, epoch): self.calls.append(f"epoch_start{epoch}")
    def on_batch_end(self, trainer, batch, outputs): self.calls.append("batch_end")
    def on_epoch_end(self, trainer, epoch, logs): self.calls.append(f"epoch_end{epoch}")
    def on_validation_end(self, trainer, metrics): self.calls.append("validation_end")
    def on_plateau(self, trainer): self.calls.append("plateau")
    def on_checkpoint(self, trainer, path): self.calls.append("checkpoint")
    def on_fit_end(self, trainer): self.calls.append("fit_end")

    def state_dict(self):
        return {"count": len(self.calls)}

    def load_state_dict(self, state):
        self.count = state["count"]


def _fit(tmp_path=None, epochs=6, seed=0, ckpt=None, callbacks=(), model=None, **kw):
    data = two_community_graph()
    torch.manual_seed(seed)
    model = model or GCN(8, 16, 2, num_layers=2, dropout=0.5)
    t = Trainer(max_epochs=epochs, seed=seed, progress=False, callbacks=callbacks,
                checkpoint_dir=str(tmp_path / "ckpt") if tmp_path else None, **kw)
    return t, t.fit(model, data, ckpt_path=ckpt), model


def test_hook_order(tmp_path):
    rec = Recorder()
    _fit(tmp_path, epochs=2, callbacks=[rec])
    assert rec.calls == ["fit_start",
                         "epoch_start0", "batch_end", "epoch_end0", "validation_end", "checkpoint",
                         "epoch_start1", "batch_end", "epoch_end1", "validation_end", "checkpoint",
                         "fit_end"]


def test_plateau_and_early_stop_hooks():
    rec = Recorder()
    # an update of 1e-30 is lost in float32 rounding: the weights, so every figure, never change
    t, result, _ = _fit(epochs=50, callbacks=[rec], patience=3, lr=1e-30)
    assert rec.calls.count("plateau") == 1
    assert result["epochs"] == 4  # 1 improving evaluation + 3 without improvement


def test_learns_and_selects_best(tmp_path):
    t, result, model = _fit(epochs=60, lr=0.05)
    assert result["val"] >= 0.8 and result["test"] >= 0.7
    best = max(h["val_accuracy"] for h in result["history"])
    assert result["val"] == pytest.approx(best)
    assert t.test()["test_accuracy"] == pytest.approx(result["test"])
    assert t.predict().shape == (40, 2)


@pytest.mark.parametrize("cls", [GCN, GraphSAGE, MLP])
def test_models_train(cls):
    torch.manual_seed(0)
    _, result, _ = _fit(epochs=30, model=cls(8, 16, 2, num_layers=3, norm="layer", residual=True), lr=0.02)
    assert result["val"] > 0.6


def test_same_seed_same_result():
    _, r1, m1 = _fit(epochs=10)
    _, r2, m2 = _fit(epochs=10)
    for a, b in zip(m1.state_dict().values(), m2.state_dict().values()):
        assert torch.equal(a, b)
    assert r1["test"] == r2["test"]


def test_checkpoint_round_trip_and_bitwise_resume(tmp_path):
    _, _, full = _fit(tmp_path / "a", epochs=8)
    # a run stopped after epoch 4 (max_epochs=5 writes epoch-000004.pt), then resumed to 8
    (tmp_path / "b").mkdir()
    rec = Recorder()
    t1, _, _ = _fit(tmp_path / "b", epochs=5, callbacks=[rec])
    files = sorted(os.listdir(tmp_path / "b" / "ckpt"))
    assert files == ["epoch-000003.pt", "epoch-000004.pt"]  # keep_checkpoints=2, atomic names only
    rec2 = Recorder()
    t2, result, resumed = _fit(tmp_path / "b", epochs=8, ckpt="last", callbacks=[rec2])
    assert rec2.count == len(rec.calls) - 2  # state restored: saved before "checkpoint" and "fit_end"
    assert t2.start_epoch == 5
    for (k, a), b in zip(full.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), k


def test_resume_skips_corrupt_newest(tmp_path):
    _fit(tmp_path, epochs=4)
    newest = tmp_path / "ckpt" / "epoch-000003.pt"
    newest.write_bytes(newest.read_bytes()[:100])  # truncated by a crash
    with pytest.warns(UserWarning, match="unreadable"):
        t, _, _ = _fit(tmp_path, epochs=6, ckpt="last")
    assert t.resumed_from.endswith("epoch-000002.pt")


def test_bad_checkpoints(tmp_path):
    _fit(tmp_path, epochs=1)
    path = tmp_path / "ckpt" / "epoch-000000.pt"
    with pytest.raises(CheckpointError, match="another model"):
        _fit(epochs=2, ckpt=str(path), model=GCN(8, 32, 2))
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="unreadable"):
        _fit(epochs=2, ckpt=str(junk))
    torch.save({"a": 1}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="not a gnnkit checkpoint"):
        _fit(epochs=2, ckpt=str(tmp_path / "other.pt"))
    with pytest.raises(CheckpointError, match="does not exist"):
        _fit(epochs=2, ckpt=str(tmp_path / "missing.pt"))


def test_bad_arguments():
    with pytest.raises(GnnkitError, match="unknown sampler 'nope'"):
        Trainer(sampler="nope")
    with pytest.raises(GnnkitError, match="unknown strategy"):
        Trainer(strategy="nope")
    with pytest.raises(GnnkitError, match="patience"):
        Trainer(patience=0)
    with pytest.raises(GnnkitError, match="call fit"):
        Trainer().test()
    with pytest.raises(GnnkitError, match="unknown device"):
        _fit(epochs=1, device="nope")


@pytest.mark.skipif(torch.cuda.is_available(), reason="a machine with CUDA runs cuda devices")
def test_cuda_asked_without_cuda():
    with pytest.raises(GnnkitError, match="CUDA is not available"):
        _fit(epochs=1, device="cuda")


def test_csv_log(tmp_path):
    _fit(epochs=3, log_dir=str(tmp_path / "log"))
    lines = (tmp_path / "log" / "metrics.csv").read_text().splitlines()
    assert len(lines) == 4 and "val_accuracy" in lines[0] and "train_loss" in lines[0]


def test_inference_matches_forward_in_chunks():
    data = two_community_graph()
    for cls in (GCN, GraphSAGE, MLP):
        torch.manual_seed(0)
        model = cls(8, 16, 2, num_layers=3, norm="batch").eval()
        adj = from_data(data)[0].adjacency("gcn")
        with torch.no_grad():
            ref = model(data.x, adj)
        assert torch.allclose(model.inference(data.x, adj, batch_size=7), ref, atol=1e-5)
