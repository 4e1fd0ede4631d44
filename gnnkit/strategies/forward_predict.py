"""ForwardGNN's prediction rule (mixed into :class:`~gnnkit.strategies.forward.ForwardLearning`).

* ``sf``: ``log mean_{l ∈ used} softmax(h_l · h_{vn})`` over the layers trained so far (or the last
  one alone with ``last_layer_only``); ``sf-top2loss`` scores layer ``j`` on the mean of its output
  and the detached outputs of the layers above, as in training.
* ``ff-*``: one pass per candidate class ``c`` with the evaluated rows carrying ``c``; the score
  is the goodness ``Σh² − θ`` summed over the used layers; validation rows see the training
  labels, test rows the training and validation labels. FF-LA runs the ``C`` candidate passes
  as one pass over ``C`` stacked copies of the graph (``[C·n, d]`` rows, block-diagonal ``Â``).

Frozen layers' outputs are memoized on their parameters' version counters, and so is the
aggregation of the layer in training's fixed input, so a validation check during sequential
training recomputes only that layer's transform.
"""
from __future__ import annotations

from typing import List

import torch
from torch import Tensor

from .forward_graph import View, l2_normalize
from .forward_losses import goodness, sf_logits


class ForwardPrediction:
    """``predict`` and its helpers; needs the strategy's ``stack``, views and schedule state."""

    def _trained(self) -> int:
        if self.done or self.schedule == "top2loss":
            return self.L
        return max(1, self.layer + (1 if self.layer_epochs_done > 0 else 0))

    @torch.no_grad()
    def predict(self, trainer, data):
        """``[N, C]`` scores (SF: log of the mean softmax over layers; FF: summed goodness)."""
        params = [p for l in range(self.L) for p in self.stack.parameters_of(l)]
        key = (id(data), self._trained(), self.done, tuple(p._version for p in params))
        if self._memo is not None and self._memo[0] == key:
            return self._memo[1]
        trained = self._trained()
        used = [trained - 1] if self.last_layer_only else list(range(trained))
        if self.variant == "sf":
            out = self._predict_sf(trainer, data, trained, used)
        else:
            out = self._predict_ff(data, trained, used)
        self._memo = (key, out)
        return out

    def _walk(self, key, view: View, trained: int, used: List[int], score):
        """``Σ_{l ∈ used} score(h_l)`` over layers ``0..trained−1`` of ``view``. Layers below the one
        in training are frozen: the input of the first unfrozen layer, its aggregation (cacheable
        layers; shared with the training step's cache when the view is the same) and the score so
        far are memoized under ``key`` until the frozen layers' weights change."""
        frozen = 0 if self.done else min(self.layer, trained - 1)
        vkey = (frozen, tuple(p._version for l in range(frozen) for p in self.stack.parameters_of(l)))
        hit = self._prefix.get(key)
        fresh = hit is None or hit[0] != vkey
        if not fresh:
            (z, zl, total, aggs), start = hit[1], frozen
        else:
            (z, zl), total, start, aggs = self._first_input(view, 0), 0.0, 0, None
        for l in range(start, trained):
            if l == frozen and fresh:
                aggs = self._eval_aggregations(view, l, z, zl)
                self._prefix[key] = (vkey, (None if aggs else z, None if aggs else zl, total, aggs))
            agg, lagg = aggs[0] if l == frozen and aggs else (None, None)
            h = self.stack(l, z, view.graph(0, l), zl, agg=agg, label_agg=lagg, label_adj=view.label_graph(0))
            if l in used:
                total = total + score(h)
            z, zl = l2_normalize(h), None
        return total

    def _eval_aggregations(self, view: View, l: int, z, zl):
        """Layer ``l``'s cached aggregation of its fixed input on ``view`` (``None`` where not cacheable)."""
        if self.cache == "off" or not self.stack.cacheable(l):
            return None
        fixed = self._fixed
        if view is self._full and fixed is not None and fixed[0] == l and fixed[2] is not None:
            return fixed[2]  # the training step's cache: same graph, same input
        return self._aggregations(view, l, [(z, zl)])

    def _predict_sf(self, trainer, data, trained: int, used: List[int]) -> Tensor:
        view = (self._full_view(trainer) if data is trainer.data else
                self._train_view(data.x, data.edge_index, data.y, data.train_mask, None))
        if self.schedule == "top2loss":
            probs, states = 0.0, self._bottom_up(view)
            for j in used:
                out = self.stack(j, states[j], view.adj(0))
                emb = torch.stack([out] + states[j + 2:]).mean(0) if j + 2 <= self.L else out
                probs = probs + torch.softmax(sf_logits(emb, view.n), dim=1)
        else:
            probs = self._walk((id(data), "sf"), view, trained, used,
                               lambda h: torch.softmax(sf_logits(h, view.n), dim=1))
        return torch.log(probs / len(used) + 1e-12)

    def _predict_ff(self, data, trained: int, used: List[int]) -> Tensor:
        scores = torch.zeros(data.num_nodes, self.C, device=data.x.device)
        known_val = data.train_mask | data.val_mask
        passes = ((data.train_mask, data.val_mask, data.train_mask | data.val_mask),  # val (and train) rows
                  (known_val, ~known_val, ~known_val))  # test and unlabeled rows
        n = data.num_nodes
        for p, (known, evaluated, rows) in enumerate(passes):
            if not bool(rows.any()):
                continue
            if self.variant == "ff-la":  # the C candidates as C stacked copies: one pass
                view = self._eval_view_la(data, p, known, evaluated)
                total = self._walk((id(data), p), view, trained, used,
                                   lambda h: goodness(h, self.theta).view(self.C, n).t())
                scores[rows] = total[rows]
                continue
            for c in range(self.C):
                view = self._eval_view(data, c, known, evaluated)
                total = self._walk((id(data), p, c), view, trained, used, lambda h: goodness(h[:n], self.theta))
                scores[rows, c] = total[rows]
        return scores
