"""``OUT/curves.png`` beside results.json (issue 25): drawn from every seed's history, kept across
``--resume``, and the run goes on without matplotlib."""
import json
import sys

import pytest

from gnnkit.cli import main
from gnnkit.commands import curves

TRAIN = ["train", "--dataset", "csbm", "--num-nodes", "300", "--num-classes", "3", "--num-features", "8",
         "--avg-degree", "4", "--epochs", "4", "--no-progress", "--threads", "1"]
PNG = b"\x89PNG\r\n\x1a\n"


def test_curves_png_from_every_seed(tmp_path, monkeypatch):
    pytest.importorskip("matplotlib", reason="curves.png needs matplotlib (the test/bench extra)")
    drawn = []
    real = curves.write_curves
    monkeypatch.setattr(curves, "write_curves", lambda path, h, *a: drawn.append({s: len(v) for s, v in h.items()})
                        or real(path, h, *a))
    out = tmp_path / "run"
    assert main([*TRAIN, "--seeds", "2", "--out", str(out)]) == 0
    assert (out / "curves.png").read_bytes()[:8] == PNG
    assert drawn == [{0: 4}, {0: 4, 1: 4}]  # after each seed, every evaluation of the seeds so far
    seed = json.loads((out / "runs" / "seed-1.json").read_text())
    assert [row["epoch"] for row in seed["history"]] == [0, 1, 2, 3] and "val_accuracy" in seed["history"][0]
    assert all("history" not in r for r in json.loads((out / "results.json").read_text())["runs"])
    # a resumed run draws the kept seeds' histories (read back from their files) with the new one
    assert main([*TRAIN, "--seeds", "3", "--out", str(out), "--resume"]) == 0
    assert drawn[-1] == {0: 4, 1: 4, 2: 4}


def test_series_keep_split_metrics_only():
    history = {0: [{"epoch": 0, "train_loss": 1.0, "val_accuracy": 0.5, "seconds": 0.1, "val_auc": float("nan")},
                   {"epoch": 2, "train_loss": 0.5, "val_accuracy": 0.75, "seconds": 0.2}]}
    got = curves._series(history)
    assert got == {"loss": {("train", 0): ([0, 2], [1.0, 0.5])}, "accuracy": {("val", 0): ([0, 2], [0.5, 0.75])}}


def test_the_run_goes_on_without_matplotlib(tmp_path, monkeypatch):
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    assert curves.write_curves(str(tmp_path / "c.png"), {0: [{"epoch": 0, "val_loss": 1.0}]}) is None
    out = tmp_path / "run"
    assert main([*TRAIN, "--out", str(out)]) == 0
    assert (out / "results.json").is_file() and not (out / "curves.png").exists()
