"""The TGB link protocol on an event stream: split, fixed negatives, EdgeBank's figures.

* split: TGB's chronological one, :func:`gnnkit.temporal.split.temporal_split` with no held-out
  nodes: training ``t <= q70``, validation ``q70 < t <= q85``, test ``t > q85`` (``q`` = quantiles
  of the event times, numpy's linear interpolation, as TGB's ``generate_splits``);
* negatives: :func:`gnnkit.link.tgb_negatives.stream_negatives` per split (history = training
  events), stored beside the run as ``<dir>/<name>_<split>_ns.pt`` when ``negatives_dir`` is given;
* evaluation: each positive against its ``K`` negatives, MRR and Hits@10 (:mod:`gnnkit.link.ranking`).
  Validation is scored with the training events as history, test with the training and
  validation events (TGB scores validation first and keeps its positives in the memory; the
  time window's length stays the one fixed from the training events).
"""
from __future__ import annotations

import os
from typing import Dict, Optional

import torch

from gnnkit.temporal.split import temporal_split

from .edgebank import EdgeBank
from .ranking import rank_metrics
from .tgb_negatives import stream_negatives


def tgb_split(stream):
    """``stream`` with TGB's 70/15/15 chronological masks (module docstring)."""
    return temporal_split(stream, val_quantile=0.70, test_quantile=0.85, new_node_fraction=0.0)


def split_negatives(stream, split: str, negatives_dir: Optional[str] = None, **settings):
    """The ``[E_split, K]`` negatives of ``split`` (``-1`` padded), cached under ``negatives_dir``."""
    path = None
    if negatives_dir is not None:
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in stream.name)
        path = os.path.join(negatives_dir, f"{safe}_{split}_ns.pt")
    return stream_negatives(stream, split, path=path, **settings)


def evaluate_edgebank(stream, *, memory: str = "unlimited", time_window_ratio: float = 0.15,
                      batch_size: int = 200, negatives_dir: Optional[str] = None, k: int = 10,
                      **settings) -> Dict[str, float]:
    """EdgeBank's ``{"val_mrr", "val_hits@k", "test_mrr", "test_hits@k"}`` under the TGB protocol;
    ``stream`` is split with :func:`tgb_split` unless it already has masks; ``settings`` go to
    :func:`gnnkit.link.tgb_negatives.tgb_negatives` (``num_negatives``, ``seed``, ...)."""
    if stream.train_mask is None:
        stream = tgb_split(stream)
    out: Dict[str, float] = {}
    src, dst, t = stream.src.cpu(), stream.dst.cpu(), stream.t.cpu()
    train = stream.train_mask.cpu()
    bank = EdgeBank(memory, time_window_ratio, batch_size).fit(src[train], dst[train], t[train])
    for split in ("val", "test"):
        mask = getattr(stream, f"{split}_mask").cpu()
        neg = split_negatives(stream, split, negatives_dir, **settings)
        pos_s, neg_s = bank.score_stream(src[mask], dst[mask], t[mask], neg)
        figures = rank_metrics(pos_s, neg_s, neg >= 0, k=k)
        out.update({f"{split}_{key}": v for key, v in figures.items()})
        bank.extend(src[mask], dst[mask], t[mask])
    return out


def random_scores(neg, seed: int = 0):
    """Uniform random scores for positives ``[E]`` and negatives ``[E, K]``: the chance baseline."""
    gen = torch.Generator().manual_seed(int(seed))
    return torch.rand(neg.shape[0], generator=gen), torch.rand(neg.shape, generator=gen)
