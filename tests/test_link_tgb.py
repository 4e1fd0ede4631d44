"""Temporal links under the TGB protocol: hist_rnd negatives, EdgeBank, filtered MRR."""
from __future__ import annotations

import os
import pickle

import numpy as np
import pytest
import torch

from gnnkit.errors import GnnkitError
from gnnkit.link import EdgeBank, evaluate_edgebank, rank_metrics, tgb_negatives, tgb_split
from gnnkit.link.tgb_negatives import load_or_generate
from gnnkit.link.tgb_protocol import random_scores, split_negatives
from gnnkit.temporal.events import make_stream

COLLEGE = "/work/shared/data/temporal/CollegeMsg/CollegeMsg.txt"


def _stream(n=30, e=600, seed=0, repeat=0.0):
    """Random events over ``n`` nodes; with ``repeat`` > 0 that share of events re-plays an earlier pair."""
    rng = np.random.default_rng(seed)
    src, dst = rng.integers(0, n, e), rng.integers(0, n, e)
    for i in np.nonzero(rng.random(e) < repeat)[0]:
        if i:
            j = rng.integers(0, i)
            src[i], dst[i] = src[j], dst[j]
    t = np.sort(rng.integers(0, e // 3, e)).astype(float)  # shared timestamps: same-(s, t) positives
    return make_stream(src, dst, t, num_nodes=n, name="toy")


def _sets(src, dst, t, hs, hd, i):
    """P (same source and time in the split), H (history destinations of the source) of event i."""
    same = (src == src[i]) & (t == t[i])
    return set(dst[same].tolist()), set(hd[hs == src[i]].tolist())


@pytest.mark.parametrize("method,n", [("dense", 30), ("sparse", 400)])
def test_hist_rnd_negatives_follow_the_scheme(method, n):
    s = tgb_split(_stream(n=n, e=1500, repeat=0.6) if method == "sparse" else _stream())
    m, tr = s.test_mask, s.train_mask
    src, dst, t, hs, hd = s.src[m], s.dst[m], s.t[m], s.src[tr], s.dst[tr]
    k = 10
    kw = dict(first_dst=0, last_dst=n - 1, num_negatives=k, seed=1, method=method)
    neg = tgb_negatives(src, dst, t, hs, hd, **kw)
    assert neg.shape == (src.numel(), k)
    assert torch.equal(neg, tgb_negatives(src, dst, t, hs, hd, **kw))
    some_hist = 0
    for i in range(src.numel()):  # the reference check loops; the generator does not
        p, h = _sets(src, dst, t, hs, hd, i)
        row = [x for x in neg[i].tolist() if x >= 0]
        assert len(set(row)) == len(row) and not (set(row) & p)  # distinct, filtered
        n_h = min(k // 2, len(h - p))
        assert set(row[:n_h]) <= h - p and not (set(row[n_h:]) & (h | p))
        assert len(row) == min(k, n_h + n - len(h | p))
        some_hist += n_h > 0
    assert some_hist > 10


@pytest.mark.parametrize("method", ["dense", "sparse"])
def test_both_parts_uniform(method):
    """One source with 40 historical destinations: each is among the 5 historical picks with
    probability 5/40; each other destination among the 5 random ones with probability 5/(n - 41)."""
    n, e, k = 600, 3000, 10
    hist_dst = torch.arange(1, 41)
    src, dst = torch.zeros(e, dtype=torch.long), torch.full((e,), n - 1)
    t = torch.arange(e, dtype=torch.float64)  # every event alone at its time
    neg = tgb_negatives(src, dst, t, torch.zeros(40, dtype=torch.long), hist_dst, first_dst=0, last_dst=n - 1,
                        num_negatives=k, seed=3, method=method)
    counts = torch.bincount(neg.view(-1), minlength=n).double()
    for ids, p in ((hist_dst, 5 / 40), (torch.cat([torch.tensor([0]), torch.arange(41, n - 1)]), 5 / (n - 41))):
        mean, sd = e * p, (e * p * (1 - p)) ** 0.5
        assert ((counts[ids] - mean).abs() < 5 * sd).all()
    assert counts[n - 1] == 0


def test_sparse_refused_where_the_range_is_narrow():
    s = tgb_split(_stream())
    m, tr = s.test_mask, s.train_mask
    with pytest.raises(GnnkitError, match="too few for the sparse method"):
        tgb_negatives(s.src[m], s.dst[m], s.t[m], s.src[tr], s.dst[tr], first_dst=0, last_dst=29,
                      num_negatives=10, method="sparse")


def test_matches_py_tgb_when_the_candidates_are_exhausted(tmp_path):
    gen_mod = pytest.importorskip("tgb.linkproppred.negative_generator", reason="py-tgb not installed")
    from torch_geometric.data import TemporalData

    s = tgb_split(_stream(n=12, e=300, seed=2))
    m, tr = s.test_mask, s.train_mask
    k = 40  # more than the 12 destinations: both pick every candidate, so the sets are determined
    ours = tgb_negatives(s.src[m], s.dst[m], s.t[m], s.src[tr], s.dst[tr], first_dst=0, last_dst=11,
                         num_negatives=k, seed=0)
    hist = TemporalData(src=s.src[tr], dst=s.dst[tr], t=s.t[tr].long(), msg=torch.zeros(int(tr.sum()), 1))
    test = TemporalData(src=s.src[m], dst=s.dst[m], t=s.t[m].long(), msg=torch.zeros(int(m.sum()), 1))
    g = gen_mod.NegativeEdgeGenerator("toy", 0, 11, num_neg_e=k, strategy="hist_rnd", rnd_seed=0,
                                      historical_data=hist)
    g.generate_negative_samples(test, "test", str(tmp_path))
    with open(tmp_path / "toy_test_ns.pkl", "rb") as f:  # written just now by py-tgb itself
        theirs = pickle.load(f)
    for i, (a, b, c) in enumerate(zip(test.src.tolist(), test.dst.tolist(), test.t.tolist())):
        want = theirs[(a, b, c)]
        assert sorted(x for x in ours[i].tolist() if x >= 0) == sorted(int(x) for x in want)


def test_random_part_uniform():
    n, e, k = 50, 4000, 10
    src = torch.arange(e) % n
    dst = (src + 1) % n
    t = torch.arange(e, dtype=torch.float64)  # every event alone at its time, no history
    neg = tgb_negatives(src, dst, t, torch.zeros(0, dtype=torch.long), torch.zeros(0, dtype=torch.long),
                        first_dst=0, last_dst=n - 1, num_negatives=k, seed=3)
    counts = torch.zeros(n)
    counts.index_add_(0, neg.view(-1), torch.ones(neg.numel()))
    p = k / (n - 1)  # each destination but the positive, equally likely
    rows = e * (n - 1) / n  # rows where a given node is not the positive
    mean, sd = rows * p, (rows * p * (1 - p)) ** 0.5
    assert ((counts - mean).abs() < 5 * sd).all()


def test_negatives_saved_beside_the_run_and_reused(tmp_path):
    s = tgb_split(_stream())
    a = split_negatives(s, "val", str(tmp_path), num_negatives=8, seed=4)
    path = tmp_path / "toy_val_ns.pt"
    assert path.is_file()
    stamp = os.stat(path).st_mtime_ns
    b = split_negatives(s, "val", str(tmp_path), num_negatives=8, seed=4)
    assert torch.equal(a, b) and os.stat(path).st_mtime_ns == stamp  # read back, not redrawn
    c = split_negatives(s, "val", str(tmp_path), num_negatives=8, seed=5)  # other settings: redrawn
    assert not torch.equal(a, c)
    path.write_bytes(b"garbage")
    m, tr = s.val_mask, s.train_mask
    with pytest.raises(GnnkitError, match="cannot read the stored negatives"):
        load_or_generate(str(path), s.src[m], s.dst[m], s.t[m], s.src[tr], s.dst[tr], first_dst=0,
                         last_dst=29, num_negatives=8, seed=4)


class _TgbEdgeBank:
    """Reference: TGB's EdgeBankPredictor (dict memory) and its batch loop, written plainly."""

    def __init__(self, src, dst, ts, window, ratio):
        self.window, self.mem = window, {}
        if window:
            self.prev_t = ts.min() + (ts.max() - ts.min()) * (1 - ratio)
            self.cur_t = ts.max()
            self.duration = self.cur_t - self.prev_t
        self.update(src, dst, ts)

    def update(self, src, dst, ts):
        if self.window and self.mem and ts.max() > self.cur_t:
            self.cur_t = ts.max()
            self.prev_t = self.cur_t - self.duration
        for a, b, c in zip(src.tolist(), dst.tolist(), ts.tolist()):
            self.mem[(a, b)] = c

    def predict(self, a, b):
        if (a, b) not in self.mem:
            return 0.0
        return float(self.mem[(a, b)] >= self.prev_t) if self.window else 1.0


@pytest.mark.parametrize("memory", ["unlimited", "window"])
def test_edgebank_equals_tgb_loop(memory):
    """Validation then test, one predictor throughout (as TGB's script): same scores as the reference."""
    s = tgb_split(_stream(repeat=0.5, seed=6))
    tr = s.train_mask
    bank = EdgeBank(memory, 0.15, batch_size=7).fit(s.src[tr], s.dst[tr], s.t[tr])
    ref = _TgbEdgeBank(s.src[tr], s.dst[tr], s.t[tr], memory == "window", 0.15)
    for m in (s.val_mask, s.test_mask):
        src, dst, t = s.src[m], s.dst[m], s.t[m]
        neg = tgb_negatives(src, dst, t, s.src[tr], s.dst[tr], first_dst=0, last_dst=29, num_negatives=6, seed=0)
        pos_s, neg_s = bank.score_stream(src, dst, t, neg)
        for a in range(0, src.numel(), 7):
            for i in range(a, min(a + 7, src.numel())):
                assert pos_s[i] == ref.predict(int(src[i]), int(dst[i]))
                assert neg_s[i].tolist() == [ref.predict(int(src[i]), int(x)) if x >= 0 else 0.0
                                             for x in neg[i].tolist()]
            ref.update(src[a:a + 7], dst[a:a + 7], t[a:a + 7])
        bank.extend(src, dst, t)
        assert pos_s.sum() > 0 and (pos_s == 0).any()


def _recurring(n=200, pairs=120, e=3000, seed=7):
    """Events that mostly (90%) re-play a fixed set of ``pairs`` pairs, the rest random."""
    rng = np.random.default_rng(seed)
    base = rng.integers(0, n, (pairs, 2))
    pick = base[rng.integers(0, pairs, e)]
    noise = rng.random(e) < 0.1
    pick[noise] = rng.integers(0, n, (int(noise.sum()), 2))
    return make_stream(pick[:, 0], pick[:, 1], np.arange(e, dtype=float), num_nodes=n, name="recurring")


def test_edgebank_beats_random_where_edges_repeat(tmp_path):
    s = _recurring()
    figs = evaluate_edgebank(s, num_negatives=20, seed=0, negatives_dir=str(tmp_path))
    neg = split_negatives(tgb_split(s), "test", str(tmp_path), first_dst=int(s.dst.min()),
                          last_dst=int(s.dst.max()), num_negatives=20, seed=0)
    rand = rank_metrics(*random_scores(neg), neg >= 0)
    assert figs["test_mrr"] > rand["mrr"] + 0.2
    with pytest.raises(GnnkitError, match="unknown EdgeBank memory"):
        EdgeBank("forever")


@pytest.mark.skipif(not os.path.exists(COLLEGE), reason="CollegeMsg absent (../shared/data/temporal)")
def test_edgebank_mrr_on_collegemsg(tmp_path):
    from gnnkit.temporal.events import load_events

    stream = load_events(COLLEGE)
    for memory in ("unlimited", "window"):
        figs = evaluate_edgebank(stream, memory=memory, num_negatives=100, seed=0, negatives_dir=str(tmp_path))
        assert 0.0 < figs["test_mrr"] < 1.0 and 0.0 < figs["val_mrr"] < 1.0
        neg = split_negatives(tgb_split(stream), "test", str(tmp_path), first_dst=int(stream.dst.min()),
                              last_dst=int(stream.dst.max()), num_negatives=100, seed=0)
        assert figs["test_mrr"] > rank_metrics(*random_scores(neg), neg >= 0)["mrr"]
