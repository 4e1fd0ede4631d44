"""ForwardGNN (Park et al., ICLR 2024) as a strategy: every graph layer learns from its own loss.

Layer ``l`` (see :class:`~.layers.LayerStack` for how a gnnkit model maps to layers
``f_0..f_{L−1}``) takes ``z_l = ‖·‖₂-normalized, detached f_{l−1}(z_{l−1})`` (``z_0``: the
row-normalized features), has its own optimizer (``ctx.make_optimizer``) and its own loss
(:mod:`.losses`); no gradient crosses layers, so only the layer in training holds activations.
Like Lightning's manual optimization, :meth:`ForwardLearning.step` runs its own
``zero_grad/backward/step`` per layer, and :meth:`ForwardLearning.on_epoch_end` tells the loop,
through the :class:`~gnnkit.context.Control` it returns, when training ends and which weights are
the selected model; the strategy never assigns to the loop or the model.

Variants (``variant=``):

* ``sf`` (default): ``C`` virtual class nodes with fixed seeded ``N(0, 1)`` features are appended;
  each training node is linked both ways to its class's node (validation/test nodes are not); the
  adjacency is normalized on this augmented graph. Logits of node ``i`` at layer ``l``: ``h_i ·
  h_{vn_c}``, cross-entropy on the training nodes. Score: ``log mean_l softmax(logits_l)``.
* ``ff-la``: the label block (one-hot for training nodes, ``1/C`` elsewhere) is appended to the
  input; goodness ``Σh² − θ``; BCE raises it for the true label and lowers it for each of ``k``
  wrong labels (default all ``C − 1``, drawn once per node). ``ff-vn``: the same loss, the label
  given by the virtual-node edges. Prediction: :mod:`.predict`.
* ``sf-top2loss``: ``sf`` with the top-down schedule: every layer updates every step, layer
  ``j``'s loss on ``mean(f_j(s_j), s_{j+2}, …, s_L)`` with ``s`` the detached normalized outputs
  of the previous step; one early stop; gradient clipping 1.0.

Schedules: :mod:`.schedule`. When the schedule ends, ``on_epoch_end`` returns ``Control(stop=True,
select=<figures of the final model>)``: the loop stops and restores and tests exactly that model.

FF-LA's label streams share one graph and run as one pass over stacked copies (:mod:`.graphs`).
Under a subgraph sampler (Cluster-GCN) each batch carries the virtual nodes and its training
nodes' edges to them, and the layer's input is recomputed on the batch's subgraph by the frozen
layers below. Cached aggregation: :mod:`.passes`.

Mixed precision (``ctx.precision``): training steps, the schedule's checks and prediction run under
autocast (layer inputs and cached aggregations then held in the half type), the losses in float32,
each layer's backward outside autocast and, for ``"16-mixed"``, through its own gradient scaler.
"""
from __future__ import annotations

from typing import List, Optional

import torch
from torch import Tensor

from ... import precision as prec
from ...context import Control
from ...errors import GnnkitError
from ...samplers.loader import derive_seed
from ..base import Strategy
from .graphs import GraphViews, LabelSetup
from .inputs import check_labels, feature_shift, l2_normalize, virtual_node_features, wrong_labels
from .layers import LayerStack
from .losses import sf_loss
from .passes import CACHE, FixedInput, LayerPasses
from .predict import Predictor
from .schedule import SCHEDULES, Schedule

VARIANTS = ("sf", "ff-la", "ff-vn", "sf-top2loss")
SPLITS = ("train", "val", "test")


class ForwardLearning(Strategy):
    """ForwardGNN as a strategy; see the module docstring. Reference defaults throughout."""

    name = "forward"
    manages_stopping = True
    supports_escape = False  # no classifier head: the last layer is scored by goodness (strategies.base)

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
        self._optims: List[torch.optim.Optimizer] = []
        self._scalers: list = []
        self._precision, self._device = "32", torch.device("cpu")

    def model_out_dim(self, num_classes: int, hidden: int) -> int:
        """Every layer of the reference network is ``hidden`` wide (no classifier head)."""
        return hidden

    def optimizers(self) -> list:
        """One optimizer per layer (layer 0's includes FF-LA's label weights)."""
        return list(self._optims)

    # -- setup ----------------------------------------------------------------------------------------
    @staticmethod
    def check_run(ctx) -> None:
        """Refuse, in one line, a run the forward strategy cannot train: another task than node
        classification (its local losses compare each node with its class label: no node graph and
        features for graph classification or events, no node labels for link prediction), several
        processes, weighted edges. The same refusal in every precision."""
        from ...samplers.edges import link_edges_of

        if ctx.graph is None or ctx.features is None or link_edges_of(ctx) is not None:
            raise GnnkitError("the forward strategy trains node classification only (its layer losses compare "
                              "nodes with their class labels): train this task with --strategy backprop")
        if ctx.world_size > 1:
            raise GnnkitError("the forward strategy runs in one process (its per-layer updates are not synchronized)")
        if ctx.graph.edge_weight() is not None:  # its augmented views are built from unweighted edges
            raise GnnkitError("the forward strategy does not use edge weights yet: drop data.edge_weight "
                              "or train with --strategy backprop")

    def configure(self, ctx, model) -> None:
        self.check_run(ctx)
        y, x = ctx.features.get("y").to(ctx.device), ctx.features.get("x").to(ctx.device)
        C = check_labels(y, ctx.features.meta.get("num_classes"))
        self.stack = LayerStack(model, label_dim=C if self.variant == "ff-la" else 0).to(ctx.device)
        L = self.stack.num_layers
        self._optims = [ctx.make_optimizer(self.stack.parameters_of(l), fused=False) for l in range(L)]  # see make_optimizer
        self._scalers = [prec.make_scaler(ctx.precision, ctx.device) for _ in range(L)]
        prec.note_cpu_half(ctx.precision, ctx.device)  # float16 products slow on this CPU: said once
        self._precision, self._device = ctx.precision, ctx.device
        vn = (virtual_node_features(C, x.shape[1], derive_seed(ctx.seed, 1)).to(ctx.device)
              if self.variant in ("sf", "ff-vn") else None)
        k = None if self.variant == "sf" else min(self.num_negs or C - 1, C - 1)
        neg = wrong_labels(y, C, k, derive_seed(ctx.seed, 2)) if k else None
        self.sched = Schedule(self.schedule, L, ctx.max_epochs, self.patience, self.val_every, self.layer_epochs)
        views = GraphViews(ctx, LabelSetup(self.variant, C, k, vn, neg, feature_shift(x)))
        self.passes = LayerPasses(self.stack, views, self.theta, self.cache)
        self.predictor = Predictor(self.passes, self.last_layer_only)
        self.fixed: Optional[FixedInput] = None
        self.states: Optional[List[Tensor]] = None  # top2loss: the previous step's normalized outputs

    # -- training -------------------------------------------------------------------------------------
    def _update(self, l: int, loss: Tensor) -> None:
        if not torch.isfinite(loss):
            raise GnnkitError(f"layer {l}'s loss became {float(loss)}; lower the learning rate")
        opt = self._optims[l]
        opt.zero_grad(set_to_none=True)
        prec.backward_step(loss, opt, self._scalers[l], self.stack.parameters_of(l), self.grad_clip)

    def _autocast(self):
        """The run's autocast (a no-op under ``"32"``)."""
        return prec.autocast(self._precision, self._device)

    def step(self, ctx, model, batch, task) -> dict:
        """One update of the layer in training (``top2loss``: of every layer) on ``batch``: the whole
        graph (``batch.n_id is None``) or a subgraph batch (Cluster-GCN). The loss is each layer's
        local loss (:mod:`.losses`) on ``batch.loss_index`` (weighted by ``batch.loss_weight``), not
        the task's; ``model`` is reached through the layer stack built at :meth:`configure`."""
        with self._autocast():
            return self._step(batch)

    def _step(self, batch) -> dict:
        if self.sched.done:
            return {"loss": 0.0}
        full = batch.n_id is None
        rows, weight = batch.loss_index, batch.loss_weight
        if not self.sched.sequential:
            return {"loss": self._step_top2loss(full, rows, weight)}
        l, passes = self.sched.layer, self.passes
        if full:
            view = passes.views.full()
            if self.fixed is None or self.fixed.layer != l:
                self.fixed = FixedInput(l, passes.layer_inputs(view, l))
            if self.fixed.aggregations is None and passes.caching(True, True, l):
                self.fixed = FixedInput(l, None, passes.aggregations(view, l, self.fixed.inputs))
            y = passes.views.node("y", rows)
            if self.fixed.aggregations is not None:  # cached: compute the rows the loss reads, and only those
                loss = passes.cached_loss(view, l, self.fixed.aggregations, rows, y, weight)
                self._update(l, loss)
                return {"loss": float(loss.detach()), "layer": l}
            outs = passes.layer_outputs(view, l, self.fixed.inputs, None)
        else:
            passes.caching(True, False, l)
            view = passes.views.batch(batch)
            outs = passes.layer_outputs(view, l, passes.layer_inputs(view, l))
            y = batch.y[rows]
        loss = passes.local_loss(view, outs, rows, y, weight)
        self._update(l, loss)
        return {"loss": float(loss.detach()), "layer": l}

    def _step_top2loss(self, full: bool, rows: Tensor, weight) -> float:
        if not full:
            raise GnnkitError("the top2loss schedule keeps every node's state between steps: use the full sampler")
        passes = self.passes
        passes.caching(False, True, 0)
        view = passes.views.full()
        if self.states is None:
            self.states = passes.bottom_up(view)
        y, states, new, total = passes.views.node("y", rows), self.states, [self.states[0]], 0.0
        L = self.sched.num_layers
        for j in range(L):
            out = self.stack(j, states[j], view.adj(0))
            emb = torch.stack([out] + states[j + 2:]).mean(0) if j + 2 <= L else out
            loss = sf_loss(emb, view.n, rows, y, weight)
            self._update(j, loss)
            total += float(loss.detach())
            new.append(l2_normalize(out.detach()))
        self.states = new
        return total

    # -- schedule -------------------------------------------------------------------------------------
    def on_epoch_end(self, ctx, model, epoch: int, evaluate) -> Optional[Control]:
        """Validation checks of the schedule; ``Control(stop, select)`` once the last phase ends."""
        with self._autocast():
            return self._check(ctx, epoch, evaluate)

    def _check(self, ctx, epoch: int, evaluate) -> Optional[Control]:
        sched = self.sched
        if sched.done:
            return None
        check, end = sched.tick(epoch)
        if check or end:
            value = float(evaluate(("val",))[ctx.monitor])
            sched.record(value, ctx.higher_is_better, check, self._snapshot)
        if not sched.phase_over(end):
            return None
        return self._end_phase(evaluate)

    def _snapshot(self):
        if self.sched.sequential:
            return self.stack.layer_state(self.sched.layer)
        return {k: v.detach().clone() for k, v in self.stack.net.state_dict().items()}

    def _end_phase(self, evaluate) -> Optional[Control]:
        sched = self.sched
        if not sched.sequential:
            if sched.best_state is not None:
                self.stack.net.load_state_dict(sched.best_state)
            self.states = None
            return self._complete(evaluate)
        l = sched.layer
        if sched.best_state is not None:
            self.stack.load_layer_state(l, sched.best_state)
        fixed = self.fixed
        if fixed is not None and fixed.layer == l and l + 1 < sched.num_layers:
            with torch.no_grad():  # the next layer's fixed input, from the restored layer
                view = self.passes.views.full()
                ins = fixed.inputs or [None] * view.streams
                outs = self.passes.layer_outputs(view, l, ins, fixed.aggregations)
                keep = outs[:1] if view.shared_input else outs
                self.fixed = FixedInput(l + 1, [(l2_normalize(h), None) for h in keep])
        sched.next_layer()
        return self._complete(evaluate) if sched.done else None

    def _complete(self, evaluate) -> Control:
        """The schedule is over: stop, and make the final model the selected one."""
        self.sched.done, self.fixed = True, None
        self.predictor.forget()
        return Control(stop=True, select=dict(evaluate(SPLITS)))

    # -- evaluation -----------------------------------------------------------------------------------
    def predict(self, ctx, model) -> Tensor:
        """``[N, C]`` scores of every node (:mod:`.predict`), float32."""
        with self._autocast():
            return prec.as_float(self.predictor.predict(self.sched, self.fixed))

    # -- checkpoints ----------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {"variant": self.variant, "schedule": self.schedule, **self.sched.state_dict(), "states": self.states,
                "optimizers": [o.state_dict() for o in self._optims],
                "scalers": [s.state_dict() for s in self._scalers if s is not None],
                "label_lin": self.stack.label_lin.state_dict() if self.stack.label_lin is not None else None}

    def load_state_dict(self, state: dict) -> None:
        if (state.get("variant"), state.get("schedule")) != (self.variant, self.schedule):
            raise GnnkitError(f"checkpoint holds forward variant {state.get('variant')}/{state.get('schedule')}, "
                              f"this run is {self.variant}/{self.schedule}")
        self.sched.load_state_dict(state)
        self.states = state["states"]
        for opt, s in zip(self._optims, state["optimizers"]):
            opt.load_state_dict(s)
        for scaler, s in zip([s for s in self._scalers if s is not None], state.get("scalers") or []):
            scaler.load_state_dict(s)
        if state["label_lin"] is not None:
            self.stack.label_lin.load_state_dict(state["label_lin"])
        self.fixed = None
        self.predictor.forget()

    # -- command line ---------------------------------------------------------------------------------
    @classmethod
    def add_args(cls, parser) -> None:
        from ...plugins import add_option

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

