"""Chronological split and the TGN authors' inductive protocol.

With ``t_val`` and ``t_test`` the 70% and 85% quantiles of the event times:

* validation events: ``t_val < t <= t_test``; test events: ``t > t_test``;
* held-out ("new") nodes: ``round(new_node_fraction * |V|)`` nodes (``|V|`` = nodes with at least one
  event), drawn with ``seed`` among the nodes active after ``t_val`` (as in the authors'
  ``utils/data_processing.py``; capped at that set's size);
* training events: ``t <= t_val`` with neither endpoint held out, so no held-out node appears in
  any training event;
* new-node validation / test events: the validation / test events with an endpoint that never
  appears in a training event (the held-out nodes and the nodes first seen after ``t_val``).

The transductive evaluation scores every validation / test event; the inductive one scores the
new-node events only (:func:`evaluation_sets`: each with one fixed negative per event).
"""
from __future__ import annotations

import torch

from ..errors import GnnkitError
from .events import EventStream

EVAL_SEEDS = {"val": 0, "val_new": 1, "test": 2, "test_new": 3}  # as the authors: fixed per split
MASKS = {"val": "val_mask", "val_new": "new_val_mask", "test": "test_mask", "test_new": "new_test_mask"}


def temporal_split(stream: EventStream, *, val_quantile: float = 0.70, test_quantile: float = 0.85,
                   new_node_fraction: float = 0.1, seed: int = 0) -> EventStream:
    """``stream`` with the split masks set (see the module docstring)."""
    if not 0.0 < val_quantile < test_quantile < 1.0:
        raise GnnkitError(f"need 0 < val_quantile < test_quantile < 1, got {val_quantile}, {test_quantile}")
    if not 0.0 <= new_node_fraction < 1.0:
        raise GnnkitError(f"new_node_fraction must be in [0, 1), got {new_node_fraction}")
    if stream.num_events < 3:
        raise GnnkitError(f"{stream.name}: {stream.num_events} events are too few to split")
    src, dst, t, n = stream.src.cpu(), stream.dst.cpu(), stream.t.cpu(), stream.num_nodes
    q = torch.quantile(t, torch.tensor([val_quantile, test_quantile], dtype=t.dtype))
    t_val, t_test = float(q[0]), float(q[1])
    val = (t > t_val) & (t <= t_test)
    test = t > t_test
    active = torch.zeros(n, dtype=torch.bool)
    active[src] = True
    active[dst] = True
    late = torch.zeros(n, dtype=torch.bool)
    late[src[t > t_val]] = True
    late[dst[t > t_val]] = True
    candidates = late.nonzero().view(-1)
    k = min(int(new_node_fraction * int(active.sum())), candidates.numel())
    gen = torch.Generator().manual_seed(int(seed))
    held = candidates[torch.randperm(candidates.numel(), generator=gen)[:k]]
    masked = torch.zeros(n, dtype=torch.bool)
    masked[held] = True
    train = (t <= t_val) & ~masked[src] & ~masked[dst]
    if not bool(train.any()):
        raise GnnkitError(f"{stream.name}: no training events remain after the split")
    seen = torch.zeros(n, dtype=torch.bool)
    seen[src[train]] = True
    seen[dst[train]] = True
    new_edge = ~seen[src] | ~seen[dst]
    dev = stream.src.device
    return stream.replace(train_mask=train.to(dev), val_mask=val.to(dev), test_mask=test.to(dev),
                          new_val_mask=(val & new_edge).to(dev), new_test_mask=(test & new_edge).to(dev),
                          masked_nodes=masked.to(dev))


def evaluation_sets(data: EventStream) -> dict:
    """``{split: (e_id, neg_dst)}`` for ``val``, ``val_new``, ``test``, ``test_new``: the split's
    event ids and one negative destination per event, drawn from the stream's destinations with a
    fixed seed per split (the same for every run and epoch)."""
    candidates = torch.unique(data.dst).cpu()
    sets = {}
    for split, seed in EVAL_SEEDS.items():
        e_id = getattr(data, MASKS[split]).nonzero().view(-1)
        gen = torch.Generator().manual_seed(seed)
        neg = candidates[torch.randint(candidates.numel(), (e_id.numel(),), generator=gen)]
        sets[split] = (e_id, neg.to(data.dst.device))
    return sets
