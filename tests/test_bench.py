"""``gnnkit bench``: grid expansion, resume after an interruption, skipped datasets, bad input."""
from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gnnkit import bench
from gnnkit.cli import main
from gnnkit.errors import GnnkitError

# a 200-node, 3-class csbm graph, 2 epochs, a cluster partition that fits it
TINY = "csbm:num_nodes=200,num_features=8,num_classes=3,avg_degree=6"
CONFIG = """
[defaults]
hidden = 8
patience = 5

[datasets.csbm.methods.cluster]
num-parts = 4
clusters-per-batch = 2

[methods.broken]            # fails inside the run (a metric the task does not report): recorded, the grid goes on
metric = "nope"
"""


def _config(tmp_path: Path) -> Path:
    path = tmp_path / "bench.toml"
    path.write_text(CONFIG)
    return path


def _args(out: Path, cfg: Path, datasets: str = TINY, methods: str = "full,cluster,broken", *extra: str) -> list:
    return ["bench", "--datasets", datasets, "--methods", methods, "--seeds", "1", "--epochs", "2",
            "--config", str(cfg), "--out", str(out), "--no-progress", *extra]


def test_split_specs_keeps_csbm_options_together():
    assert bench.split_specs("Cora,csbm:num_nodes=100,avg_degree=5,ogbn-arxiv") == [
        "Cora", "csbm:num_nodes=100,avg_degree=5", "ogbn-arxiv"]
    assert bench.split_specs(" csbm , Cora ,") == ["csbm", "Cora"]


def test_flags_precedence(tmp_path):
    """defaults < method < dataset < dataset.method < spec < --epochs; the root is not hashed."""
    config = bench.load_config(_config(tmp_path))
    grid = bench.build_grid(["csbm:num_nodes=300,seed=4"], ["full", "cluster", "neighbor"], 2, config,
                            tmp_path / "root", tmp_path / "out", epochs=7)
    argv, _ = grid.cells[("csbm:num_nodes=300,seed=4", "cluster")]
    opts = dict(zip(argv[::2], argv[1::2]))
    assert opts["--num-parts"] == "4" and opts["--clusters-per-batch"] == "2"   # dataset.method
    assert opts["--num-nodes"] == "300" and opts["--graph-seed"] == "4"          # spec over [datasets.csbm]
    assert opts["--epochs"] == "7" and opts["--hidden"] == "8" and opts["--sampler"] == "cluster"
    nb = grid.cells[("csbm:num_nodes=300,seed=4", "neighbor")][0]
    assert nb[nb.index("--batch-size") + 1] == "2048" and nb[nb.index("--fanouts") + 1] == "10,10"
    assert [r.key for r in grid.runs][:3] == [f"csbm:num_nodes=300,seed=4/{m}/seed-0"
                                              for m in ("full", "cluster", "neighbor")]
    assert len(grid.runs) == 6 and grid.runs[0].dir.parent.parent.name == "csbm_num_nodes_300_seed_4"
    other = bench.build_grid(["csbm:num_nodes=300,seed=4"], ["full"], 1, config, tmp_path / "elsewhere",
                             tmp_path / "out", epochs=7)
    assert other.cells[("csbm:num_nodes=300,seed=4", "full")][1] == grid.cells[("csbm:num_nodes=300,seed=4", "full")][1]


def _wait_for(pattern: str, folder: Path, proc: subprocess.Popen, timeout: float = 240.0) -> list:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = list(folder.glob(pattern))
        if found:
            return found
        if proc.poll() is not None:
            pytest.fail(f"bench ended (status {proc.returncode}) before {pattern} appeared: "
                        f"{proc.stderr.read().decode(errors='replace')[-2000:]}")
        time.sleep(0.1)
    proc.kill()
    pytest.fail(f"no {pattern} within {timeout} s")


def test_interrupt_then_resume_redoes_only_unfinished(tmp_path, capsys):
    cfg, out = _config(tmp_path), tmp_path / "out"
    # Ctrl-C as a terminal delivers it: SIGINT at its default even when this test runs in a background
    # job (where the shell ignores SIGINT, and Python leaves an ignored SIGINT ignored)
    proc = subprocess.Popen([sys.executable, "-m", "gnnkit", *_args(out, cfg)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    first, = _wait_for("runs/*/*/seed-0/record.json", out, proc)
    proc.send_signal(signal.SIGINT)                     # Ctrl-C while the second run is under way
    assert proc.wait(timeout=120) == 130
    proc.stderr.close()
    records = list(out.glob("runs/*/*/seed-0/record.json"))
    assert records == [first]
    before = (first.read_bytes(), first.stat().st_mtime_ns)
    launched = (out / "launches.log").read_text().splitlines()
    assert len(launched) == 2                          # the second run was started, not finished
    with open(out / "results.csv") as f:               # outputs of the finished part are written
        assert sorted(r["status"] for r in csv.DictReader(f)) == ["ok", "pending", "pending"]

    assert main(_args(out, cfg)) == 1                  # the same command again; one run fails
    assert (first.read_bytes(), first.stat().st_mtime_ns) == before
    relaunched = (out / "launches.log").read_text().splitlines()[2:]
    done = json.loads(before[0])
    assert done["method"] == "full" and len(relaunched) == 2
    assert not any("/full/" in line for line in relaunched)

    with open(out / "results.csv") as f:
        rows = {r["method"]: r for r in csv.DictReader(f)}
    assert sorted(rows) == ["broken", "cluster", "full"]
    for r in (rows["full"], rows["cluster"]):
        assert r["status"] == "ok" and r["epochs"] == "2" and 0 <= float(r["test"]) <= 1
        assert float(r["peak_rss_mb"]) > 50 and float(r["seconds_per_epoch"]) > 0
    assert rows["broken"]["status"] == "failed" and "metric 'nope' has no declared direction" in rows["broken"]["error"]
    summary = (out / "summary.md").read_text()
    table = {ln.split(" | ")[1]: ln for ln in summary.splitlines() if ln.startswith(f"| {TINY} |")}
    assert "1/1" in table["full"] and "1/1" in table["cluster"] and "0/1 (1 failed)" in table["broken"]
    best = max(float(rows[m]["test"]) for m in ("full", "cluster"))   # ties are all bold
    assert all(("**" in table[m]) == (float(rows[m]["test"]) == best) for m in ("full", "cluster"))
    assert "**" not in table["broken"]
    assert "broken/seed-0: `gnnkit: error: metric 'nope' has no declared direction" in summary
    for png in ("val_vs_time.png", "memory.png"):
        data = (out / png).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000
    rec = json.loads(first.read_text())
    assert rec["curve"]["seconds"] and len(rec["curve"]["val"]) == 2   # one evaluation per epoch

    assert main(_args(out, cfg)) == 1                  # all recorded: nothing is launched
    assert len((out / "launches.log").read_text().splitlines()) == 4


def test_absent_ogb_listed_as_skipped_with_its_path(tmp_path, capsys):
    cfg, out, root = _config(tmp_path), tmp_path / "out", tmp_path / "data"
    root.mkdir()
    assert main(_args(out, cfg, "ogbn-arxiv", "full,cluster", "--root", str(root))) == 0
    assert not (out / "launches.log").exists()
    summary = (out / "summary.md").read_text()
    assert "Skipped datasets" in summary and f"ogbn-arxiv: absent: expected {root / 'ogbn_arxiv'}" in summary
    with open(out / "results.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["status"] for r in rows] == ["skipped", "skipped"] and str(root / "ogbn_arxiv") in rows[0]["error"]
    assert "skipping ogbn-arxiv" in capsys.readouterr().err
    # the same folder with other settings is refused, not mixed
    changed = _args(out, cfg, "ogbn-arxiv", "full,cluster", "--root", str(root))
    changed[changed.index("--epochs") + 1] = "3"
    assert main(changed) == 2
    assert "another configuration" in capsys.readouterr().err


@pytest.mark.parametrize("datasets, methods, message", [
    ("nope", "full", "unknown dataset 'nope'"),
    (TINY, "full,sgd", "unknown method 'sgd'"),
    ("csbm:num_nodez=5", "full", "bad csbm option"),
])
def test_bad_names_exit_2_with_one_line(tmp_path, capsys, datasets, methods, message):
    assert main(_args(tmp_path / "out", _config(tmp_path), datasets, methods)) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("gnnkit: error:") and message in err
    assert not (tmp_path / "out").exists()


def test_bad_config_flag_is_named(tmp_path):
    cfg = tmp_path / "bad.toml"
    cfg.write_text('[methods.full]\nsampler = "full"\nnot-a-flag = 3\n')
    with pytest.raises(GnnkitError, match="config for csbm/full: unrecognized arguments: --not-a-flag"):
        bench.build_grid(["csbm"], ["full"], 1, bench.load_config(cfg), tmp_path, tmp_path / "out")
    cfg.write_text('[methods.full]\nsampler = "fulll"\n')
    with pytest.raises(GnnkitError, match="unknown sampler 'fulll'"):
        bench.build_grid(["csbm"], ["full"], 1, bench.load_config(cfg), tmp_path, tmp_path / "out")
    cfg.write_text('[methods.full]\nseeds = 3\n')
    with pytest.raises(GnnkitError, match="--seeds is set by gnnkit bench"):
        bench.build_grid(["csbm"], ["full"], 1, bench.load_config(cfg), tmp_path, tmp_path / "out")


LINK_CONFIG = """
[defaults]
hidden = 8

[datasets.csbm.methods.link-cluster]
num-parts = 4
clusters-per-batch = 2
"""


def test_link_rows_name_their_metric_without_matplotlib(tmp_path):
    """Link methods next to a node method; the whole bench (children included) cannot import matplotlib."""
    blocker = tmp_path / "blocker" / "matplotlib"
    blocker.mkdir(parents=True)
    (blocker / "__init__.py").write_text("raise ImportError('matplotlib blocked by the test')\n")
    cfg, out = tmp_path / "bench.toml", tmp_path / "out"
    cfg.write_text(LINK_CONFIG)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(blocker.parent), os.environ.get("PYTHONPATH", "")])}
    methods = "full,link-full,link-neighbor,link-cluster"
    proc = subprocess.run([sys.executable, "-m", "gnnkit", *_args(out, cfg, TINY, methods)], env=env,
                          capture_output=True, timeout=600)
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")[-2000:]
    with open(out / "results.csv") as f:
        rows = {r["method"]: r for r in csv.DictReader(f)}
    assert rows["full"]["metric"] == "accuracy"
    assert rows["link-full"]["metric"] == rows["link-neighbor"]["metric"] == rows["link-cluster"]["metric"] == "auc"
    record = json.loads((out / "runs" / "csbm_num_nodes_200_num_features_8_num_classes_3_avg_degree_6" / "link-full"
                         / "seed-0" / "record.json").read_text())
    assert 0 <= record["figures"]["test_ap"] <= 1 and record["figures"]["test_auc"] == pytest.approx(record["test"])
    summary = (out / "summary.md").read_text()
    table = {ln.split(" | ")[1]: ln.split(" | ") for ln in summary.splitlines() if ln.startswith(f"| {TINY} |")}
    assert table["full"][2] == "accuracy" and table["link-full"][2] == "auc" and table["link-full"][5].startswith("ap ")
    assert "**" in " ".join(table["full"])  # the best of its own metric, not compared with AUC
    assert bench.report.NO_PLOTS in summary and not list(out.glob("*.png"))
