"""`gnnkit datasets` and `gnnkit info` through gnnkit.cli.main (their bad inputs: tests/test_hostile.py)."""
import json

from gnnkit.cli import main


def test_info_cora(cora_root, capsys):
    assert main(["info", "Cora", "--root", str(cora_root)]) == 0
    out = capsys.readouterr().out
    for line in ("nodes:                  2708", "edges:                  10556 (directed)",
                 "features:               1433", "classes:                7", "split (train/val/test): 140/500/1000"):
        assert line in out


def test_info_npz_json(shared_data, capsys):
    assert main(["info", str(shared_data / "npz" / "cora.npz"), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["nodes"] == 2708 and info["classes"] == 7 and info["self_loops"] == 0
    assert 0.75 < info["edge_homophily"] < 0.85 and info["degree"]["min"] >= 1


def test_info_csbm_options(capsys):
    assert main(["info", "csbm", "--num-nodes", "2000", "--avg-degree", "6", "--homophily", "0.5",
                 "--num-features", "8", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["nodes"] == 2000 and info["features"] == 8 and 5.8 < info["degree"]["mean"] <= 6
    assert abs(info["edge_homophily"] - 0.5) < 0.05 and info["duplicate_edges"] == 0


def test_datasets_lists_presence(cora_root, capsys):
    assert main(["datasets", "--root", str(cora_root)]) == 0
    out = capsys.readouterr().out
    assert "Cora             present" in out and "ogbn-arxiv       absent" in out and "csbm" in out


def test_train_on_an_ogbl_dataset_picks_the_link_task(tmp_path, capsys):
    """``gnnkit train --dataset ogbl-*`` without ``--task``: the link task, scored by the dataset's metric."""
    from test_link_ogbl import write_mini_collab

    write_mini_collab(tmp_path / "root")
    out = tmp_path / "out"
    assert main(["train", "--dataset", "ogbl-collab", "--root", str(tmp_path / "root"), "--epochs", "3",
                 "--no-progress", "--out", str(out)]) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["task"] == "link" and results["metric"] == "hits@50" and results["settings"]["task"] == "link"
    assert 0 <= results["test_mean"] <= 1


def test_train_link_task_with_an_mlp_decoder(tmp_path):
    out = tmp_path / "out"
    assert main(["train", "--task", "link", "--decoder", "mlp", "--num-nodes", "300", "--num-features", "8",
                 "--epochs", "2", "--no-progress", "--out", str(out)]) == 0
    assert json.loads((out / "results.json").read_text())["metric"] == "auc"


def test_train_from_a_store_matches_the_graph_in_memory(tmp_path):
    """``--dataset STORE_DIR`` trains from the memory-mapped store (not loaded whole): same figures and
    fingerprint as the same graph in memory."""
    opts = ["--num-nodes", "300", "--num-features", "8", "--avg-degree", "4"]
    assert main(["convert", "csbm", str(tmp_path / "store"), *opts, "--no-progress"]) == 0
    run = ["train", "--epochs", "3", "--no-progress"]
    assert main([*run, "--dataset", str(tmp_path / "store"), "--out", str(tmp_path / "a")]) == 0
    assert main([*run, "--dataset", "csbm", *opts, "--out", str(tmp_path / "b")]) == 0
    a, b = (json.loads((tmp_path / d / "results.json").read_text()) for d in "ab")
    assert a["fingerprint"] == b["fingerprint"] and a["runs"][0]["test"] == b["runs"][0]["test"]
