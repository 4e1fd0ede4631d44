"""ForwardGNN (Park et al., ICLR 2024): every graph layer learns from its own forward-pass loss.

Layer ``l`` (see :class:`~gnnkit.strategies.forward_losses.LayerStack` for how a gnnkit model maps
to layers ``f_0..f_{L−1}``) takes ``z_l = ‖·‖₂-normalized, detached f_{l−1}(z_{l−1})`` (``z_0``: the
row-normalized features), has its own optimizer (``trainer.make_optimizer``) and its own loss;
no gradient crosses layers, so only the layer in training holds activations.

Variants (``variant=``):

* ``sf`` (default): ``C`` virtual class nodes with fixed seeded ``N(0, 1)`` features are appended;
  each training node is linked both ways to its class's node (validation/test nodes are not); the
  adjacency is normalized on this augmented graph. Logits of node ``i`` at layer ``l``: ``h_i ·
  h_{vn_c}``, cross-entropy on the training nodes. Score: ``log mean_l softmax(logits_l)``.
* ``ff-la``: the label block (one-hot for training nodes, ``1/C`` elsewhere) is appended to the
  input; goodness ``Σh² − θ``; BCE raises it for the true label and lowers it for each of ``k``
  wrong labels (default all ``C − 1``, drawn once per node). ``ff-vn``: the same loss, the label
  given by the virtual-node edges. Score for class ``c``: goodness summed over layers in the pass
  where the evaluated nodes carry ``c`` (validation rows: training labels known; test rows:
  training and validation labels known, as in the reference). Training rows carry their own
  label in those passes, so ``train_accuracy`` is no held-out figure for ``ff-*``.
* ``sf-top2loss``: ``sf`` with the top-down schedule below.

Schedules: ``sequential`` trains layer after layer; a layer stops at its own early stop on the
validation figure of the combined prediction of the layers so far (checked every ``val_every``
epochs, ``patience`` checks, at most ``layer_epochs`` epochs and an equal share of the Trainer's
remaining ``max_epochs``), then its best weights are restored. ``top2loss`` updates every layer
every step, layer ``j``'s loss on ``mean(f_j(s_j), s_{j+2}, …, s_L)`` with ``s`` the detached
normalized outputs of the previous step; one early stop; gradient clipping 1.0. When the schedule
ends the strategy stops the Trainer and hands it the final model as its best (the Trainer then
restores and tests exactly that model).

Cached aggregation (``cache=``): with a fixed layer input (sequential schedule, full batch,
GCN/SAGE/head layers) ``agg(z, Â)`` is computed once per layer; ``"auto"`` uses it where valid,
``"on"`` raises where it is not, ``"off"`` never caches. From the cache a layer is row-wise, so a
training step computes the outputs of the rows its loss reads only (validation and test rows
hold no activation or gradient), and validation checks reuse the cache.

FF-LA's label streams (true label + ``k`` wrong ones in training, the ``C`` candidates at
prediction) share one graph: they run as one pass over stacked copies (``[S·n, d]`` rows,
block-diagonal ``Â``); layer 0's feature part ``Â z W`` is the same in every copy and computed once. Under a subgraph sampler (Cluster-GCN)
each batch carries the virtual nodes and its training nodes' edges to them, and the layer's input
is recomputed on the batch's subgraph by the frozen layers below.

Modules beside this one: ``forward_graph`` (inputs, virtual nodes, the ``View`` of a graph),
``forward_losses`` (layers and local losses), ``forward_predict`` (the prediction rule).
"""
from __future__ import annotations

import math
from typing import List, Optional

import torch
from torch import Tensor

from ..errors import GnnkitError
from .base import Strategy
from .forward_graph import (ForwardViews, View, check_labels, feature_shift, l2_normalize, l2_normalize_,
                            virtual_node_features, wrong_labels)
from .forward_losses import LayerStack, ff_loss, sf_loss, sf_loss_parts
from .forward_predict import ForwardPrediction

VARIANTS = ("sf", "ff-la", "ff-vn", "sf-top2loss")
SCHEDULES = ("sequential", "top2loss")
CACHE = ("auto", "on", "off")


class ForwardLearning(ForwardPrediction, ForwardViews, Strategy):
    """ForwardGNN as a strategy; see the module docstring. Reference defaults throughout."""

    name = "forward"

    def model_out_dim(self, num_classes: int, hidden: int) -> int:
        """Every layer of the reference network is ``hidden`` wide (no classifier head)."""
        return hidden
    manages_stopping = True

    def __init__(self, variant: str = "sf", schedule: Optional[str] = None, last_layer_only: bool = False,
                 patience: int = 100, val_every: int = 2, layer_epochs: int = 1000, theta: float = 2.0,
                 num_negs: Optional[int] = None, cache: str = "auto", grad_clip: Optional[float] = None):
        if variant not in VARIANTS:
            raise GnnkitError(f"unknown forward variant {variant!r}; known: {', '.join(VARIANTS)}")
        schedule = schedule or ("top2loss" if variant == "sf-top2loss" else "sequential")
        if schedule not in SCHEDULES:
            raise GnnkitError(f"unknown forward schedule {schedule!r}; known: {', '.join(SCHEDULES)}")
        self.variant = "sf" if variant == "sf-top2loss" else variant
        if schedule == "top2loss" and self.variant != "sf":
            raise GnnkitError("the top2loss schedule is defined for the sf variant only")
        if cache not in CACHE:
            raise GnnkitError(f"--forward-cache must be one of {', '.join(CACHE)}, got {cache!r}")
        for label, v in (("patience", patience), ("val_every", val_every), ("layer_epochs", layer_epochs)):
            if v < 1:
                raise GnnkitError(f"forward {label} must be >= 1, got {v}")
        if num_negs is not None and num_negs < 1:
            raise GnnkitError(f"--forward-num-negs must be >= 1, got {num_negs}")
        self.schedule, self.last_layer_only, self.patience = schedule, last_layer_only, patience
        self.val_every, self.layer_epochs, self.theta, self.num_negs = val_every, layer_epochs, theta, num_negs
        self.cache = cache
        self.grad_clip = grad_clip if grad_clip is not None else (1.0 if schedule == "top2loss" else None)
        self.stack: Optional[LayerStack] = None

    # -- setup ----------------------------------------------------------------------------------------
    def configure(self, trainer, model) -> None:
        if trainer.world_size > 1:
            raise GnnkitError("the forward strategy runs in one process (its per-layer updates are not synchronized)")
        data = trainer.data
        self.C = check_labels(data.y, getattr(data, "num_classes", None))
        self.stack = LayerStack(model, label_dim=self.C if self.variant == "ff-la" else 0).to(trainer.device)
        self.L = self.stack.num_layers
        self.optimizers = [trainer.make_optimizer(self.stack.parameters_of(l)) for l in range(self.L)]
        self.shift = feature_shift(data.x)
        seed = int(trainer.seed) * 1_000_003
        self.vn = (virtual_node_features(self.C, data.x.shape[1], seed + 1).to(trainer.device)
                   if self.variant in ("sf", "ff-vn") else None)
        self.k = None if self.variant == "sf" else min(self.num_negs or self.C - 1, self.C - 1)
        self.neg = wrong_labels(data.y, self.C, self.k, seed + 2) if self.k else None
        if self.schedule == "sequential" and trainer.max_epochs < self.L:
            raise GnnkitError(f"the sequential schedule trains {self.L} layers one after another: "
                              f"max_epochs must be at least {self.L}, got {trainer.max_epochs}")
        self.layer = self.layer_epochs_done = self.epochs_used = self.bad = 0
        self.best, self.best_state, self.done, self.states = None, None, False, None
        self.budget = self._next_budget(trainer)
        self._fixed = self._full = self._memo = None
        self._prefix, self._graphs = {}, {}

    def _next_budget(self, trainer) -> int:
        remaining = trainer.max_epochs - self.epochs_used
        if self.schedule == "top2loss":
            return max(1, min(self.layer_epochs, remaining))
        return max(1, min(self.layer_epochs, remaining // (self.L - self.layer)))

    # -- layer inputs ---------------------------------------------------------------------------------
    @torch.no_grad()
    def layer_inputs(self, view: View, l: int) -> list:
        """Inputs ``(z_l, zℓ)`` of layer ``l`` per stream (one when shared), without autograd history.

        Memory: a cacheable frozen layer aggregates, then drops its input before the transform,
        and ReLU and normalization run in place, so at most two ``[rows, width]`` tensors per
        stream are alive at once (input + aggregation, then aggregation + output)."""
        ins = [self._first_input(view, k) for k in range(1 if view.shared_input else view.streams)]
        for i in range(l):
            for k in range(len(ins)):
                (z, zl), ins[k] = ins[k], None
                if self.cache != "off" and self.stack.cacheable(i):
                    agg = self.stack.aggregate(i, z, view.graph(k, i))
                    lagg = self.stack.label_aggregate(zl, view.label_graph(k)) if zl is not None else None
                    z = zl = None
                    h = self.stack(i, None, None, agg=agg, label_agg=lagg)
                    agg = lagg = None
                else:
                    h = self.stack(i, z, view.graph(k, i), zl, label_adj=view.label_graph(k))
                ins[k] = (l2_normalize_(h), None)
        return ins

    def layer_outputs(self, view: View, l: int, ins: list, aggs: Optional[list] = None) -> List[Tensor]:
        """``f_l`` of every stream, with autograd (from cached aggregations when ``aggs``)."""
        outs = []
        for k in range(view.streams):
            z, zl = (None, None) if aggs is not None else (ins[0] if view.shared_input else ins[k])
            agg, lagg = aggs[k] if aggs is not None else (None, None)
            outs.append(self.stack(l, z, view.graph(k, l), zl, agg=agg, label_agg=lagg, label_adj=view.label_graph(k)))
        return outs

    def local_loss(self, view: View, outs: List[Tensor], rows: Tensor, y: Tensor, weight=None) -> Tensor:
        if self.variant == "sf":
            return sf_loss(outs[0], view.n, rows, y, weight)
        if view.copies > 1:  # stacked copies: copy 0 carries the true label, copies 1.. the wrong ones
            outs = list(outs[0].view(view.copies, view.n, -1).unbind(0))
        return ff_loss(outs, rows, self.theta, weight)

    @torch.no_grad()
    def _aggregations(self, view: View, l: int, ins: list) -> list:
        out, seen = [], {}
        for k in range(view.streams):
            z, zl = ins[0] if view.shared_input else ins[k]
            la = self.stack.label_aggregate(zl, view.label_graph(k)) if zl is not None else None
            key = (id(z), id(view.graph(k, l)))
            if key not in seen:  # one aggregation per distinct (input, graph)
                seen[key] = self.stack.aggregate(l, z, view.graph(k, l))
            out.append((seen[key], la))
        return out

    def _caching(self, full: bool, l: int) -> bool:
        if self.cache == "off":
            return False
        valid = self.schedule == "sequential" and full and self.stack.cacheable(l)
        if self.cache == "on" and not valid:
            why = ("the top2loss schedule changes every layer's input each step" if self.schedule == "top2loss" else
                   "each batch is a different subgraph" if not full else f"layer {l} is not a GCN/SAGE layer")
            raise GnnkitError(f"--forward-cache on: cached aggregation would be wrong here ({why})")
        return valid

    # -- training -------------------------------------------------------------------------------------
    def _update(self, l: int, loss: Tensor) -> None:
        if not torch.isfinite(loss):
            raise GnnkitError(f"layer {l}'s loss became {float(loss)}; lower the learning rate")
        opt = self.optimizers[l]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if self.grad_clip:
            torch.nn.utils.clip_grad_norm_(self.stack.parameters_of(l), self.grad_clip)
        opt.step()

    def step(self, trainer, batch) -> dict:
        if self.done:
            return {"loss": 0.0}
        full = getattr(batch, "n_id", None) is None
        weight = getattr(batch, "loss_weight", None)
        rows = batch.loss_index
        if self.schedule == "top2loss":
            return {"loss": self._step_top2loss(trainer, batch, full, rows, weight)}
        l = self.layer
        if full:
            view = self._full_view(trainer)
            if self._fixed is None or self._fixed[0] != l:
                self._fixed = (l, self.layer_inputs(view, l), None)
            if self._fixed[2] is None and self._caching(True, l):
                self._fixed = (l, None, self._aggregations(view, l, self._fixed[1]))
            y = trainer.data.y[rows]
            if self._fixed[2] is not None:  # cached: compute the rows the loss reads, and only those
                loss = self._cached_loss(view, l, self._fixed[2], rows, y, weight)
                self._update(l, loss)
                return {"loss": float(loss.detach()), "layer": l}
            outs = self.layer_outputs(view, l, self._fixed[1], None)
        else:
            self._caching(False, l)
            view = self._batch_view(trainer, batch)
            outs = self.layer_outputs(view, l, self.layer_inputs(view, l))
            y = batch.y[rows]
        loss = self.local_loss(view, outs, rows, y, weight)
        self._update(l, loss)
        return {"loss": float(loss.detach()), "layer": l}

    def _cached_loss(self, view: View, l: int, aggs: list, rows: Tensor, y: Tensor, weight) -> Tensor:
        """Layer ``l``'s local loss from its cached aggregations, computing only the rows it reads.

        From a cached aggregation a layer is row-wise (``h_i = ReLU(t(a_i))``), so SF needs the
        outputs of the loss rows and of the ``C`` virtual rows (two separate products: logits
        ``h_rows · h_vnᵀ``), FF-LA those of the loss rows in every stacked copy (``[S·m]``), FF-VN
        those of the loss rows of each stream. Validation and test rows then hold no activation
        or gradient in a training step; the loss and its gradients are those of the full pass.
        """
        n, S = view.n, view.copies
        if self.variant == "sf":
            h = self.layer_outputs(view, l, None, self._cut(aggs, {n + self.C: rows}))[0]
            vn = torch.arange(n, n + self.C, device=rows.device)
            return sf_loss_parts(h, self.layer_outputs(view, l, None, self._cut(aggs, {n + self.C: vn}))[0], y, weight)
        if S > 1:
            pick = {n: rows, S * n: (rows + n * torch.arange(S, device=rows.device)[:, None]).reshape(-1)}
        else:
            pick = {n + (self.C if self.vn is not None else 0): rows}
        sub = view._replace(n=rows.numel())
        return self.local_loss(sub, self.layer_outputs(sub, l, None, self._cut(aggs, pick)), None, y, weight)

    @staticmethod
    def _cut(aggs: list, pick: dict) -> list:
        """``aggs`` (per stream: ``(feature aggregation tuple, label aggregation)``) at the rows
        ``pick[number of rows]`` (a cached tensor's rows say which graph or copies it lives on)."""
        def cut(t):
            if t is None:
                return None
            if t.shape[0] not in pick:
                raise GnnkitError(f"internal: no loss rows for a cached aggregation of {t.shape[0]} rows")
            return t.index_select(0, pick[t.shape[0]])

        return [(tuple(cut(a) for a in agg), cut(la)) for agg, la in aggs]

    def _step_top2loss(self, trainer, batch, full, rows, weight) -> float:
        if not full:
            raise GnnkitError("the top2loss schedule keeps every node's state between steps: use the full sampler")
        self._caching(True, 0)
        view = self._full_view(trainer)
        if self.states is None:
            self.states = self._bottom_up(view)
        y, states, new, total = trainer.data.y[rows], self.states, [self.states[0]], 0.0
        for j in range(self.L):
            out = self.stack(j, states[j], view.adj(0))
            emb = torch.stack([out] + states[j + 2:]).mean(0) if j + 2 <= self.L else out
            loss = sf_loss(emb, view.n, rows, y, weight)
            self._update(j, loss)
            total += float(loss.detach())
            new.append(l2_normalize(out.detach()))
        self.states = new
        return total

    @torch.no_grad()
    def _bottom_up(self, view: View) -> List[Tensor]:
        """``[z_0, s_1, …, s_L]``: ``s_{l+1} = ‖f_l(s_l)‖``-normalized, one fresh pass."""
        states = [l2_normalize(view.x)]
        for l in range(self.L):
            states.append(l2_normalize(self.stack(l, states[-1], view.adj(0))))
        return states

    # -- schedule -------------------------------------------------------------------------------------
    def on_epoch_end(self, trainer, epoch: int, logs: dict) -> None:
        if self.done:
            return
        self.layer_epochs_done += 1
        self.epochs_used += 1
        check = self.layer_epochs_done % self.val_every == 0
        end = self.layer_epochs_done >= self.budget or epoch + 1 >= trainer.max_epochs
        if check or end:
            value = float(trainer.task.evaluate(trainer, splits=("val",))[trainer.monitor])
            better = self.best is None or (value > self.best if trainer.higher_is_better else value < self.best)
            if better and not math.isnan(value):
                self.best, self.bad = value, 0
                self.best_state = (self.stack.layer_state(self.layer) if self.schedule == "sequential" else
                                   {k: v.detach().clone() for k, v in self.stack.net.state_dict().items()})
            elif check:
                self.bad += 1
        if self.bad >= self.patience or end:
            self._end_phase(trainer)

    def _end_phase(self, trainer) -> None:
        if self.schedule == "top2loss":
            if self.best_state is not None:
                self.stack.net.load_state_dict(self.best_state)
            self.states = None
            return self._complete(trainer)
        l = self.layer
        if self.best_state is not None:
            self.stack.load_layer_state(l, self.best_state)
        if self._fixed is not None and self._fixed[0] == l and l + 1 < self.L:
            with torch.no_grad():  # the next layer's fixed input, from the restored layer
                view = self._full
                ins = self._fixed[1] or [None] * view.streams
                outs = self.layer_outputs(view, l, ins, self._fixed[2])
                keep = outs[:1] if view.shared_input else outs
                self._fixed = (l + 1, [(l2_normalize(h), None) for h in keep], None)
        self.layer, self.layer_epochs_done, self.best, self.best_state, self.bad = l + 1, 0, None, None, 0
        if self.layer == self.L:
            return self._complete(trainer)
        self.budget = self._next_budget(trainer)

    def _complete(self, trainer) -> None:
        """Stop the Trainer and make the final model its best (restored and tested by the Trainer)."""
        self.done, self._fixed, self._prefix = True, None, {}
        trainer.should_stop = True
        trainer.mark_best(trainer.task.evaluate(trainer))

    # -- checkpoints ----------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {"variant": self.variant, "schedule": self.schedule, "layer": self.layer,
                "layer_epochs_done": self.layer_epochs_done, "epochs_used": self.epochs_used, "budget": self.budget,
                "best": self.best, "bad": self.bad, "done": self.done, "best_state": self.best_state,
                "states": self.states, "optimizers": [o.state_dict() for o in self.optimizers],
                "label_lin": self.stack.label_lin.state_dict() if self.stack.label_lin is not None else None}

    def load_state_dict(self, state: dict) -> None:
        if (state.get("variant"), state.get("schedule")) != (self.variant, self.schedule):
            raise GnnkitError(f"checkpoint holds forward variant {state.get('variant')}/{state.get('schedule')}, "
                              f"this run is {self.variant}/{self.schedule}")
        for key in ("layer", "layer_epochs_done", "epochs_used", "budget", "best", "bad", "done", "best_state",
                    "states"):
            setattr(self, key, state[key])
        for opt, s in zip(self.optimizers, state["optimizers"]):
            opt.load_state_dict(s)
        if state["label_lin"] is not None:
            self.stack.label_lin.load_state_dict(state["label_lin"])
        self._fixed = self._memo = None
        self._prefix = {}

    # -- command line ---------------------------------------------------------------------------------
    @classmethod
    def add_args(cls, parser) -> None:
        from ..plugins import add_option

        add_option(parser, "--forward-variant", default="sf", choices=VARIANTS,
                   help="forward strategy: sf (default), ff-la, ff-vn or sf-top2loss")
        add_option(parser, "--forward-schedule", default=None, choices=SCHEDULES,
                   help="sequential (layer by layer; default) or top2loss (sf-top2loss's)")
        add_option(parser, "--forward-last-layer-only", action="store_true",
                   help="forward strategy: predict from the last layer alone (default: all layers)")
        add_option(parser, "--forward-patience", type=int, default=100,
                   help="forward strategy: early stop after N validation checks without improvement (100)")
        add_option(parser, "--forward-val-every", type=int, default=2,
                   help="forward strategy: validation check every N epochs of a layer (2)")
        add_option(parser, "--forward-layer-epochs", type=int, default=1000,
                   help="forward strategy: at most N epochs per layer (top2loss: in all) (1000)")
        add_option(parser, "--forward-theta", type=float, default=2.0, help="ff-* goodness threshold θ (2.0)")
        add_option(parser, "--forward-num-negs", type=int, default=None,
                   help="ff-*: wrong labels per training node (default all C-1)")
        add_option(parser, "--forward-cache", default="auto", choices=CACHE,
                   help="cached aggregation where the layer input is fixed: auto (default), on, off")

    @classmethod
    def from_args(cls, args) -> "ForwardLearning":
        return cls(variant=args.forward_variant, schedule=args.forward_schedule,
                   last_layer_only=args.forward_last_layer_only, patience=args.forward_patience,
                   val_every=args.forward_val_every, layer_epochs=args.forward_layer_epochs,
                   theta=args.forward_theta, num_negs=args.forward_num_negs, cache=args.forward_cache)
