"""ForwardGNN's prediction rule.

* ``sf``: ``log mean_{l ∈ used} softmax(h_l · h_{vn})`` over the layers trained so far (or the last
  one alone with ``last_layer_only``); ``sf-top2loss`` scores layer ``j`` on the mean of its output
  and the detached outputs of the layers above, as in training.
* ``ff-*``: one pass per candidate class ``c`` with the evaluated rows carrying ``c``; the score
  is the goodness ``Σh² − θ`` summed over the used layers; validation rows see the training
  labels, test rows the training and validation labels (as in the reference). Training rows
  carry their own label in those passes, so ``train_accuracy`` is no held-out figure for ``ff-*``.
  FF-LA runs the ``C`` candidate passes as one pass over ``C`` stacked copies of the graph
  (``[C·n, d]`` rows, block-diagonal ``Â``).

Frozen layers' outputs are memoized on their parameters' version counters, and so is the
aggregation of the layer in training's fixed input, so a validation check during sequential
training recomputes only that layer's transform.
"""
from __future__ import annotations

from typing import List, Optional

import torch
from torch import Tensor

from .graphs import View
from .inputs import l2_normalize
from .losses import goodness, sf_logits
from .passes import FixedInput, LayerPasses
from .schedule import Schedule


class Predictor:
    """Scores ``[N, C]`` of the whole graph for the schedule's current state; memoizes."""

    def __init__(self, passes: LayerPasses, last_layer_only: bool):
        self.passes, self.last_layer_only = passes, last_layer_only
        self.stack, self.views = passes.stack, passes.views
        self._memo = None
        self._prefix: dict = {}

    def forget(self) -> None:
        """Drop the memoized prefixes (after the schedule ends or a checkpoint is loaded)."""
        self._memo, self._prefix = None, {}

    def _versions(self, layers: int) -> tuple:
        return tuple(p._version for l in range(layers) for p in self.stack.parameters_of(l))

    @torch.no_grad()
    def predict(self, sched: Schedule, fixed: Optional[FixedInput]) -> Tensor:
        """``[N, C]`` scores (SF: log of the mean softmax over layers; FF: summed goodness)."""
        trained = sched.trained()
        key = (trained, sched.done, self._versions(self.stack.num_layers))
        if self._memo is not None and self._memo[0] == key:
            return self._memo[1]
        used = [trained - 1] if self.last_layer_only else list(range(trained))
        frozen = sched.frozen(trained)
        if self.passes.variant == "sf":
            out = self._sf(sched, fixed, trained, frozen, used)
        else:
            out = self._ff(fixed, trained, frozen, used)
        self._memo = (key, out)
        return out

    def _walk(self, key, view: View, fixed, trained: int, frozen: int, used: List[int], score):
        """``Σ_{l ∈ used} score(h_l)`` over layers ``0..trained−1`` of ``view``. Layers below
        ``frozen`` do not change: the input of the first unfrozen layer, its aggregation (layers
        that split; shared with the training step's cache when the view is the same) and the score
        so far are memoized under ``key`` until the frozen layers' weights change."""
        vkey = (frozen, self._versions(frozen))
        hit = self._prefix.get(key)
        fresh = hit is None or hit[0] != vkey
        if not fresh:
            (z, zl, total, aggs), start = hit[1], frozen
        else:
            (z, zl), total, start, aggs = self.views.first_input(view, 0), 0.0, 0, None
        for l in range(start, trained):
            if l == frozen and fresh:
                aggs = self._aggregations(view, fixed, l, z, zl)
                self._prefix[key] = (vkey, (None if aggs else z, None if aggs else zl, total, aggs))
            agg, lagg = aggs[0] if l == frozen and aggs else (None, None)
            h = self.stack(l, z, view.graph(0, l), zl, agg=agg, label_agg=lagg, label_adj=view.label_graph(0))
            if l in used:
                total = total + score(h)
            z, zl = l2_normalize(h), None
        return total

    def _aggregations(self, view: View, fixed: Optional[FixedInput], l: int, z, zl):
        """Layer ``l``'s cached aggregation of its fixed input on ``view`` (``None`` where not cacheable)."""
        if self.passes.cache == "off" or not self.stack.cacheable(l):
            return None
        if self.views.is_full(view) and fixed is not None and fixed.layer == l and fixed.aggregations is not None:
            return fixed.aggregations  # the training step's cache: same graph, same input
        return self.passes.aggregations(view, l, [(z, zl)])

    def _sf(self, sched: Schedule, fixed, trained: int, frozen: int, used: List[int]) -> Tensor:
        view = self.views.full()
        if not sched.sequential:
            probs, states, L = 0.0, self.passes.bottom_up(view), self.stack.num_layers
            for j in used:
                out = self.stack(j, states[j], view.adj(0))
                emb = torch.stack([out] + states[j + 2:]).mean(0) if j + 2 <= L else out
                probs = probs + torch.softmax(sf_logits(emb, view.n), dim=1)
        else:
            probs = self._walk("sf", view, fixed, trained, frozen, used,
                               lambda h: torch.softmax(sf_logits(h, view.n), dim=1))
        return torch.log(probs / len(used) + 1e-12)

    def _ff(self, fixed, trained: int, frozen: int, used: List[int]) -> Tensor:
        views, C, theta = self.views, self.passes.C, self.passes.theta
        train, val = views.node("train_mask"), views.node("val_mask")
        n = views.ctx.graph.num_nodes
        scores = torch.zeros(n, C, device=train.device)
        known_val = train | val
        passes = ((train, val, train | val),  # val (and train) rows
                  (known_val, ~known_val, ~known_val))  # test and unlabeled rows
        for p, (known, evaluated, rows) in enumerate(passes):
            if not bool(rows.any()):
                continue
            if self.passes.variant == "ff-la":  # the C candidates as C stacked copies: one pass
                view = views.candidates_la(p, known, evaluated)
                total = self._walk(p, view, fixed, trained, frozen, used, lambda h: goodness(h, theta).view(C, n).t())
                scores[rows] = total[rows]
                continue
            for c in range(C):
                view = views.candidate_vn(c, known, evaluated)
                total = self._walk((p, c), view, fixed, trained, frozen, used, lambda h: goodness(h[:n], theta))
                scores[rows, c] = total[rows]
        return scores
