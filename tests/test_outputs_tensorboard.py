"""TensorBoard event files under ``--log-dir`` (issue 25): written when ``tensorboard`` is installed,
skipped cleanly (metrics.csv still written) when it is not."""
import glob
import sys

import pytest

from gnnkit.callbacks import loop_callbacks
from gnnkit.callbacks.selection import ModelSelection
from gnnkit.callbacks.tensorboard import TensorBoardLogger, available
from gnnkit.cli import main

TRAIN = ["train", "--dataset", "csbm", "--num-nodes", "300", "--num-classes", "3", "--num-features", "8",
         "--avg-degree", "4", "--epochs", "3", "--no-progress", "--threads", "1"]


def _events(folder):
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader

    scalars = {}
    for path in glob.glob(str(folder / "events.out.tfevents.*")):
        for event in EventFileLoader(path).Load():
            for v in event.summary.value:
                scalars.setdefault(v.tag, []).append((event.step, v.tensor.float_val[0]))
    return scalars


@pytest.mark.skipif(not available(), reason="tensorboard is not installed (pip install tensorboard)")
def test_event_files_hold_every_epoch(tmp_path):
    logs = tmp_path / "logs"
    assert main([*TRAIN, "--out", str(tmp_path / "o"), "--log-dir", str(logs)]) == 0
    scalars = _events(logs / "seed-0")
    csv = (logs / "seed-0" / "metrics.csv").read_text().splitlines()
    header = csv[0].split(",")
    col = header.index("val_accuracy")
    assert [s for s, _ in scalars["val/accuracy"]] == [0, 1, 2]
    assert [round(v, 5) for _, v in scalars["val/accuracy"]] == [round(float(r.split(",")[col]), 5) for r in csv[1:]]
    assert {"train/loss", "test/accuracy", "epoch/train_loss"} <= set(scalars)


def test_without_tensorboard_only_the_csv(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorboard", None)
    assert not available()
    assert not any(isinstance(cb, TensorBoardLogger) for cb in loop_callbacks(ModelSelection(), [],
                                                                               log_dir=str(tmp_path)))
    logs = tmp_path / "logs"
    assert main([*TRAIN, "--out", str(tmp_path / "o"), "--log-dir", str(logs)]) == 0
    assert (logs / "seed-0" / "metrics.csv").is_file() and not glob.glob(str(logs / "seed-0" / "events*"))


def test_a_users_own_logger_is_not_doubled(tmp_path):
    mine = TensorBoardLogger(str(tmp_path))
    cbs = loop_callbacks(ModelSelection(), [mine], log_dir=str(tmp_path))
    assert sum(isinstance(cb, TensorBoardLogger) for cb in cbs) == 1
