"""Every node sampler reads node data only through the feature store, and a new sampler plugs in from
one file (examples/random_node_sampler.py) and trains through ``Trainer.fit``.

The samplers get a context whose ``data`` is empty and whose feature store records every ``get`` and
answers with copies: a sampler that indexed a tensor itself would find nothing to index, and each
batch's node data must equal what the recorded reads returned for the batch's own ids.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

from gnnkit.models import build_model
from gnnkit.samplers.cluster import ClusterSampler
from gnnkit.samplers.full import FullBatchSampler
from gnnkit.samplers.mvs import MVSSampler
from gnnkit.samplers.neighbor import NeighborSampler
from gnnkit.stores import FeatureStore, from_data
from gnnkit.trainer import Trainer
from helpers import two_community_graph
from sampler_context import make_ctx

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "random_node_sampler.py"


def example_sampler_class():
    spec = importlib.util.spec_from_file_location("random_node_sampler", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.RandomNodeSampler


class RecordingStore(FeatureStore):
    """A feature store that records ``(name, ids)`` of every read and returns copies."""

    def __init__(self, inner: FeatureStore):
        self.inner, self.reads = inner, []

    def names(self):
        return self.inner.names()

    def shape(self, name):
        return self.inner.shape(name)

    def dtype(self, name):
        return self.inner.dtype(name)

    @property
    def meta(self):
        return self.inner.meta

    def get(self, name, ids=None):
        self.reads.append((name, None if ids is None else ids.clone()))
        return self.inner.get(name, ids).clone()


def samplers(tmp_path):
    return {
        "full": (FullBatchSampler(), "gcn", 0.0),
        "cluster": (ClusterSampler(num_parts=4, clusters_per_batch=2, cache_dir=str(tmp_path)), "gcn", 0.0),
        "cluster-diag": (ClusterSampler(num_parts=4, clusters_per_batch=2, diag_lambda=0.3, cache_dir=str(tmp_path)),
                         "diag", 0.3),
        "neighbor": (NeighborSampler(fanouts=[3, 2], batch_size=8), "gcn", 0.0),
        "mvs": (MVSSampler(batch_size=8, refresh=2), "gcn", 0.0),
        "example": (example_sampler_class()(num_nodes=20), "gcn", 0.0),
    }


def was_read(reads, name, ids) -> bool:
    return any(n == name and (i is None if ids is None else i is not None and torch.equal(i, ids))
               for n, i in reads)


@pytest.mark.parametrize("name", ["full", "cluster", "cluster-diag", "neighbor", "mvs", "example"])
def test_node_data_comes_only_through_the_feature_store(name, tmp_path):
    data = two_community_graph(30)
    sampler, norm, lam = samplers(tmp_path)[name]
    store = RecordingStore(from_data(data)[1])
    ctx = make_ctx(data, adj_norm=norm, diag_lambda=lam, features=store, data_visible=False)
    torch.manual_seed(0)
    model = build_model("gcn", 8, 2, hidden=8, adj_norm=norm, diag_lambda=lam)
    sampler.setup(ctx, model)
    batches = 0
    for epoch in range(2):
        sampler.set_epoch(epoch)
        for batch in sampler:
            batches += 1
            assert was_read(store.reads, "x", batch.n_id)
            want_x = data.x if batch.n_id is None else data.x[batch.n_id]
            assert torch.equal(batch.x, want_x) and batch.x is not data.x
            assert any(n == "y" for n, _ in store.reads)
            out = batch.n_id if batch.n_id is None else batch.n_id[:batch.y.shape[0]]
            assert torch.equal(batch.y, data.y if out is None else data.y[out])
            assert model(batch.x, batch.adj).shape[0] >= batch.loss_index.numel()
    assert batches >= 2 and any(n == "train_mask" for n, _ in store.reads)


def test_example_sampler_trains_through_fit():
    data = two_community_graph(40)
    torch.manual_seed(0)
    model = build_model("gcn", 8, 2, hidden=16)
    sampler = example_sampler_class()(num_nodes=40)
    result = Trainer(sampler=sampler, max_epochs=20, progress=False, device="cpu", seed=0).fit(model, data)
    assert len(sampler) == 2 and result["epochs"] == 20
    assert result["metrics"]["train_accuracy"] > 0.8 and result["test"] > 0.7
    assert len(EXAMPLE.read_text().splitlines()) <= 60
