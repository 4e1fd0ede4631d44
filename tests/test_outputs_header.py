"""The run header's thread count (issue 25): ``--threads``, ``OMP_NUM_THREADS``, else a default that
does not oversubscribe a busy machine (cores this process may use, less the load, split among the
processes of the run on this machine)."""
import json
import os

import pytest
import torch

from gnnkit.cli import main
from gnnkit.commands import threads

TRAIN = ["train", "--dataset", "csbm", "--num-nodes", "300", "--num-classes", "3", "--num-features", "8",
         "--avg-degree", "4", "--epochs", "2", "--no-progress"]


@pytest.fixture
def machine(monkeypatch):
    """A machine of ``cores`` CPUs at one-minute ``load`` with torch's default of ``default`` threads."""
    before = torch.get_num_threads()

    def set_machine(cores, load, default=None, local=None, torch_default=True):
        monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
        monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
        if local:
            monkeypatch.setenv("LOCAL_WORLD_SIZE", str(local))
        monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(cores)), raising=False)
        monkeypatch.setattr(os, "getloadavg", lambda: (load, load, load))
        if torch_default:
            monkeypatch.setattr(torch, "get_num_threads", lambda: default or cores)

    yield set_machine
    monkeypatch.undo()
    torch.set_num_threads(before)


@pytest.mark.parametrize("cores, load, local, want", [
    (2, 0.1, None, 2),      # idle: torch's default
    (2, 1.4, None, 1),      # one core busy elsewhere
    (2, 7.9, None, 1),      # oversubscribed already: never below 1
    (16, 3.2, None, 13),    # 16 cores, ~3 busy
    (16, 0.0, 4, 4),        # under torchrun: the cores split among 4 local processes
    (8, 0.0, 16, 1),
])
def test_the_default_rule(machine, cores, load, local, want):
    machine(cores, load, local=local)
    n, why = threads.choose()
    assert n == want and why.startswith(f"auto: {cores} cores") and f"load {load:.1f}" in why


def test_an_asked_count_wins(machine, monkeypatch):
    machine(2, 5.0)
    assert threads.choose(3) == (3, "--threads")
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    assert threads.choose() == (2, "OMP_NUM_THREADS")  # torch follows the variable


def test_header_says_how_many_and_why(machine, tmp_path, capsys):
    machine(2, 1.5, torch_default=False)
    torch.set_num_threads(2)
    assert main([*TRAIN, "--out", str(tmp_path / "a")]) == 0
    head = capsys.readouterr().out.splitlines()[0]
    assert "threads 1 (auto: 2 cores, load 1.5; --threads N to set); sampling workers 0 (auto: no core free" in head, head
    res = json.loads((tmp_path / "a" / "results.json").read_text())
    assert res["threads"] == {"count": 1, "why": "auto: 2 cores, load 1.5; --threads N to set"}
    assert main([*TRAIN, "--threads", "1", "--out", str(tmp_path / "b")]) == 0
    assert "threads 1 (--threads); sampling workers" in capsys.readouterr().out.splitlines()[0]
    assert main([*TRAIN, "--threads", "1", "--num-workers", "1", "--out", str(tmp_path / "c")]) == 0
    assert capsys.readouterr().out.splitlines()[0].endswith("sampling workers 1 (--num-workers)")
    res = json.loads((tmp_path / "c" / "results.json").read_text())
    assert res["num_workers"] == {"count": 1, "why": "--num-workers"}


@pytest.mark.parametrize("cores, load, local, threads_, want", [
    (2, 0.1, None, 1, 1),   # idle 2 cores, 1 compute thread: the sampler gets the other core
    (2, 0.1, None, 2, 0),   # both cores computing: no room
    (2, 1.4, None, 1, 0),   # one core busy elsewhere
    (16, 3.2, None, 12, 1),
    (16, 0.0, 4, 4, 0),     # 4 local processes share 16 cores: 4 each, all computing
    (16, 0.0, 4, 3, 1),
])
def test_the_default_sampling_workers(machine, cores, load, local, threads_, want):
    machine(cores, load, local=local)
    n, why = threads.choose_workers("auto", threads_)
    assert n == want and why.startswith("auto: ")
    assert threads.choose_workers(3, threads_) == (3, "--num-workers")


def test_num_workers_must_be_auto_or_a_count(capsys):
    with pytest.raises(SystemExit) as exc:
        main([*TRAIN, "--num-workers", "-1"])
    assert exc.value.code == 2 and "--num-workers: must be auto or >= 0" in capsys.readouterr().err
