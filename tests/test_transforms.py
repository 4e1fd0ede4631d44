"""Transforms (issue 25): ``gnnkit.data.load(..., transform=...)`` and ``gnnkit train --transform``."""
import json

import pytest
import torch
import torch_geometric.transforms as T
from torch_geometric.data import Data

from gnnkit.cli import main
from gnnkit.data import load
from gnnkit.errors import GnnkitError

SMALL = "csbm:num_nodes=300,num_classes=3,num_features=8,avg_degree=4"
TRAIN = ["train", "--dataset", "csbm", "--num-nodes", "300", "--num-classes", "3", "--num-features", "8",
         "--avg-degree", "4", "--epochs", "3", "--no-progress", "--threads", "1"]


def test_normalize_features_equals_pyg_and_rows_sum_to_one():
    raw = load(SMALL)
    got = load(SMALL, transform="NormalizeFeatures")
    want = T.NormalizeFeatures()(raw.clone()).x
    assert torch.equal(got.x, want)
    assert not torch.equal(got.x, raw.x)
    sums = got.x.sum(1)
    assert torch.allclose(sums[sums > 0], torch.ones(int((sums > 0).sum())), atol=1e-5)
    assert torch.equal(got.edge_index, raw.edge_index) and torch.equal(got.y, raw.y)


def test_names_apply_in_order_and_any_case():
    raw = load(SMALL)
    both = load(SMALL, transform="toundirected, AddSelfLoops")
    assert both.num_edges == T.ToUndirected()(raw.clone()).num_edges + raw.num_nodes
    assert (both.edge_index[0] == both.edge_index[1]).sum() == raw.num_nodes


def test_pyg_transform_objects_and_user_callables():
    raw = load(SMALL)
    seen = []

    def double(data):
        seen.append(data.num_nodes)
        data.x = data.x * 2
        return data

    got = load(SMALL, transform=T.Compose([T.NormalizeFeatures(), double]))
    assert seen == [raw.num_nodes]
    assert torch.allclose(got.x, 2 * T.NormalizeFeatures()(raw.clone()).x)
    with pytest.raises(GnnkitError, match="returned NoneType, not a torch_geometric Data"):
        load(SMALL, transform=lambda d: None)
    with pytest.raises(GnnkitError, match="transform must be a name"):
        load(SMALL, transform=3)


def test_remove_isolated_nodes_keeps_node_rows_consistent():
    n = 6
    ei = torch.tensor([[0, 1, 1, 2, 4, 5], [1, 0, 2, 1, 5, 4]])  # node 3 touches no edge
    data = Data(x=torch.arange(n * 2, dtype=torch.float).view(n, 2), y=torch.tensor([0, 1, 0, 1, 0, 1]),
                edge_index=ei, train_mask=torch.tensor([1, 1, 0, 1, 0, 0], dtype=torch.bool),
                val_mask=torch.tensor([0, 0, 1, 0, 0, 0], dtype=torch.bool),
                test_mask=torch.tensor([0, 0, 0, 0, 1, 1], dtype=torch.bool))
    out = load(data, transform="RemoveIsolatedNodes")
    keep = torch.tensor([0, 1, 2, 4, 5])
    assert out.num_nodes == 5 and torch.equal(out.x, data.x[keep]) and torch.equal(out.y, data.y[keep])
    assert torch.equal(out.train_mask, data.train_mask[keep]) and int(out.edge_index.max()) == 4
    assert data.num_nodes == n and data.edge_index.max() == 5  # the user's Data is left as it was


def test_unknown_name_is_one_line_listing_the_known(capsys):
    with pytest.raises(GnnkitError, match="unknown transform 'Normalise'; known: AddSelfLoops, NormalizeFeatures, "
                                          "RemoveIsolatedNodes, ToUndirected"):
        load(SMALL, transform="Normalise")
    assert main(["train", "--transform", "NormalizeFeatures,Nope", "--out", "unused"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["gnnkit: error: unknown transform 'Nope'; known: AddSelfLoops, NormalizeFeatures, "
                   "RemoveIsolatedNodes, ToUndirected"]


def test_cli_records_the_transform_and_it_is_part_of_the_run(tmp_path, capsys):
    out = tmp_path / "run"
    assert main([*TRAIN, "--transform", "normalizefeatures", "--out", str(out)]) == 0
    head = capsys.readouterr().out.splitlines()[0]
    assert "transform NormalizeFeatures" in head
    res = json.loads((out / "results.json").read_text())
    assert res["settings"]["transform"] == "NormalizeFeatures"
    assert res["run"]["settings"]["transform"] == "NormalizeFeatures"
    plain = tmp_path / "plain"
    assert main([*TRAIN, "--out", str(plain)]) == 0
    other = json.loads((plain / "results.json").read_text())
    assert other["fingerprint"] != res["fingerprint"]  # the transformed graph is another graph
    # resuming the transformed run without the transform is another run: refused by name
    assert main([*TRAIN, "--out", str(out), "--seeds", "2", "--resume"]) == 2
    assert "transform NormalizeFeatures vs None" in capsys.readouterr().err


def test_transform_refused_where_it_cannot_apply(tmp_path, capsys):
    events = tmp_path / "ev.txt"
    events.write_text("".join(f"{i % 5} {(i + 1) % 5} {i}\n" for i in range(50)))
    assert main(["train", "--task", "temporal-link", "--dataset", str(events), "--transform", "ToUndirected",
                 "--out", str(tmp_path / "o")]) == 2
    assert "--transform applies to graphs" in capsys.readouterr().err
