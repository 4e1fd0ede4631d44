"""Mini-batch link training: edge batches shuffled per epoch and sharded (samplers/edges.py), their
negatives, the neighbor sampler expanding from both endpoints and the negatives, Cluster-GCN edge
batches, training through the Trainer well above a random scorer."""
from __future__ import annotations

import pytest
import torch

from gnnkit import Trainer
from gnnkit.data.csbm import csbm
from gnnkit.link import EdgeSet
from gnnkit.models import GCN
from gnnkit.samplers.cluster import ClusterSampler
from gnnkit.samplers.edges import EdgeLoader, link_edges_of
from gnnkit.samplers.neighbor import NeighborSampler
from gnnkit.tasks.link import LinkPrediction
from sampler_context import make_ctx


def _data(n=300, seed=0):
    return csbm(num_nodes=n, num_classes=4, avg_degree=6, num_features=8, homophily=0.9, feature_snr=3.0, seed=seed)


def _prepared(k=2, negatives="uniform", n=300):
    task = LinkPrediction(negatives=negatives, num_negatives=k)
    return task, task.prepare_data(_data(n), seed=0)


def _keys(edges: torch.Tensor, n: int) -> torch.Tensor:
    return edges[0] * n + edges[1]


def test_edge_epochs_shuffled_seeded_and_sharded():
    task, data = _prepared(k=2)
    edges = link_edges_of(make_ctx(data))
    pos, n = edges.positives, data.num_nodes
    assert torch.equal(pos, task.split.message_edges("train"))  # both directions of every training edge
    loader = EdgeLoader(edges, batch_size=64)

    def epoch(ctx, e):
        return [(eli.clone(), lab.clone()) for eli, lab in loader.batches(ctx, e)]

    ctx = make_ctx(data, seed=3)
    first = epoch(ctx, 0)
    assert len(first) == loader.steps(1) and all(lab.numel() == 3 * (lab == 1).sum() for _, lab in first)
    seen = torch.cat([eli[:, lab == 1] for eli, lab in first], 1)
    assert torch.equal(torch.sort(_keys(seen, n)).values, torch.sort(_keys(pos, n)).values)  # each once
    again = epoch(make_ctx(data, seed=3), 0)
    assert all(torch.equal(a[0], b[0]) for a, b in zip(first, again))  # same seed and epoch: same batches
    assert not torch.equal(epoch(ctx, 1)[0][0], first[0][0])  # another epoch: another order
    shards = [torch.cat([eli[:, lab == 1] for eli, lab in epoch(make_ctx(data, seed=3, rank=r, world_size=2), 0)], 1)
              for r in range(2)]
    assert shards[0].shape == shards[1].shape and shards[0].shape[1] == pos.shape[1] // 2
    both = torch.cat([_keys(s, n) for s in shards])
    assert torch.unique(both).numel() == both.numel()  # the ranks' shares are disjoint


@pytest.mark.parametrize("method", ["uniform", "degree"])
def test_training_negatives_never_hit_a_training_positive(method):
    task, data = _prepared(k=3, negatives=method)
    loader = EdgeLoader(link_edges_of(make_ctx(data)), batch_size=100)
    train = EdgeSet(task.split.train_pos, data.num_nodes, undirected=True)
    for eli, lab in loader.batches(make_ctx(data), 0):
        pos, neg = eli[:, lab == 1], eli[:, lab == 0]
        assert neg.shape[1] == 3 * pos.shape[1] and torch.equal(neg[0], pos[0].repeat(3))  # sources kept
        assert not train.contains(neg[0], neg[1]).any() and not (neg[0] == neg[1]).any()


def _in_neighbors(data, node: int) -> set:
    ei = data.edge_index
    return set(ei[0, ei[1] == node].tolist())


@pytest.mark.parametrize("fanouts", [(-1, -1), (3, 2)])
def test_neighbor_edge_batch_holds_both_endpoints_neighborhoods_and_negatives(fanouts):
    task, data = _prepared(k=1)
    ctx = make_ctx(data)
    model = GCN(8, 16, 16, num_layers=2)
    sampler = NeighborSampler(fanouts=fanouts, batch_size=32)
    sampler.setup(ctx, model)
    eli, lab = next(iter(EdgeLoader(link_edges_of(ctx), batch_size=32).batches(ctx, 0)))
    batch = sampler.sample_from_edges(eli, lab, torch.Generator().manual_seed(0))
    n_id = batch.n_id
    assert torch.equal(n_id[batch.edge_label_index], eli) and torch.equal(batch.edge_label, lab)
    seeds = set(n_id[:batch.batch_size].tolist())
    assert seeds == set(eli.reshape(-1).tolist())  # both endpoints of positives and negatives are seeds
    present = set(n_id.tolist())
    last = batch.adj[-1]  # the seeds' block: [batch_size, n_1]
    assert last.num_rows == batch.batch_size
    dense = last.to_dense() != 0  # [batch_size, n_1], a few dozen rows
    for row, node in enumerate(n_id[:batch.batch_size].tolist()):
        cols = set(n_id[dense[row].nonzero().view(-1)].tolist()) - {node}
        nbrs = _in_neighbors(data, node)
        assert cols <= nbrs and len(cols) == (len(nbrs) if fanouts[0] == -1 else min(len(nbrs), fanouts[0]))
        if fanouts[0] == -1:
            assert nbrs <= present
    z = model(batch.x, batch.adj)
    assert z.shape[0] == batch.batch_size
    task.setup(ctx, model)
    loss, _ = task.training_step(model, batch)
    assert torch.isfinite(loss) and loss.requires_grad


def test_cluster_edge_batches_hold_the_edges_inside_their_clusters(tmp_path):
    task, data = _prepared(k=2)
    ctx = make_ctx(data)
    sampler = ClusterSampler(num_parts=8, clusters_per_batch=2, cache_dir=str(tmp_path))
    sampler.setup(ctx, GCN(8, 16, 16, num_layers=2))
    n = data.num_nodes
    train = EdgeSet(task.split.train_pos, n, undirected=True)
    pos_all = task.split.message_edges("train")
    seen = []
    for batch in sampler:
        eli = batch.n_id[batch.edge_label_index]
        pos, neg = eli[:, batch.edge_label == 1], eli[:, batch.edge_label == 0]
        inside = torch.isin(pos_all, batch.n_id).all(0)  # every training edge with both ends in the batch
        assert torch.equal(torch.sort(_keys(pos, n)).values, torch.sort(_keys(pos_all[:, inside], n)).values)
        assert neg.shape[1] == 2 * pos.shape[1] and not train.contains(neg[0], neg[1]).any()
        seen.append(pos)
    seen = _keys(torch.cat(seen, 1), n)
    assert torch.unique(seen).numel() == seen.numel()  # each training edge at most once per epoch
    given = torch.tensor([[0, 5, 17], [3, 250, 18]])
    batch = sampler.sample_from_edges(given, torch.tensor([1.0, 0.0, 1.0]))  # the clusters of every endpoint
    assert torch.equal(batch.n_id[batch.edge_label_index], given) and batch.edge_label.tolist() == [1.0, 0.0, 1.0]
    assert batch.adj.num_rows == batch.n_id.numel()


def _fit(sampler, epochs, seed=0):
    torch.manual_seed(seed)
    trainer = Trainer(task="link", sampler=sampler, max_epochs=epochs, lr=0.01, seed=seed, progress=False)
    data = csbm(num_nodes=600, num_classes=8, avg_degree=8, num_features=16, homophily=0.95, feature_snr=3.0, seed=1)
    return trainer, trainer.fit(GCN(16, 32, 16, num_layers=2, dropout=0.0), data)


def test_cluster_link_training_beats_a_random_scorer(tmp_path):
    trainer, result = _fit(ClusterSampler(num_parts=12, clusters_per_batch=3, cache_dir=str(tmp_path)), 20)
    assert len(trainer.sampler) == 4
    assert result["test"] > 0.85 and result["metrics"]["test_ap"] > 0.8  # random scorer: 0.5


def test_train_command_link_neighbor_beats_a_random_scorer(tmp_path):
    import json

    from gnnkit.cli import main

    spec = "csbm:num_nodes=600,num_classes=8,avg_degree=8,num_features=16,homophily=0.95,feature_snr=3"
    out = tmp_path / "run"
    assert main(["train", "--task", "link", "--sampler", "neighbor", "--fanouts", "5,5", "--batch-size", "256",
                 "--dataset", spec, "--epochs", "6", "--hidden", "32", "--lr", "0.005", "--weight-decay", "0",
                 "--seeds", "1", "--no-progress", "--threads", "1", "--out", str(out)]) == 0
    result = json.loads((out / "results.json").read_text())
    assert result["sampler"] == "neighbor" and result["metric"] == "auc"
    assert result["test_mean"] > 0.85  # a random scorer: 0.5
