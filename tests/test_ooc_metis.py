"""Cluster-GCN on a graph METIS would not fit in memory with: a clear error naming the memory."""
import pytest
import torch

from gnnkit.data.csbm import csbm
from gnnkit.errors import GnnkitError
from gnnkit.partition import check_metis_memory, metis_memory, partition_graph

SMALL = dict(num_nodes=300, num_classes=3, avg_degree=6, num_features=8, seed=0)


def test_metis_memory_grows_with_nodes_and_entries():
    base = metis_memory(1000, 10_000)
    assert metis_memory(2000, 10_000) > base and metis_memory(1000, 20_000) > base > 0
    # papers100M's shape: far beyond this machine, the figure is named in GiB
    with pytest.raises(GnnkitError, match=r"METIS would need about \d+\.\d GiB .* 111059956 nodes"):
        check_metis_memory(111_059_956, 1_615_685_872)


def test_partition_refused_before_metis_when_memory_is_short(tmp_path, monkeypatch):
    data = csbm(**SMALL)
    e = data.edge_index.shape[1]
    called = []
    with monkeypatch.context() as m:
        m.setenv("GNNKIT_MEMORY_LIMIT", str(metis_memory(data.num_nodes, e) - 1))
        m.setattr("gnnkit.partition.run_metis", lambda *a, **k: called.append(1))
        with pytest.raises(GnnkitError, match="METIS would need about .* is available: Cluster-GCN cannot"):
            partition_graph(data.edge_index, data.num_nodes, 4, cache_dir=str(tmp_path))
    assert called == []
    monkeypatch.setenv("GNNKIT_MEMORY_LIMIT", str(metis_memory(data.num_nodes, e)))  # just enough
    p = partition_graph(data.edge_index, data.num_nodes, 4, cache_dir=str(tmp_path))
    assert p.parts.shape == (data.num_nodes,) and int(p.parts.max()) == 3


def test_cluster_sampler_on_a_store_names_metis_memory(tmp_path, monkeypatch):
    """From an on-disk store whose edges fit but whose METIS run does not, the Trainer stops with
    METIS's figure (and nothing is written to the partition cache)."""
    from gnnkit import Trainer
    from gnnkit.samplers.cluster import ClusterSampler
    from gnnkit.stores.ondisk import open_store, write_data
    from models import build_model

    data = csbm(**SMALL)
    write_data(data, tmp_path / "s")
    need = metis_memory(data.num_nodes, data.edge_index.shape[1])
    monkeypatch.setenv("GNNKIT_MEMORY_LIMIT", str(need - 1))
    torch.manual_seed(0)
    model = build_model("gcn", 8, 3, hidden=8, num_layers=2)
    sampler = ClusterSampler(num_parts=4, clusters_per_batch=2, cache_dir=str(tmp_path / "cache"))
    with pytest.raises(GnnkitError, match="METIS would need about"):
        Trainer(sampler=sampler, max_epochs=1, progress=False, device="cpu").fit(model, open_store(tmp_path / "s"))
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").iterdir())
