"""TGN through the temporal-link task under the TGB protocol: fixed hist_rnd negatives, filtered
MRR selecting the model, EdgeBank's MRR on the same negatives beside it."""
from __future__ import annotations

import argparse

import pytest
import torch

from gnnkit import GnnkitError
from gnnkit.link.ranking import rank_metrics
from gnnkit.link.tgb_protocol import evaluate_edgebank, random_scores, split_negatives, tgb_split
from gnnkit.samplers.temporal import TemporalSampler
from gnnkit.tasks.temporal_link import TemporalLinkPrediction
from gnnkit.temporal.events import make_stream
from gnnkit.temporal.model import TGN
from gnnkit.trainer import Trainer

DIMS = dict(memory_dim=8, time_dim=6, embedding_dim=8, heads=2)
K = 20


def partner_stream(n=40, e=1200):
    """Every node always talks to the same partner (learnable from the memory of its last contact)."""
    g = torch.Generator().manual_seed(0)
    partner = torch.randperm(n, generator=g)
    src = torch.randint(n, (e,), generator=g)
    return make_stream(src, partner[src], torch.arange(e).double(), torch.zeros(e, 0), num_nodes=n, name="partner")


def fit_tgb(stream, seed=0, epochs=10, **kw):
    torch.manual_seed(seed)
    task = TemporalLinkPrediction(num_neighbors=4, eval_batch_size=50, protocol="tgb", num_negatives=K, **kw, **DIMS)
    trainer = Trainer(task=task, sampler=TemporalSampler(50), max_epochs=epochs, lr=1e-2, device="cpu",
                      progress=False, seed=seed)
    return trainer, trainer.fit(TGN(stream.msg_dim, **DIMS), stream)


def test_tgn_mrr_under_tgb_is_deterministic_and_above_random(tmp_path):
    stream = partner_stream()
    trainer, r = fit_tgb(stream, negatives_dir=str(tmp_path))
    m = r["metrics"]
    assert r["selected_on"] == "val_mrr" and r["val"] == m["val_mrr"] and r["test"] == m["test_mrr"]
    for key in ("val_mrr", "test_mrr", "val_hits@10", "test_hits@10", "val_edgebank_mrr", "test_edgebank_mrr"):
        assert 0.0 < m[key] <= 1.0, key
    assert not any(k.endswith("_ap") or "_new_" in k for k in m)  # the AP protocol's figures are not mixed in
    # TGB's split: 70/15/15 chronological, no held-out nodes
    data = trainer.task.data
    assert not data.masked_nodes.any() and int(data.train_mask.sum()) == 840
    # the negatives are TGB's, fixed and saved beside the run; EdgeBank's figures are on the same ones
    neg = split_negatives(tgb_split(stream), "test", num_negatives=K, seed=0)
    assert torch.equal(trainer.task.tgb_sets["test"][1], neg)
    assert len(list(tmp_path.glob("partner_*_ns.pt"))) == 2
    bank = evaluate_edgebank(stream, num_negatives=K, seed=0, batch_size=50)  # the task's eval batch
    assert m["test_edgebank_mrr"] == bank["test_mrr"] and m["val_edgebank_mrr"] == bank["val_mrr"]
    assert trainer.task.run_summary(r)["edgebank_mrr"] == bank["test_mrr"]
    window = evaluate_edgebank(stream, memory="window", num_negatives=K, seed=0, batch_size=50)
    assert m["test_edgebank_window_mrr"] == window["test_mrr"]
    assert trainer.task.run_summary(r)["edgebank_window_mrr"] == window["test_mrr"]
    # random scores on the same negatives: TGN is clearly above chance
    chance = rank_metrics(*random_scores(neg, seed=0), neg >= 0)["mrr"]
    assert chance < 0.2 and m["test_mrr"] > 1.5 * chance and m["val_mrr"] > 1.5 * chance, (m, chance)
    # deterministic for a seed; evaluating twice from the same state gives the same figures
    _, r2 = fit_tgb(stream)
    assert r2["metrics"] == m
    assert trainer.test() == trainer.test()
    assert set(trainer.evaluate("val")) == {"val_mrr", "val_hits@10", "val_edgebank_mrr", "val_edgebank_hits@10",
                                            "val_edgebank_window_mrr", "val_edgebank_window_hits@10"}


def test_tgb_ranking_matches_a_per_event_replay():
    """The batched ranking equals scoring each event's negatives one by one from the same state."""
    from gnnkit.temporal.events import EventBatch

    stream = partner_stream(n=20, e=300)
    trainer, _ = fit_tgb(stream, epochs=1)
    task, model = trainer.task, trainer.raw_model.eval()
    start = task.snapshot()
    got = task._tgb_pass(model, "val")
    task.restore(start)
    e_id, neg = task.tgb_sets["val"]
    d, pos, negs = task.data, [], []
    with torch.no_grad():
        for lo in range(0, e_id.numel(), task.eval_batch_size):
            e = e_id[lo: lo + task.eval_batch_size]
            rows = []
            for j in range(neg.shape[1]):  # one column of negatives at a time
                col = torch.where(neg[lo: lo + e.numel(), j] >= 0, neg[lo: lo + e.numel(), j], d.dst[e])
                b = EventBatch(e, d.src[e], d.dst[e], d.t[e], d.msg[e], col)
                rows.append(model.score(task.memory, task.neighbors, d, b)[1])
            b = EventBatch(e, d.src[e], d.dst[e], d.t[e], d.msg[e], d.dst[e])
            p, _, ctx = model.score(task.memory, task.neighbors, d, b)
            model.commit(task.memory, task.neighbors, b, ctx)
            pos.append(p)
            negs.append(torch.stack(rows, 1))
    ref = rank_metrics(torch.cat(pos), torch.cat(negs), neg >= 0)
    task.restore(start)
    assert got["val_mrr"] == pytest.approx(ref["mrr"], abs=1e-6)
    assert got["val_hits@10"] == pytest.approx(ref["hits@10"], abs=1e-6)


def test_protocol_option_and_validation():
    parser = argparse.ArgumentParser()
    TemporalLinkPrediction.add_args(parser)
    args = parser.parse_args(["--protocol", "tgb"])
    task = TemporalLinkPrediction.from_args(args)
    assert task.protocol == "tgb" and task.metric == "mrr"
    default = TemporalLinkPrediction.from_args(parser.parse_args([]))
    assert default.protocol == "ap" and default.metric == "ap"
    with pytest.raises(SystemExit):
        parser.parse_args(["--protocol", "nope"])
    with pytest.raises(GnnkitError, match="unknown temporal-link protocol"):
        TemporalLinkPrediction(protocol="nope")
