"""csbm: determinism, symmetry, and that the statistics follow the options (small graphs)."""
import argparse

import pytest
import torch
from torch_geometric.utils import is_undirected

from gnnkit.data import load
from gnnkit.data.csbm import (add_csbm_arguments, csbm, csbm_arguments, csbm_kwargs_from_args, csbm_options,
                              parse_csbm_spec)
from gnnkit.data.validate import duplicate_mask
from gnnkit.errors import GnnkitError


def homophily(data):
    ei = data.edge_index
    return float((data.y[ei[0]] == data.y[ei[1]]).float().mean())


def test_same_seed_same_graph_other_seed_other_graph():
    a, b = csbm(num_nodes=3000, degree_exponent=2.5, seed=7), csbm(num_nodes=3000, degree_exponent=2.5, seed=7)
    for key in ("x", "y", "edge_index", "train_mask", "val_mask", "test_mask"):
        assert torch.equal(a[key], b[key]), key
    c = csbm(num_nodes=3000, degree_exponent=2.5, seed=8)
    assert not torch.equal(a.edge_index, c.edge_index)


@pytest.mark.parametrize("exponent", [None, 2.5])
def test_symmetric_loop_free_deduplicated_sorted(exponent):
    data = csbm(num_nodes=4000, avg_degree=12, degree_exponent=exponent, seed=1)
    ei = data.edge_index
    assert ei.dtype == torch.long and is_undirected(ei)
    assert not bool((ei[0] == ei[1]).any())
    assert int(duplicate_mask(ei, 4000).sum()) == 0
    key = ei[0] * 4000 + ei[1]
    assert bool((key[1:] > key[:-1]).all())  # strictly sorted by (row, col)


def test_statistics_follow_options():
    data = csbm(num_nodes=20000, num_classes=4, avg_degree=10, num_features=16, homophily=0.3, seed=2)
    assert data.x.shape == (20000, 16) and data.x.dtype == torch.float32
    assert abs(data.edge_index.size(1) / 20000 - 10) < 0.1
    assert abs(homophily(data) - 0.3) < 0.02
    assert torch.bincount(data.y).tolist() == [5000] * 4  # balanced classes
    assert [int(data[k].sum()) for k in ("train_mask", "val_mask", "test_mask")] == [12000, 4000, 4000]


def test_feature_snr_sets_class_mean_distance():
    data = csbm(num_nodes=8000, num_classes=2, num_features=8, feature_snr=3.0, avg_degree=2, seed=3)
    means = torch.stack([data.x[data.y == c].mean(0) for c in range(2)])
    assert abs(float(means.norm(dim=1).mean()) - 3.0) < 0.15
    assert abs(float((means[0] - means[1]).norm()) - 3.0 * 2 ** 0.5) < 0.2
    assert abs(float((data.x - means[data.y]).std()) - 1.0) < 0.05


def test_degree_exponent_gives_heavy_tail():
    plain = csbm(num_nodes=20000, avg_degree=10, seed=4)
    heavy = csbm(num_nodes=20000, avg_degree=10, degree_exponent=2.2, seed=4)
    max_plain = int(torch.bincount(plain.edge_index[1]).max())
    max_heavy = int(torch.bincount(heavy.edge_index[1]).max())
    assert max_heavy > 5 * max_plain
    assert abs(homophily(heavy) - 0.8) < 0.03


def test_label_noise_replaces_labels_after_generation():
    clean = csbm(num_nodes=10000, num_classes=5, label_noise=0.0, seed=5)
    noisy = csbm(num_nodes=10000, num_classes=5, label_noise=0.5, seed=5)
    assert torch.equal(clean.edge_index, noisy.edge_index) and torch.equal(clean.x, noisy.x)
    changed = float((clean.y != noisy.y).float().mean())
    assert abs(changed - 0.5 * 4 / 5) < 0.02  # a replaced label keeps its value with chance 1/C


def test_string_form_and_cli_options():
    data = load("csbm:num_nodes=500,avg_degree=4,num_classes=3,seed=1", num_features=8)
    assert data.num_nodes == 500 and data.num_classes == 3 and data.x.size(1) == 8
    assert torch.equal(data.edge_index, csbm(num_nodes=500, avg_degree=4, num_classes=3, num_features=8,
                                             seed=1).edge_index)
    parser = argparse.ArgumentParser()
    add_csbm_arguments(parser)
    args = parser.parse_args(["--num-nodes", "500", "--degree-exponent", "none", "--graph-seed", "3"])
    assert csbm_kwargs_from_args(args) == {"num_nodes": 500, "seed": 3}
    assert {o.name for o in csbm_options()} >= {"num_nodes", "avg_degree", "homophily", "feature_snr", "label_noise"}
    assert parse_csbm_spec("csbm:degree_exponent=2.5") == {"degree_exponent": 2.5}


@pytest.mark.parametrize("kwargs, message", [
    (dict(homophily=1.5), r"homophily must be in \[0, 1\], got 1.5"),
    (dict(degree_exponent=2.0), r"degree_exponent must be > 2"),
    (dict(num_classes=0), r"num_classes must be in \[1, num_nodes\]"),
    (dict(label_noise=-0.1), r"label_noise must be in \[0, 1\]"),
])
def test_bad_options_rejected(kwargs, message):
    with pytest.raises(GnnkitError, match=message):
        csbm(num_nodes=100, **kwargs)


def test_bad_spec_rejected():
    with pytest.raises(GnnkitError, match=r"bad csbm option 'nodes=5'"):
        load("csbm:nodes=5")


def test_cli_options_are_plain_argparse_and_do_not_shadow_split():
    # issue 19: csbm's --split shadowed the node task's --split random:..., which was then ignored
    flags = [flag for flag, _ in csbm_arguments()]
    assert "--csbm-split" in flags and "--split" not in flags and "--graph-seed" in flags
    parser = argparse.ArgumentParser()
    parser.add_argument("--split")
    add_csbm_arguments(parser)  # no conflict with the task's --split
    args = parser.parse_args(["--split", "random:0.9,0.05", "--csbm-split", "planetoid", "--num-nodes", "2e3"])
    assert args.split == "random:0.9,0.05"
    assert csbm_kwargs_from_args(args) == {"split": "planetoid", "num_nodes": 2000}
    with pytest.raises(SystemExit):
        parser.parse_args(["--num-nodes", "2.5"])


@pytest.mark.parametrize("spec, figure", [("csbm:num_nodes=1e12", "num_nodes=1000000000000"),
                                          ("csbm:num_nodes=1000,num_features=1e9", "num_features=1000000000")])
def test_oversized_request_refused_up_front(spec, figure):
    with pytest.raises(GnnkitError, match=rf"csbm graph \(.*{figure}.* needs [\d.]+ TiB, more than this machine's"):
        load(spec)
