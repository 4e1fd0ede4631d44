"""``gnnkit train --dataset PARTITION_DIR`` under the real launcher (torchrun, subprocesses):

* two launchers (c10d rendezvous on 127.0.0.1), each rank opening its own part, write one
  results.json within 1 point of one process on the whole graph;
* kill -9 of one of two workers with ``--max-restarts 1`` restarts both; they reopen their parts,
  resume from the newest checkpoint and complete.
"""
import json
import subprocess
import sys

import pytest

from test_launcher import _env, _torchrun, free_port, kill_one_of_two_and_finish

CSBM = ["--num-nodes", "1200", "--num-features", "16", "--num-classes", "4"]
RUN = ["--sampler", "full", "--model", "sage", "--hidden", "16", "--dropout", "0", "--no-progress", "--device", "cpu"]


def _partition(tmp_path_factory, num_parts: int) -> str:
    out = tmp_path_factory.mktemp("p") / "parts"
    done = subprocess.run([sys.executable, "-m", "gnnkit", "partition", "csbm", *CSBM, "--num-parts", str(num_parts),
                           "--out", str(out)], env=_env(), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return str(out)


@pytest.fixture(scope="module")
def parts(tmp_path_factory):
    return _partition(tmp_path_factory, 2)


def test_two_launchers_each_open_their_part(tmp_path, parts):
    port = free_port()
    common = ["--nnodes", "2", "--nproc-per-node", "1", "--rdzv-backend", "c10d", "--rdzv-endpoint",
              f"127.0.0.1:{port}", "-m", "gnnkit", "train", "--dataset", parts, *RUN, "--epochs", "20",
              "--out", str(tmp_path / "run")]
    procs = [subprocess.Popen(_torchrun("--node-rank", str(r), *common), env=_env(), stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True) for r in (0, 1)]
    outs = [p.communicate(timeout=300)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    result = json.loads((tmp_path / "run" / "results.json").read_text())
    assert result["world_size"] == 2
    single = subprocess.run([sys.executable, "-m", "gnnkit", "train", "--dataset", "csbm", *CSBM, *RUN, "--epochs",
                             "20", "--out", str(tmp_path / "single")], env=_env(), capture_output=True, text=True,
                            timeout=300)
    assert single.returncode == 0, single.stderr
    ref = json.loads((tmp_path / "single" / "results.json").read_text())
    assert abs(result["test_mean"] - ref["test_mean"]) <= 0.01


def test_killed_rank_restarts_and_resumes(tmp_path, parts):
    cmd = _torchrun("--nproc-per-node", "2", "--max-restarts", "1", "--monitor-interval", "0.1", "--standalone",
                    "-m", "gnnkit", "train", "--dataset", parts, *RUN, "--epochs", "60", "--out", str(tmp_path / "run"),
                    "--checkpoint-dir", str(tmp_path / "ckpt"), "--resume")
    kill_one_of_two_and_finish(cmd, tmp_path / "ckpt" / "seed-0", epochs=60)
    result = json.loads((tmp_path / "run" / "results.json").read_text())
    assert result["runs"][0]["epochs"] == 60
