"""Graph-level datasets through the command line (issue 24): ``gnnkit train`` on MUTAG (a temporary
copy of the shared TU files) with stratified folds under both protocols and on a miniature
ogbg-molhiv with OGB's split; ``gnnkit info`` on TU, ogbg and ogbl datasets; bad fold counts refused."""
from __future__ import annotations

import json

import pytest

from gnnkit.cli import main
from test_graph_ogb import write_mini_ogbg
from test_graph_tu import tu_root  # noqa: F401 - the fixture
from test_link_ogbl import write_mini_collab


def _train(tmp_path, *extra):
    out = tmp_path / "out"
    code = main(["train", *extra, "--epochs", "3", "--out", str(out), "--no-progress", "--device", "cpu"])
    return code, out / "results.json"


@pytest.mark.parametrize("protocol", [None, "gin"])
def test_mutag_cross_validation_through_the_cli(tu_root, tmp_path, protocol, capsys):  # noqa: F811
    extra = ["--cv-protocol", protocol] if protocol else []
    code, path = _train(tmp_path, "--dataset", "MUTAG", "--root", str(tu_root), "--folds", "2", "--hidden", "16",
                        "--layers", "2", *extra)
    assert code == 0
    res = json.loads(path.read_text())
    assert res["task"] == "graph" and res["model"] == "gin" and res["sampler"] == "graph"
    assert res["protocol"] == (protocol or "errica") and res["folds"] == 2 and res["metric"] == "accuracy"
    assert len(res["per_fold"]) == 2 and 0.0 <= res["test_mean"] <= 1.0 and res["test_std"] >= 0.0
    assert sum(r["test_graphs"] for r in res["runs"]) == 188
    if protocol == "gin":
        assert len(set(res["selected_epochs"])) == 1 and all(r["val_graphs"] == r["test_graphs"] for r in res["runs"])
    else:
        assert res["inner_val_fraction"] == 0.1 and all(r["val_graphs"] > 0 for r in res["runs"])
    assert "test" in capsys.readouterr().out


def test_task_graph_flag_and_bad_protocol(tu_root, tmp_path, capsys):  # noqa: F811
    code, _ = _train(tmp_path, "--dataset", "MUTAG", "--root", str(tu_root), "--task", "graph",
                     "--cv-protocol", "loo")
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "--cv-protocol" in err[0]


def test_mini_molhiv_through_the_cli(tmp_path):
    write_mini_ogbg(tmp_path / "data", graphs=80)
    code, path = _train(tmp_path, "--dataset", "ogbg-molhiv", "--root", str(tmp_path / "data"), "--hidden", "16",
                        "--layers", "2")
    assert code == 0
    res = json.loads(path.read_text())
    assert res["model"] == "mol-gin" and res["protocol"] == "ogb" and res["metric"] == "rocauc"
    assert len(res["runs"]) == 1 and res["test_mean"] == res["runs"][0]["test"]


def test_folds_refused_on_ogbg(tmp_path, capsys):
    write_mini_ogbg(tmp_path / "data", graphs=40)
    code, _ = _train(tmp_path, "--dataset", "ogbg-molhiv", "--root", str(tmp_path / "data"), "--folds", "3")
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "official split" in err[0]


def test_one_fold_refused_with_one_line(tmp_path, capsys):
    code, path = _train(tmp_path, "--dataset", "MUTAG", "--task", "graph", "--folds", "1")
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err == ["gnnkit: error: --folds must be at least 2, got 1"] and not path.exists()


def test_info_tu(tu_root, capsys):  # noqa: F811
    assert main(["info", "MUTAG", "--root", str(tu_root)]) == 0
    out = capsys.readouterr().out
    for line in ("graphs: 188", "avg_nodes: 17.93", "avg_edges: 39.59", "classes: 2"):
        assert line in out
    assert main(["info", "MUTAG", "--root", str(tu_root), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["graphs"] == 188 and info["features"] == 7


def test_info_ogbg(tmp_path, capsys):
    write_mini_ogbg(tmp_path, graphs=60)
    assert main(["info", "ogbg-molhiv", "--root", str(tmp_path), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["graphs"] == 60 and info["tasks"] == 1 and info["edge_features"] == 3
    assert info["split"] == {"train": 48, "valid": 6, "test": 6}


def test_info_ogbl(tmp_path, capsys):
    parts = write_mini_collab(tmp_path, n=80)
    assert main(["info", "ogbl-collab", "--root", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "nodes: 80" in out and f"val_pos {len(parts['valid'])}" in out and f"test_neg {len(parts['test'])}" in out
    assert main(["info", "ogbl-collab", "--root", str(tmp_path), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["nodes"] == 80 and info["split"]["train_pos"] == len(parts["train"])


@pytest.mark.parametrize("flag,value", [("--sampler", "neighbor"), ("--strategy", "forward"), ("--escape", "milp"),
                                        ("--checkpoint-dir", "{tmp}/ck"), ("--scan-group", "4")])
def test_graph_run_refuses_node_plugins_instead_of_ignoring_them(tu_root, tmp_path, capsys, flag, value):  # noqa: F811
    code, path = _train(tmp_path, "--dataset", "MUTAG", "--root", str(tu_root), flag, value.format(tmp=tmp_path))
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and flag in err[0] and not path.exists()


def test_graph_run_takes_precision_log_dir_and_metrics(tu_root, tmp_path, monkeypatch):  # noqa: F811
    """Options a graph run accepts are applied, not dropped: half precision, per-seed logs, extra metrics."""
    from gnnkit.trainer import Trainer

    seen, real = [], Trainer._setup

    def setup(self, model, data):
        seen.append(self.precision)
        return real(self, model, data)

    monkeypatch.setattr(Trainer, "_setup", setup)
    code, path = _train(tmp_path, "--dataset", "MUTAG", "--root", str(tu_root), "--folds", "2", "--hidden", "16",
                        "--precision", "bf16-mixed", "--log-dir", str(tmp_path / "logs"), "--metrics", "macro_f1")
    assert code == 0 and path.exists() and seen == ["bf16-mixed", "bf16-mixed"]
    for seed in (0, 1):
        header = (tmp_path / "logs" / f"seed-{seed}" / "metrics.csv").read_text().splitlines()[0]
        assert "val_macro_f1" in header.split(",")


def test_bench_runs_a_tu_dataset_as_the_mean_over_folds(tu_root, tmp_path):  # noqa: F811
    out = tmp_path / "grid"
    code = main(["bench", "--datasets", "MUTAG", "--methods", "full", "--seeds", "1", "--root", str(tu_root),
                 "--out", str(out)])
    assert code == 0
    row = (out / "results.csv").read_text().splitlines()[1].split(",")
    res = json.loads(next((out / "runs").rglob("results.json")).read_text())
    assert row[:4] == ["MUTAG", "full", "0", "ok"] and res["task"] == "graph" and res["folds"] == 10
    assert abs(float(row[5]) - res["test_mean"]) < 1e-9
