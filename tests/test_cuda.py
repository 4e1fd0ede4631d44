"""Every plug-in through the Trainer on a CUDA device, against the same run on the CPU.

Each case fits the same seeded model on the same small graph twice, ``device="cpu"`` and
``device="cuda"``; the GPU run must keep its parameters on the GPU, report finite figures and reach a
test accuracy (AP for temporal links) within ``TOL`` of the CPU run's. Random draws on the two devices
differ (samplers draw on the graph's device), so the runs are compared by outcome, not bitwise.
Skipped without a CUDA device; ``benchmarks/gpu_paths.py`` times the same paths at scale.
"""
from __future__ import annotations

import math

import pytest
import torch

from gnnkit.escape.milp import MILPEscape
from gnnkit.models import GCN, GraphSAGE
from gnnkit.samplers.cluster import ClusterSampler
from gnnkit.samplers.mvs import MVSSampler
from gnnkit.samplers.neighbor import NeighborSampler
from gnnkit.samplers.temporal import TemporalSampler
from gnnkit.strategies.forward import ForwardLearning
from gnnkit.tasks.temporal_link import TemporalLinkPrediction
from gnnkit.temporal.model import TGN
from gnnkit.trainer import Trainer

from helpers import two_community_graph
from test_temporal_data import random_stream

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device: GPU paths not exercised")
TOL = 0.12

CASES = {
    "full": lambda tmp: dict(),
    "cluster": lambda tmp: dict(sampler=ClusterSampler(num_parts=6, clusters_per_batch=2, cache_dir=str(tmp))),
    "neighbor": lambda tmp: dict(sampler=NeighborSampler([5, 5], 16)),
    "mvs": lambda tmp: dict(sampler=MVSSampler(batch_size=16)),
    "forward-sf": lambda tmp: dict(strategy=ForwardLearning(variant="sf", layer_epochs=15)),
    "forward-ff-la": lambda tmp: dict(strategy=ForwardLearning(variant="ff-la", layer_epochs=15)),
    "milp": lambda tmp: dict(escape=MILPEscape(time_limit=2.0, patience=3, max_calls=2), lr=1e-30),  # a plateau
}


def _node_run(case, device, tmp_path, model_cls=GCN):
    data = two_community_graph(n_per=60, num_features=8)
    torch.manual_seed(0)
    model = model_cls(8, 16, 2, num_layers=2, dropout=0.0)
    options = {"lr": 0.02, **CASES[case](tmp_path / device)}
    trainer = Trainer(max_epochs=30, seed=0, progress=False, device=device, **options)
    return model, trainer.fit(model, data)


@pytest.mark.parametrize("case", sorted(CASES))
def test_node_paths_on_cuda(case, tmp_path):
    _, cpu = _node_run(case, "cpu", tmp_path)
    model, gpu = _node_run(case, "cuda", tmp_path)
    assert all(p.device.type == "cuda" for p in model.parameters())
    assert math.isfinite(gpu["test"]) and gpu["peak_cuda_mb"] > 0
    assert abs(gpu["test"] - cpu["test"]) <= TOL, (case, cpu["test"], gpu["test"])
    if case == "milp":  # the head's weights went to the solver and back
        assert len(gpu["escape"]) >= 1 and len(gpu["escape"]) == len(cpu["escape"])
        assert abs(gpu["escape"][0]["objective_before"] - cpu["escape"][0]["objective_before"]) < 1e-4


def test_sage_on_cuda(tmp_path):
    _, cpu = _node_run("neighbor", "cpu", tmp_path, GraphSAGE)
    _, gpu = _node_run("neighbor", "cuda", tmp_path, GraphSAGE)
    assert abs(gpu["test"] - cpu["test"]) <= TOL


def _temporal_run(device):
    stream = random_stream(num_nodes=30, num_events=400)
    dims = dict(memory_dim=8, time_dim=6, embedding_dim=8, heads=2)
    torch.manual_seed(0)
    model = TGN(stream.msg_dim, **dims)
    task = TemporalLinkPrediction(num_neighbors=4, eval_batch_size=20, **dims)
    trainer = Trainer(task=task, sampler=TemporalSampler(20), max_epochs=2, lr=1e-3, seed=0,
                      progress=False, device=device)
    return model, trainer.fit(model, stream)


def test_temporal_link_on_cuda():
    _, cpu = _temporal_run("cpu")
    model, gpu = _temporal_run("cuda")
    assert all(p.device.type == "cuda" for p in model.parameters())
    for key in ("test_ap", "test_auc", "test_new_ap"):
        assert 0.0 <= gpu["metrics"][key] <= 1.0, key
    assert abs(gpu["test"] - cpu["test"]) <= TOL
