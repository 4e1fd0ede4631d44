"""Seeded fuzzing of the loaders (issue 19): mutated ``.npz`` graphs and event files end in success
or a GnnkitError (exit 0 or 2 through the CLI), never another exception, a crash or a hang.

The mutations live in ``benchmarks/fuzz.py`` (which runs thousands of them); here a few hundred
run in the suite, and a handful go through ``python -m gnnkit info``.
"""
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("gnnkit_fuzz", REPO / "benchmarks" / "fuzz.py")
fuzz = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fuzz)

CASES = 200  # per family; about 5 s in all


@pytest.mark.parametrize("kind", ["npz", "events", "sparse"])
def test_mutations_end_in_success_or_gnnkit_error(kind, tmp_path):
    failures = [f for i in range(CASES) if (f := fuzz.run_case(kind, i, seed=2026, folder=str(tmp_path)))]
    assert failures == []


@pytest.mark.parametrize("kind", ["npz", "events"])
def test_every_mutation_kind_is_drawn_and_changes_the_file(kind):
    table = fuzz.NPZ_MUTATIONS if kind == "npz" else fuzz.EVENT_MUTATIONS
    drawn = {fuzz.make_case(kind, i, 2026)[1] for i in range(CASES)}
    assert drawn == set(table)
    base = fuzz.save_npz(fuzz.base_arrays()) if kind == "npz" else fuzz._ev_text(fuzz.base_events())
    changed = sum(fuzz.make_case(kind, i, 2026)[2] != base for i in range(40))
    assert changed >= 30  # a few mutations may leave the file as it was (a shuffle of equal values)


def test_the_unmutated_files_load(tmp_path):
    npz, events = tmp_path / "g.npz", tmp_path / "e.txt"
    npz.write_bytes(fuzz.save_npz(fuzz.base_arrays()))
    events.write_bytes(fuzz._ev_text(fuzz.base_events()))
    data = fuzz.load_case("npz", str(npz))
    assert data.num_nodes == 24 and data.num_classes == 3
    assert fuzz.load_case("events", str(events)).num_events == 60


def test_a_failure_is_reported(tmp_path, monkeypatch):
    def boom(kind, path, sort=False):
        raise KeyError("not a GnnkitError")

    monkeypatch.setattr(fuzz, "load_case", boom)
    failure = fuzz.run_case("npz", 0, seed=1, folder=str(tmp_path))
    assert failure is not None and "KeyError" in failure


@pytest.mark.parametrize("index", [0, 3])  # each starts Python and torch: ~8 s
def test_cli_info_on_mutated_files(index, tmp_path):
    kind = "npz"
    family, name, data = fuzz.make_case(kind, index, 7)
    path = tmp_path / f"case{index}.npz"
    path.write_bytes(data)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "gnnkit", "info", str(path)], capture_output=True, text=True,
                          timeout=120, cwd=tmp_path, env=env)
    assert proc.returncode in (0, 2), f"{family}/{name}: exit {proc.returncode}\n{proc.stderr[-2000:]}"
    assert "Traceback" not in proc.stderr
    if proc.returncode == 2:
        assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr


def test_fuzz_inputs_are_deterministic():
    assert fuzz.make_case("npz", 5, 3)[2] == fuzz.make_case("npz", 5, 3)[2]
    assert fuzz.make_case("events", 5, 3)[2] == fuzz.make_case("events", 5, 3)[2]
    assert isinstance(fuzz.base_arrays()["class_names"], np.ndarray)


def test_mutated_planetoid_folders(shared_data, tmp_path):
    raw = shared_data / "Planetoid" / "Cora" / "raw"
    if not raw.is_dir():
        pytest.skip(f"Cora raw files not found under {raw}")
    failures = [f for i in range(16) if (f := fuzz.run_planetoid_case(raw, i, seed=2026, folder=str(tmp_path)))]
    assert failures == []
