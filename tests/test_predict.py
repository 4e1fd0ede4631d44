"""``gnnkit train`` keeps the selected model; ``gnnkit predict``, ``evaluate`` and ``export`` use it."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

from gnnkit.cli import main
from gnnkit.commands.predict import logits_for
from gnnkit.data import load
from gnnkit.model_export import csr_inputs
from gnnkit.model_file import _checksum, load_model
from gnnkit.stores import from_data

GRAPH = ["--dataset", "csbm", "--num-nodes", "400", "--num-features", "16", "--num-classes", "4"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One seed (seed 1, a random split drawn per seed) of gnnkit train on a small csbm graph."""
    out = str(tmp_path_factory.mktemp("run"))
    rc = main(["train", *GRAPH, "--model", "sage", "--epochs", "15", "--seed-start", "1", "--split", "random:0.5,0.25",
               "--out", out, "--no-progress"])
    assert rc == 0
    with open(os.path.join(out, "results.json")) as f:
        return out, json.load(f)


def _graph(**options):
    return load("csbm", **{"num_nodes": 400, "num_features": 16, "num_classes": 4, **options})


def test_train_saves_the_selected_model(trained):
    out, results = trained
    model, record = load_model(os.path.join(out, "model-seed1.pt"))
    assert record["training"]["seed"] == 1 and record["training"]["split"] == "random:0.5,0.25"
    assert record["training"]["figures"]["val"] == results["runs"][0]["val"]
    assert record["dataset"]["fingerprint"] == results["fingerprint"]
    assert record["model"]["family"] == "sage" and record["model"]["in_dim"] == 16


def test_evaluate_gives_the_figures_train_reported(trained, tmp_path, capsys):
    out, results = trained
    figures = str(tmp_path / "figures.json")
    assert main(["evaluate", os.path.join(out, "model-seed1.pt"), "--out", figures]) == 0  # dataset from the file
    with open(figures) as f:
        got = json.load(f)["figures"]
    run = results["runs"][0]
    assert (got["val_accuracy"], got["test_accuracy"]) == (run["val"], run["test"])
    assert "val: accuracy" in capsys.readouterr().out


def test_predict_writes_every_node(trained, tmp_path):
    out, _ = trained
    path, csv = str(tmp_path / "p.pt"), str(tmp_path / "p.csv")
    model_file = os.path.join(out, "model-seed1.pt")
    assert main(["predict", model_file, *GRAPH, "--out", path]) == 0
    assert main(["predict", model_file, *GRAPH, "--out", csv]) == 0
    model, _ = load_model(model_file)
    expected = logits_for(model, _graph())
    got = torch.load(path, weights_only=True)
    assert torch.equal(got["nodes"], torch.arange(400)) and torch.equal(got["logits"], expected)
    assert torch.equal(got["class"], expected.argmax(1)) and torch.allclose(got["probs"].sum(1), torch.ones(400))
    lines = open(csv).read().splitlines()
    assert lines[0].startswith("node,class,prob_0") and len(lines) == 401
    assert [int(line.split(",")[1]) for line in lines[1:]] == expected.argmax(1).tolist()


def test_predict_in_a_new_process_gives_this_process_logits(trained, tmp_path):
    out, _ = trained
    path = str(tmp_path / "p.pt")
    model_file = os.path.join(out, "model-seed1.pt")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run([sys.executable, "-m", "gnnkit", "predict", model_file, "--out", path], check=True, env=env,
                   timeout=120, capture_output=True)  # dataset and its csbm options from the model file
    model, _ = load_model(model_file)
    assert torch.equal(torch.load(path, weights_only=True)["logits"], logits_for(model, _graph()))


def test_predict_chosen_nodes_of_a_new_graph_of_the_same_schema(trained, tmp_path, capsys):
    out, _ = trained
    ids = tmp_path / "ids.txt"
    ids.write_text("3\n10 # a comment\n250-252\n")
    path = str(tmp_path / "p.pt")
    new = ["--dataset", "csbm", "--num-nodes", "300", "--num-features", "16", "--num-classes", "4", "--graph-seed", "7"]
    assert main(["predict", os.path.join(out, "model-seed1.pt"), *new, "--nodes", str(ids), "--out", path]) == 0
    got = torch.load(path, weights_only=True)
    model, _ = load_model(os.path.join(out, "model-seed1.pt"))
    expected = logits_for(model, _graph(num_nodes=300, seed=7))
    assert got["nodes"].tolist() == [3, 10, 250, 251, 252]
    assert torch.equal(got["logits"], expected[got["nodes"]])
    assert "differs from the one the model was trained on" in capsys.readouterr().err


@pytest.mark.parametrize("argv,message", [
    (["--dataset", "csbm", "--num-nodes", "300", "--num-features", "12"], "features 12 (the model was trained on 16)"),
    ([*GRAPH, "--nodes", "5,400"], "node 400 is not in the graph"),
    ([*GRAPH, "--nodes", "5,x"], "'x' is not a node id"),
    ([*GRAPH, "--out", "p.txt"], "write a .csv or a .pt file"),
])
def test_predict_refuses_with_one_line(trained, tmp_path, capsys, argv, message):
    out, _ = trained
    argv = [a if a != "p.txt" else str(tmp_path / "p.txt") for a in argv]
    if "--out" not in argv:
        argv += ["--out", str(tmp_path / "p.csv")]
    assert main(["predict", os.path.join(out, "model-seed1.pt"), *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not os.path.exists(tmp_path / "p.csv") and not os.path.exists(tmp_path / "p.txt")


def test_evaluate_refuses_other_classes(trained, capsys):
    out, _ = trained
    argv = ["evaluate", os.path.join(out, "model-seed1.pt"), *GRAPH[:-1], "5"]
    assert main(argv) == 2
    assert "classes 5 (the model was trained on 4)" in capsys.readouterr().err


@pytest.mark.parametrize("kind", ["export", "torchscript"])
def test_exported_program_gives_the_same_logits(trained, tmp_path, kind):
    out, _ = trained
    program_path = str(tmp_path / "model.prog")
    assert main(["export", os.path.join(out, "model-seed1.pt"), "--format", kind, "--out", program_path]) == 0
    model, _ = load_model(os.path.join(out, "model-seed1.pt"))
    program = torch.jit.load(program_path) if kind == "torchscript" else torch.export.load(program_path).module()
    for data in (_graph(), _graph(num_nodes=250, seed=9)):  # the training graph and a new one
        graph, _ = from_data(data)
        logits = program(data.x, *csr_inputs(graph, model.adj_norm, model.diag_lambda))
        assert torch.equal(logits, logits_for(model, data))


def test_tampered_model_file_is_refused(trained, tmp_path, capsys):
    out, _ = trained
    obj = torch.load(os.path.join(out, "model-seed1.pt"), weights_only=True)
    obj["weights"]["head.bias"][0] += 1.0
    path = str(tmp_path / "tampered.pt")
    torch.save(obj, path)
    assert main(["predict", path, *GRAPH, "--out", str(tmp_path / "p.csv")]) == 2
    assert "checksum mismatch" in capsys.readouterr().err
    obj["checksum"] = _checksum(obj)  # a consistent file of other weights loads
    torch.save(obj, path)
    assert main(["export", path, "--format", "torchscript", "--out", str(tmp_path / "m.ts")]) == 0


def test_cluster_gcn_model_keeps_its_operator(tmp_path, capsys):
    """A Cluster-GCN run (diagonal enhancement) saves adj_norm diag and λ; evaluate gives its figures."""
    out = str(tmp_path / "run")
    assert main(["train", *GRAPH, "--sampler", "cluster", "--num-parts", "4", "--clusters-per-batch", "2",
                 "--diag-lambda", "0.5", "--epochs", "5", "--out", out, "--no-progress"]) == 0
    with open(os.path.join(out, "results.json")) as f:
        run = json.load(f)["runs"][0]
    model, record = load_model(os.path.join(out, "model-seed0.pt"))
    assert (model.adj_norm, model.diag_lambda) == ("diag", 0.5) == (record["normalization"]["adj_norm"],
                                                                   record["normalization"]["diag_lambda"])
    figures = str(tmp_path / "figures.json")
    assert main(["evaluate", os.path.join(out, "model-seed0.pt"), *GRAPH, "--out", figures]) == 0
    with open(figures) as f:
        got = json.load(f)["figures"]
    assert (got["val_accuracy"], got["test_accuracy"]) == (run["val"], run["test"])


def test_a_run_whose_output_is_not_class_logits_writes_no_model_file(tmp_path):
    out = str(tmp_path / "run")
    assert main(["train", *GRAPH, "--strategy", "forward", "--epochs", "2", "--out", out, "--no-progress"]) == 0
    assert os.path.isfile(os.path.join(out, "results.json"))
    assert not os.path.exists(os.path.join(out, "model-seed0.pt"))
