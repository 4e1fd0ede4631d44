"""``gnnkit train --precision bf16-mixed``: the loaded features are held once, in the half type (not a
float32 tensor beside the Trainer's half copy), and the run's fingerprint is that of the data as loaded."""
import json

import torch

from gnnkit.cli import main
from gnnkit.trainer import Trainer

ARGS = ["train", "--dataset", "csbm", "--num-nodes", "400", "--num-classes", "3", "--num-features", "8",
        "--epochs", "1", "--no-progress", "--threads", "1"]


def test_mixed_precision_hands_the_trainer_half_features(tmp_path, monkeypatch):
    seen = []
    fit = Trainer.fit

    def spy(self, model, data, *a, **k):
        seen.append(data.x.dtype)
        return fit(self, model, data, *a, **k)

    monkeypatch.setattr(Trainer, "fit", spy)
    for precision, want in (("32", torch.float32), ("bf16-mixed", torch.bfloat16), ("16-mixed", torch.float16)):
        assert main([*ARGS, "--precision", precision, "--out", str(tmp_path / precision)]) == 0
        assert seen[-1] == want, (precision, seen)
    prints = {p: json.loads((tmp_path / p / "results.json").read_text())["fingerprint"]
              for p in ("32", "bf16-mixed", "16-mixed")}
    assert len(set(prints.values())) == 1  # the same data, whatever precision trains on it
