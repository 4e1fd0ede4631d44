"""benchmarks/out_of_core.py --full-epoch: an epoch (and its test evaluation) stopped midway and
resumed equals an uninterrupted one bitwise, and equals the library's own iteration of the epoch;
a checkpoint of other settings, or a folder another run holds, is refused."""
from __future__ import annotations

import importlib.util
import shutil
import sys
import tempfile
from pathlib import Path

import pytest
import torch

from gnnkit.errors import GnnkitError

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def ooc():
    spec = importlib.util.spec_from_file_location("out_of_core_bench", ROOT / "benchmarks" / "out_of_core.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def work(ooc, tmp_path_factory):
    """A papers-shaped csbm store at 20,000 nodes (217 training, 38 test nodes), in memory-backed
    /dev/shm where there is one (the checkpoints' fsyncs need not queue behind other disk work)."""
    shm = Path("/dev/shm")
    path = Path(tempfile.mkdtemp(prefix="gnnkit-ooc-", dir=shm)) if shm.is_dir() else tmp_path_factory.mktemp("ooc")
    ooc.stage_build(ooc.parse(["--preset", "papers", "--num-nodes", "20000", "--work", str(path)]))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def args_for(ooc, work, epoch_dir, *extra):
    return ooc.parse(["--preset", "papers", "--num-nodes", "20000", "--work", str(work), "--reuse", "--steps", "0",
                      "--full-epoch", "--batch-size", "16", "--checkpoint-every", "4",
                      "--epoch-dir", str(work / epoch_dir), *extra])


def final(work, epoch_dir):
    files = sorted((work / epoch_dir).glob("ckpt-*.pt"))
    assert 1 <= len(files) <= 2  # the newest two kept
    return torch.load(files[-1], weights_only=True)


def same_tensors(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_stopped_and_resumed_epoch_is_bitwise_the_uninterrupted_one(ooc, work):
    ref = ooc.stage_train(args_for(ooc, work, "ref", "--scan-group", "3"), "store")  # rows read in groups of 3
    steps = ref["epoch_steps"]
    assert ref["phase"] == "done" and steps == 14 and ref["test_batches"] == 3 and ref["test_nodes"] == 38
    # stopped after 6 steps (between two checkpoints), after 10 (a group's end, the next group
    # already drawn in the background), inside the test evaluation (inside a group), then to the
    # end; the pieces read the features batch by batch, then in groups of 4 (one sequential pass per
    # group, the next group drawn in the background), then batch by batch, the next one drawn ahead
    first = ooc.stage_train(args_for(ooc, work, "cut", "--stop-after", "6"), "store")
    assert (first["phase"], first["epoch_steps"]) == ("train", 6)
    scan4 = ("--scan-group", "4", "--prefetch")
    assert ooc.stage_train(args_for(ooc, work, "cut", "--stop-after", "4", *scan4), "store")["epoch_steps"] == 10
    second = ooc.stage_train(args_for(ooc, work, "cut", "--stop-after", str(steps - 10 + 1), *scan4), "store")
    assert (second["phase"], second["epoch_steps"], second["test_batches"]) == ("eval", steps, 1)
    last = ooc.stage_train(args_for(ooc, work, "cut", "--prefetch"), "store")
    assert last["phase"] == "done" and [p["first_step"] for p in last["pieces"]] == [0, 6, 10, steps]
    assert [p["first_eval_batch"] for p in last["pieces"]] == [0, 0, 0, 1]
    assert [(p["scan_group"], p["prefetch"]) for p in last["pieces"]] == [(0, False), (4, True), (4, True), (0, True)]
    a, b = final(work, "ref"), final(work, "cut")
    assert same_tensors(a["model"], b["model"])
    sa, sb = a["optim"]["state"], b["optim"]["state"]
    assert sa.keys() == sb.keys() and all(same_tensors(sa[i], sb[i]) for i in sa)
    assert a["per_step"]["edges"] == b["per_step"]["edges"] and a["eval"]["correct"] == b["eval"]["correct"]
    assert last["test_accuracy"] == ref["test_accuracy"] and last["epoch_steps"] == steps
    # a finished run's rerun trains nothing more and gives the same record
    again = ooc.stage_train(args_for(ooc, work, "cut"), "store")
    assert again["epoch_steps"] == steps and again["pieces"] == last["pieces"]

    # the library's own epoch (iter(sampler)) and evaluation (SampledPredictions) give the same
    model, sampler, features = ooc._setup(args_for(ooc, work, "lib"), "store")
    opt = torch.optim.Adam(model.parameters(), lr=0.003)
    sampler.set_epoch(ooc.EPOCH)
    assert ooc._train_steps(model, iter(sampler), opt, len(sampler))["steps"] == steps
    assert same_tensors(model.state_dict(), a["model"])
    assert round(ooc._evaluate(model, sampler, features), 4) == ref["test_accuracy"]


def test_other_settings_and_a_held_folder_are_refused(ooc, work):
    ooc.stage_train(args_for(ooc, work, "other", "--stop-after", "2"), "store")
    with pytest.raises(GnnkitError, match=r"belongs to another run .*'batch_size': \(16, 8\)"):
        ooc.stage_train(ooc.parse(["--preset", "papers", "--num-nodes", "20000", "--work", str(work), "--reuse",
                                   "--steps", "0", "--full-epoch", "--batch-size", "8",
                                   "--epoch-dir", str(work / "other")]), "store")
    args = args_for(ooc, work, "other")
    held = ooc.EpochDir(args.epoch_dir, ooc.run_key(args))
    try:
        with pytest.raises(GnnkitError, match="another run is using"):
            ooc.EpochDir(args.epoch_dir, ooc.run_key(args))
    finally:
        held.close()
    assert final(work, "other")["next"] == 2  # nothing the refused runs did was saved
