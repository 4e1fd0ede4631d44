"""The seed loader (seeding, shuffling, sharding), the Batch dataclass and sample_from_nodes/edges."""
import pytest
import torch

from gnnkit.errors import GnnkitError
from gnnkit.samplers.batch import Batch
from gnnkit.samplers.cluster import ClusterSampler
from gnnkit.samplers.full import FullBatchSampler
from gnnkit.samplers.loader import SeedLoader, derive_seed, epoch_generator, seed_nodes, shard
from gnnkit.sparse import Adjacency
from gnnkit.stores import from_data
from helpers import two_community_graph
from sampler_context import make_ctx


def test_epoch_generator_is_a_function_of_seed_and_epoch():
    assert derive_seed(3, 5) == 3 * 1_000_003 + 5 and derive_seed(2**62, 1) < 2**63
    draw = lambda s, e: torch.rand(4, generator=epoch_generator(s, e)).tolist()  # noqa: E731
    assert draw(1, 2) == draw(1, 2) and draw(1, 2) != draw(1, 3) and draw(1, 2) != draw(2, 2)


def test_seed_loader_shuffles_per_epoch_and_deals_equal_shares():
    seeds = torch.arange(10, 21)  # 11 seeds
    loader = SeedLoader(seeds, batch_size=3)
    one = make_ctx(two_community_graph())
    epoch0 = torch.cat(list(loader.batches(one, epoch_generator(0, 0))))
    assert sorted(epoch0.tolist()) == seeds.tolist() and loader.steps(1) == 4
    assert not torch.equal(epoch0, torch.cat(list(loader.batches(one, epoch_generator(0, 1)))))
    ranks = [make_ctx(two_community_graph(), rank=r, world_size=2) for r in range(2)]
    shares = [torch.cat(list(loader.batches(c, epoch_generator(0, 0)))) for c in ranks]
    assert shares[0].numel() == shares[1].numel() == 5 and loader.steps(2) == 2  # the 11th seed is dropped
    assert not set(shares[0].tolist()) & set(shares[1].tolist())
    assert [len(shard(c, list(range(5)), wrap=True)) for c in ranks] == [3, 3]  # wrapped: none dropped
    with pytest.raises(GnnkitError, match="batch_size"):
        SeedLoader(seeds, 0)


def test_seed_nodes_names_the_sampler_when_nothing_trains():
    data = two_community_graph()
    data.train_mask[:] = False
    with pytest.raises(GnnkitError, match="neighbor: the graph has no training nodes"):
        seed_nodes(from_data(data)[1], who="neighbor")


def test_batch_to_device_and_extras():
    adj = Adjacency.from_edge_index(torch.tensor([[0], [1]]), 2)
    b = Batch(x=torch.zeros(2, 3), y=torch.zeros(2, dtype=torch.long), adj=[adj, adj], n_id=torch.arange(2),
              loss_index=torch.arange(2), extra={"refresh": True, "cand_pos": torch.arange(2)})
    moved = b.to("cpu")
    assert moved.refresh is True and torch.equal(moved.cand_pos, b.cand_pos) and len(moved.adj) == 2
    assert moved.loss_weight is None and moved.edge_label_index is None
    with pytest.raises(AttributeError, match="no field or extra 'nothing'"):
        b.nothing


def test_full_batch_from_nodes_and_edges():
    data = two_community_graph()
    sampler = FullBatchSampler()
    sampler.setup(make_ctx(data), None)
    batch = sampler.sample_from_nodes(torch.tensor([3, 7]))
    assert batch.n_id is None and batch.loss_index.tolist() == [3, 7] and batch.adj.num_rows == data.num_nodes
    edges = torch.tensor([[0, 5], [1, 9]])
    eb = sampler.sample_from_edges(edges)
    assert torch.equal(eb.edge_label_index, edges) and eb.edge_label.tolist() == [1.0, 1.0]
    assert eb.loss_index.tolist() == [0, 1]


def test_cluster_batch_from_nodes_is_their_clusters_with_the_loss_on_them(tmp_path):
    data = two_community_graph(30)
    sampler = ClusterSampler(num_parts=6, clusters_per_batch=2, cache_dir=str(tmp_path))
    sampler.setup(make_ctx(data), None)
    seeds = torch.tensor([5, 40, 41])
    batch = sampler.sample_from_nodes(seeds)
    assert torch.equal(batch.n_id[batch.loss_index], seeds)
    clusters = set(sampler.partition.parts[seeds].tolist())
    assert set(sampler.partition.parts[batch.n_id].tolist()) == clusters
    assert batch.n_id.numel() == int(sum((sampler.partition.parts == c).sum() for c in clusters))
    edges = torch.tensor([[5, 0], [40, 1]])  # an edge batch: the clusters of every endpoint, rows of the edges
    eb = sampler.sample_from_edges(edges)
    assert torch.equal(eb.n_id[eb.edge_label_index], edges) and eb.edge_label.tolist() == [1.0, 1.0]
    ends = set(sampler.partition.parts[edges.reshape(-1)].tolist())
    assert set(sampler.partition.parts[eb.n_id].tolist()) == ends and eb.loss_index.tolist() == [0, 1]
