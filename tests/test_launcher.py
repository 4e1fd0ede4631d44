"""``gnnkit train`` under the real elastic launcher (torchrun), in subprocesses.

* a killed worker with ``--max-restarts 1`` restarts and resumes from the newest checkpoint, ending
  bitwise equal to an uninterrupted run;
* without restarts, a killed rank makes the whole job exit non-zero, naming the failed rank;
* two "machines" (two launchers, c10d rendezvous on 127.0.0.1) write one results.json.
"""
import json
import os
import signal
import socket
import subprocess
import sys
import time

import torch

GRAPH = ["--dataset", "csbm", "--num-nodes", "3000", "--num-features", "16", "--num-classes", "4",
         "--hidden", "16", "--no-progress", "--device", "cpu"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env():
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    env.pop("WORLD_SIZE", None)
    return env


def _torchrun(*args):
    return [sys.executable, "-m", "torch.distributed.run", *args]


def _children(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def _newest_epoch(ckpt_dir) -> int:
    try:
        names = [n for n in os.listdir(ckpt_dir) if n.startswith("epoch-") and n.endswith(".pt")]
    except FileNotFoundError:
        return -1
    return max((int(n[6:12]) for n in names), default=-1)


def _wait_for_epoch(ckpt_dir, epoch, proc, timeout=240):
    t0 = time.time()
    while _newest_epoch(ckpt_dir) < epoch:
        if proc.poll() is not None:
            raise AssertionError(f"job ended before epoch {epoch} was saved:\n{proc.stdout.read()}")
        if time.time() - t0 > timeout:
            proc.kill()
            raise AssertionError(f"epoch {epoch} was not saved within {timeout}s")
        time.sleep(0.02)


def _final_weights(ckpt_dir):
    files = sorted(os.listdir(ckpt_dir))
    state = torch.load(os.path.join(ckpt_dir, files[-1]), weights_only=True)
    return state["epoch"], state["model"]


def test_killed_worker_restarts_and_resumes_bitwise(tmp_path):
    epochs = ["--epochs", "150"]
    ref = subprocess.run([sys.executable, "-m", "gnnkit", "train", *GRAPH, *epochs, "--out", str(tmp_path / "ref"),
                          "--checkpoint-dir", str(tmp_path / "ref_ckpt")], env=_env(), capture_output=True,
                         text=True, timeout=300)
    assert ref.returncode == 0, ref.stderr
    cmd = _torchrun("--nproc-per-node", "1", "--max-restarts", "1", "--monitor-interval", "0.1", "--standalone",
                    "-m", "gnnkit", "train", *GRAPH, *epochs, "--out", str(tmp_path / "run"),
                    "--checkpoint-dir", str(tmp_path / "ckpt"), "--resume")
    proc = subprocess.Popen(cmd, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    _wait_for_epoch(tmp_path / "ckpt" / "seed-0", 10, proc)
    killed_at = _newest_epoch(tmp_path / "ckpt" / "seed-0")
    workers = _children(proc.pid)
    assert workers, "no worker process found under torchrun"
    for w in workers:
        os.kill(w, signal.SIGKILL)
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, out
    assert killed_at < 149, "the run finished before the kill: nothing was tested"
    assert "resumed from" in out, out[-2000:]
    e_ref, w_ref = _final_weights(tmp_path / "ref_ckpt" / "seed-0")
    e_run, w_run = _final_weights(tmp_path / "ckpt" / "seed-0")
    assert e_ref == e_run == 149
    for k in w_ref:
        assert torch.equal(w_ref[k], w_run[k]), k
    assert json.loads((tmp_path / "run" / "results.json").read_text())["runs"][0]["epochs"] == 150


def kill_one_of_two_and_finish(cmd, ckpt_dir, epochs: int, kill_after: int = 5) -> str:
    """Run ``cmd`` (torchrun, 2 workers, ``--max-restarts 1``), SIGKILL worker 1 once epoch ``kill_after``
    is saved in ``ckpt_dir``, and return the output of a job that must restart, resume and complete."""
    proc = subprocess.Popen(cmd, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    _wait_for_epoch(ckpt_dir, kill_after, proc)
    killed_at = _newest_epoch(ckpt_dir)
    workers = sorted(_children(proc.pid))
    assert len(workers) == 2
    os.kill(workers[1], signal.SIGKILL)
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, out[-3000:]
    assert killed_at < epochs - 1, "the run finished before the kill: nothing was tested"
    assert "resumed from" in out, out[-2000:]
    return out


def test_one_of_two_workers_killed_restarts_and_completes(tmp_path):
    """The restarted round must not read the killed round's addresses from the agent's store
    (it did: rank 1 connected to rank 0's old port and failed)."""
    cmd = _torchrun("--nproc-per-node", "2", "--max-restarts", "1", "--monitor-interval", "0.1", "--standalone",
                    "-m", "gnnkit", "train", *GRAPH, "--epochs", "40", "--out", str(tmp_path / "run"),
                    "--checkpoint-dir", str(tmp_path / "ckpt"), "--resume")
    kill_one_of_two_and_finish(cmd, tmp_path / "ckpt" / "seed-0", epochs=40)
    assert json.loads((tmp_path / "run" / "results.json").read_text())["runs"][0]["epochs"] == 40


def test_killed_rank_without_restarts_fails_fast_and_names_it(tmp_path):
    cmd = _torchrun("--nproc-per-node", "2", "--max-restarts", "0", "--monitor-interval", "0.1", "--standalone",
                    "-m", "gnnkit", "train", *GRAPH, "--epochs", "100000", "--out", str(tmp_path / "run"),
                    "--checkpoint-dir", str(tmp_path / "ckpt"))
    proc = subprocess.Popen(cmd, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    _wait_for_epoch(tmp_path / "ckpt" / "seed-0", 2, proc)
    workers = sorted(_children(proc.pid))
    assert len(workers) == 2
    t0 = time.time()
    os.kill(workers[1], signal.SIGKILL)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode != 0
    assert time.time() - t0 < 60
    assert "rank" in out and "exitcode" in out and "-9" in out, out[-2000:]


def test_two_machines_on_one(tmp_path):
    port = free_port()
    common = ["--nnodes", "2", "--nproc-per-node", "1", "--rdzv-backend", "c10d",
              "--rdzv-endpoint", f"127.0.0.1:{port}", "-m", "gnnkit", "train", *GRAPH, "--epochs", "20",
              "--out", str(tmp_path / "run")]
    procs = [subprocess.Popen(_torchrun("--node-rank", str(r), *common), env=_env(), stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True) for r in (0, 1)]
    outs = [p.communicate(timeout=300)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    result = json.loads((tmp_path / "run" / "results.json").read_text())
    assert result["world_size"] == 2
    single = subprocess.run([sys.executable, "-m", "gnnkit", "train", *GRAPH, "--epochs", "20", "--out",
                             str(tmp_path / "single")], env=_env(), capture_output=True, text=True, timeout=300)
    assert single.returncode == 0, single.stderr
    ref = json.loads((tmp_path / "single" / "results.json").read_text())
    assert abs(result["test_mean"] - ref["test_mean"]) <= 0.01


def test_nproc_refusals_are_one_line_and_exit_2(tmp_path):
    """``gnnkit train --nproc 2``: a bad name is refused before any process starts; a refusal inside
    the workers (after loading) ends the launcher with one summary line and the workers' exit status 2."""
    base = [sys.executable, "-m", "gnnkit", "train", *GRAPH, "--epochs", "1", "--nproc", "2"]
    early = subprocess.run([*base, "--model", "nope", "--out", str(tmp_path / "a")], env=_env(),
                           capture_output=True, text=True, timeout=120)
    lines = early.stderr.strip().splitlines()
    assert early.returncode == 2 and len(lines) == 1 and lines[0].startswith("gnnkit: error: unknown model 'nope'"), \
        early.stderr
    late = subprocess.run([*base, "--strategy", "forward", "--escape", "milp", "--out", str(tmp_path / "b")],
                          env=_env(), capture_output=True, text=True, timeout=300)
    lines = late.stderr.strip().splitlines()
    assert late.returncode == 2, late.stderr
    assert "gnnkit: error: the milp escape searches a classifier head" in late.stderr
    assert lines[-1].startswith("gnnkit: error: process ") and "failed first (exit status 2)" in lines[-1]
    assert "Traceback" not in late.stderr
