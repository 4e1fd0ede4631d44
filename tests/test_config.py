"""``gnnkit train --config FILE.toml`` (issue 25): the flags' keys, flags override, errors name the key."""
import json

import pytest

from gnnkit.cli import main

BASE = """dataset = "csbm"
num-nodes = 300
num_classes = 3
num-features = 8
avg-degree = 4
epochs = 3
hidden = 8
weight-decay = 1e-3
no-progress = true
threads = 1
"""
FLAGS = ["--dataset", "csbm", "--num-nodes", "300", "--num-classes", "3", "--num-features", "8", "--avg-degree",
         "4", "--epochs", "3", "--hidden", "8", "--weight-decay", "1e-3", "--no-progress", "--threads", "1"]


def _write(tmp_path, text, name="run.toml"):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def _results(out):
    return json.loads((out / "results.json").read_text())


def test_config_equals_the_same_flags_and_is_recorded(tmp_path):
    cfg = _write(tmp_path, BASE)
    assert main(["train", "--config", cfg, "--out", str(tmp_path / "a")]) == 0
    assert main(["train", *FLAGS, "--out", str(tmp_path / "b")]) == 0
    a, b = _results(tmp_path / "a"), _results(tmp_path / "b")
    assert a["runs"][0]["val"] == b["runs"][0]["val"] and a["runs"][0]["test"] == b["runs"][0]["test"]
    assert a["run"] == b["run"]  # the same run: the file's path is not part of its identity
    assert {k: v for k, v in a["settings"].items() if k not in ("config", "out")} == \
        {k: v for k, v in b["settings"].items() if k not in ("config", "out")}
    assert a["config"]["path"] == cfg and a["config"]["values"]["weight-decay"] == 1e-3
    assert "config" not in b


def test_flags_on_the_command_line_override_the_file(tmp_path):
    cfg = _write(tmp_path, BASE + 'fanouts = [5, 3]\nsampler = "neighbor"\n')
    assert main(["train", "--config", cfg, "--hidden", "12", "--fanouts", "4,2", "--out", str(tmp_path / "o")]) == 0
    s = _results(tmp_path / "o")["settings"]
    assert s["hidden"] == 12 and s["fanouts"] == "4,2" and s["weight_decay"] == 1e-3 and s["sampler"] == "neighbor"
    assert main(["train", "--config", cfg, "--out", str(tmp_path / "p")]) == 0
    assert _results(tmp_path / "p")["settings"]["fanouts"] == "5,3"  # a list is the flag's comma-separated text


@pytest.mark.parametrize("text, message", [
    ("hiden = 16\n", "unknown key 'hiden' (not an option of gnnkit train); did you mean 'hidden'?"),
    ("config = 'other.toml'\n", "unknown key 'config'"),
    ("epochs = 2.5\n", "epochs: invalid count '2.5' (not a whole number)"),
    ("no-progress = 1\n", "no-progress is a switch: write true or false, got 1"),
    ("hidden = true\n", "hidden takes a value like the flag --hidden, got True"),
    ("precision = 'fp8'\n", "precision: 'fp8' is not one of 32, bf16-mixed, 16-mixed"),
    ("[model]\nhidden = 16\n", "[model] is a table; the file is flat"),
    ("hidden = \n", "not valid TOML"),
])
def test_bad_files_are_one_line_naming_the_key(tmp_path, capsys, text, message):
    cfg = _write(tmp_path, text)
    assert main(["train", "--config", cfg, "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"gnnkit: error: --config {cfg}") and message in err[0], err
    assert not (tmp_path / "o").exists()


def test_missing_file(tmp_path, capsys):
    assert main(["train", "--config", str(tmp_path / "absent.toml")]) == 2
    assert "absent.toml: No such file or directory" in capsys.readouterr().err


def test_the_example_config_is_valid():
    """examples/kipf_cora.toml: every key is an option of gnnkit train and its value passes the flag's checks."""
    from pathlib import Path

    from gnnkit.cli import build_parser
    from gnnkit.commands import config

    path = Path(__file__).resolve().parents[1] / "examples" / "kipf_cora.toml"
    train = build_parser()._subparsers._group_actions[0].choices["train"]  # noqa: SLF001
    values = config.defaults_from(str(path), train, "train")
    assert values["transform"] == "NormalizeFeatures" and values["weight_decay"] == 5e-4 and values["seeds"] == 10
