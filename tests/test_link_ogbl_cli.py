"""A graph in ogbl-collab's on-disk layout (a temporary folder, apart from the project) through the
command line: ``gnnkit info`` reads it, ``gnnkit train --dataset ogbl-collab --root R`` picks the link
task and scores it with OGB's Evaluator (Hits@50), well above a random scorer; every sampler."""
from __future__ import annotations

import json

import pytest
import torch

pytest.importorskip("ogb")

from test_link_ogbl import write_mini_collab  # noqa: E402

from gnnkit.cli import main  # noqa: E402
from gnnkit.link import ogbl_score  # noqa: E402


def _random_hits(parts) -> float:
    gen = torch.Generator().manual_seed(0)
    pos, neg = torch.rand(len(parts["test"]), generator=gen), torch.rand(len(parts["test"]), generator=gen)
    return ogbl_score("ogbl-collab", pos, neg)["hits@50"]


def test_collab_layout_through_info_and_train(tmp_path, capsys):
    root = tmp_path / "R"
    parts = write_mini_collab(root, n=120)
    assert main(["info", "ogbl-collab", "--root", str(root), "--json"]) == 0
    text = capsys.readouterr().out
    info = json.loads(text[text.index("{"):])
    assert info["nodes"] == 120 and info["undirected_edges"] == len(parts["train"])
    assert info["metric"] == "hits@50"  # OGB's evaluator's metric for collab
    for sampler in (["full"], ["cluster", "--num-parts", "4", "--clusters-per-batch", "2"]):
        out = tmp_path / sampler[0]
        assert main(["train", "--dataset", "ogbl-collab", "--root", str(root), "--epochs", "20", "--hidden", "16",
                     "--seeds", "1", "--no-progress", "--threads", "1", "--out", str(out), "--sampler", *sampler]) == 0
        result = json.loads((out / "results.json").read_text())
        assert result["task"] == "link" and result["metric"] == "hits@50"
        assert result["test_mean"] > 0.9 > 0.5 > _random_hits(parts)
