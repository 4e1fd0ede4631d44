"""A link predictor (gnnkit GCN encoder + dot decoder) trained by a plain PyTorch loop on the GAE
split of a learnable synthetic graph beats a random scorer by a clear margin."""
from __future__ import annotations

import pytest
import torch

from gnnkit.data.csbm import csbm
from gnnkit.link import DotDecoder, HadamardMLPDecoder, NegativeSampler, auc_ap, link_loss, random_link_split
from gnnkit.sparse import Adjacency
from gnnkit.models import GCN


def _train(decoder_name: str, method: str, seed: int = 0, epochs: int = 120):
    # 10 classes, 95% of edges inside a class: a same-class pair is ~9x likelier to be an edge
    data = csbm(num_nodes=800, num_classes=10, avg_degree=8, num_features=16, homophily=0.95,
                feature_snr=3.0, seed=seed)
    split = random_link_split(data.edge_index, data.num_nodes, seed=seed)
    adj = Adjacency.from_edge_index(split.message_edges("train"), data.num_nodes, norm="gcn")
    torch.manual_seed(seed)
    encoder = GCN(data.x.shape[1], 32, 16, num_layers=2, dropout=0.0)
    decoder = DotDecoder() if decoder_name == "dot" else HadamardMLPDecoder(16, 32)
    params = list(encoder.parameters()) + list(decoder.parameters())
    opt = torch.optim.Adam(params, lr=0.01)
    sampler = NegativeSampler(data.num_nodes, split.message_edges("train"), method=method)
    gen = torch.Generator().manual_seed(seed)
    pos = split.message_edges("train")  # both directions of every training edge
    for _ in range(epochs):
        encoder.train()
        opt.zero_grad()
        z = encoder(data.x, adj)
        loss = link_loss(decoder(z, pos), decoder(z, sampler.sample(pos, 1, gen)))
        loss.backward()
        opt.step()
    encoder.eval()
    with torch.no_grad():
        z = encoder(data.x, adj)
        return {s: auc_ap(decoder(z, split.positives(s)), decoder(z, split.negatives(s))) for s in ("val", "test")}, split


@pytest.mark.parametrize("decoder,method", [("dot", "uniform"), ("mlp", "degree")])
def test_link_predictor_beats_random(decoder, method):
    figs, split = _train(decoder, method)
    gen = torch.Generator().manual_seed(1)
    rand = auc_ap(torch.rand(split.test_pos.shape[1], generator=gen), torch.rand(split.test_neg.shape[1], generator=gen))
    assert figs["test"]["auc"] > 0.8 and figs["test"]["ap"] > 0.8
    assert figs["test"]["auc"] > rand["auc"] + 0.25
    assert abs(rand["auc"] - 0.5) < 0.1
