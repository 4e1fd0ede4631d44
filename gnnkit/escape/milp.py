"""``escape="milp"``: GDSolver's escape (Ashok et al., 2022), made safe, on python-mip.

When the validation metric has not improved for ``patience`` evaluations, the loop calls
:meth:`MILPEscape.on_plateau` (on rank 0 alone; it broadcasts what comes back). The escape then

1. computes the head inputs ``H = embed(x, Â)`` of every node (eval mode, no gradient; the
   model's layer-by-layer ``inference(..., return_embedding=True)`` on the whole graph's operator
   ``ctx.graph.adjacency(ctx.adj_norm, ctx.diag_lambda)``) and the current head's training
   objective ``J(W, b) = mean_{i ∈ train} CE(h_i Wᵀ + b, y_i) + (λ/2)(‖W‖² + ‖b‖²)`` (``λ`` the
   run's ``weight_decay``: the head's part of the L2 penalty that Adam/SGD's ``weight_decay`` adds
   to the gradient), and the validation figure that selects the model (``evaluate(("val",))``);
2. picks up to ``nodes`` training nodes (violators near the margin + guards) and solves the MILP
   of :mod:`gnnkit.escape.formulation` with ``solver`` (``cbc`` or ``highs``) within
   ``time_limit`` seconds: ``W + Δ``, ``b + δ`` boxed by ``radius``, maximize the number of chosen
   nodes whose class wins by ``margin``;
3. applies the solver's point and accepts it only if ``J`` decreases strictly **and** the
   validation figure does not get worse; otherwise the head's tensors are copied back from the
   saved ones, bit for bit. No solution (infeasible, time-out without incumbent, solver missing
   or crashed) leaves the weights untouched.

It returns an :class:`~gnnkit.context.EscapeResult`: the call's record and, when accepted, the new
head ``{"head.weight": W, "head.bias": b}`` (names as in ``model.named_parameters()``), which the
loop copies into the model on every rank; it then clears the strategy's optimizer state of those
two parameters (``strategy.reset_state``) and restarts its patience count.

Every call's record ``{epoch, solver, nodes, binaries, rows, status, gap, seconds,
satisfied_before, satisfied_after, train_loss_before, train_loss_after, objective_before,
objective_after, val_before, val_after, candidate_objective, candidate_val, accepted, reason}``
(``train_loss`` is the cross-entropy part of ``J``; the ``*_after`` figures are those of the
weights the call leaves, the ``candidate_*`` ones those of the solver's point) is also appended to
``self.records`` (which counts the calls against ``max_calls``) and logged in one line
(``tqdm.write`` with a progress bar, the ``gnnkit.escape`` logger always); with a ``log_dir`` the
records also go to ``log_dir/escape.json`` (written atomically).

Optimizer state: after an accepted point the optimizer's per-parameter state (Adam's moments and
step count, SGD's momentum) **for the head's weight and bias is cleared** (by the loop, through
``strategy.reset_state``), so the next step starts from the new point without momentum that was
gathered at the old one; other parameters keep their state and the learning rate is unchanged.
(The reference instead restarts a fresh optimizer at half the learning rate for the whole network.)
A rejected call changes no optimizer state.
"""
from __future__ import annotations

import logging
import math
import os
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from ..context import EscapeResult
from ..errors import GnnkitError
from ..fileio import atomic_write_json
from ..plugins import add_option
from .base import Escape
from .formulation import HeadSearch, margins, search_head, select_nodes, solver_name

log = logging.getLogger("gnnkit.escape")


class MILPEscape(Escape):
    """Search a box around the classifier head with a MILP solver on a plateau; keep only gains.

    Args:
        solver: ``"cbc"`` (ships with python-mip) or ``"highs"`` (needs ``highsbox``).
        radius: half-width of the box around every weight and bias (reference: 0.05).
        time_limit: solver seconds per call.
        nodes: training nodes that get a binary.
        margin: logit margin by which a node's class must win for its binary to be 1.
        max_calls: calls per fit; later plateaus are left alone.
        patience: evaluations without improvement of the validation metric that make a plateau.
        threads: solver threads.
    """

    name = "milp"

    def __init__(self, solver: str = "cbc", radius: float = 0.05, time_limit: float = 10.0, nodes: int = 96,
                 margin: float = 0.1, max_calls: int = 10, patience: int = 10, threads: int = 1):
        super().__init__()
        self.solver = str(solver).lower()
        solver_name(self.solver)  # unknown name -> GnnkitError now, not a silent CBC later
        checks = [(math.isfinite(radius) and radius > 0, f"escape radius must be > 0, got {radius}"),
                  (math.isfinite(time_limit) and time_limit > 0, f"escape time limit must be > 0 s, got {time_limit}"),
                  (int(nodes) >= 1, f"escape nodes must be >= 1, got {nodes}"),
                  (math.isfinite(margin) and margin >= 0, f"escape margin must be >= 0, got {margin}"),
                  (int(max_calls) >= 1, f"escape max calls must be >= 1, got {max_calls}"),
                  (int(patience) >= 1, f"escape patience must be >= 1, got {patience}"),
                  (int(threads) >= 1, f"escape threads must be >= 1, got {threads}")]
        for ok, msg in checks:
            if not ok:
                raise GnnkitError(msg)
        self.radius, self.time_limit = float(radius), float(time_limit)
        self.nodes, self.margin = int(nodes), float(margin)
        self.max_calls, self.patience, self.threads = int(max_calls), int(patience), int(threads)

    # -- the hook -------------------------------------------------------------------------------
    def on_plateau(self, ctx, model, evaluate, task) -> Optional[EscapeResult]:
        """One call (see the module docstring); ``None`` once ``max_calls`` calls were made."""
        if len(self.records) >= self.max_calls:
            return None
        head = head_of(model)
        record = self._escape(ctx, model, head, evaluate)
        state = None
        if record["accepted"]:  # the accepted point stays in the head; the loop copies the same values
            state = {name: p.detach().clone() for name, p in model.named_parameters()
                     if p is head.weight or p is head.bias}
        self.records.append(record)
        line = _describe(record)
        if ctx.progress:
            tqdm.write(line)
        log.info(line)
        if ctx.log_dir:
            atomic_write_json(os.path.join(ctx.log_dir, "escape.json"), self.records, indent=1)
        return EscapeResult(record, state)

    # -- one call ---------------------------------------------------------------------------------
    def _escape(self, ctx, model, head: nn.Linear, evaluate) -> dict:
        y = ctx.features.get("y")
        if y.dim() != 1:
            raise GnnkitError("the milp escape needs single-label classes (data.y of shape [N]), "
                              f"got data.y of shape {tuple(y.shape)}")
        with torch.no_grad():
            adj = ctx.graph.adjacency(ctx.adj_norm, ctx.diag_lambda)
            _, h_all = model.inference(ctx.features.get("x"), adj, batch_size=ctx.inference_batch_size,
                                       return_embedding=True)
        train = ctx.features.get("train_mask") & (y >= 0)
        h, yt = h_all[train].detach(), y[train]
        wd = float(ctx.weight_decay or 0.0)
        saved_w, saved_b = head.weight.detach().clone(), head.bias.detach().clone()
        loss0, obj0 = training_objective(h, yt, head, wd)
        val0 = self._val(ctx, evaluate)
        record = {"epoch": ctx.epoch, "solver": self.solver, "nodes": 0, "binaries": 0, "rows": 0,
                  "status": "skipped", "gap": None, "seconds": 0.0, "satisfied_before": 0, "satisfied_after": None,
                  "train_loss_before": loss0, "train_loss_after": loss0, "objective_before": obj0,
                  "objective_after": obj0, "val_before": val0, "val_after": val0, "candidate_objective": None,
                  "candidate_val": None, "accepted": False, "reason": ""}
        with torch.no_grad():
            idx = select_nodes(h, head(h), yt, radius=self.radius, margin=self.margin, budget=self.nodes)
        if idx.numel() == 0:
            record["reason"] = "no training node can change side within the radius"
            return record
        found = self.search(h[idx], yt[idx], head, ctx)
        record.update(nodes=found.nodes, binaries=found.binaries, rows=found.rows, status=found.status,
                      gap=found.gap, seconds=round(found.seconds, 4), satisfied_before=found.satisfied_before,
                      satisfied_after=found.satisfied_after)
        if found.delta_w is None:
            record["reason"] = "; ".join(found.notes) or f"solver returned no solution ({found.status})"
            return record
        if found.satisfied_after is not None and found.satisfied_after <= found.satisfied_before:
            record["reason"] = "the solver found no point that satisfies more chosen nodes"
            return record
        with torch.no_grad():
            head.weight.add_(found.delta_w.to(head.weight.device, head.weight.dtype))
            head.bias.add_(found.delta_b.to(head.bias.device, head.bias.dtype))
            record["satisfied_after"] = int((margins(head(h[idx]), yt[idx]) >= self.margin).sum())
        loss1, obj1 = training_objective(h, yt, head, wd)
        val1 = self._val(ctx, evaluate)
        record.update(train_loss_after=loss1, objective_after=obj1, val_after=val1, candidate_objective=obj1,
                      candidate_val=val1)
        if obj1 < obj0 and not _worse(val1, val0, ctx.higher_is_better):
            record.update(accepted=True, reason="training objective improved, validation did not drop")
            return record
        with torch.no_grad():  # revert bit for bit
            head.weight.copy_(saved_w)
            head.bias.copy_(saved_b)
        record.update(train_loss_after=loss0, objective_after=obj0, val_after=val0,
                      reason=(f"rejected: objective {obj0:.6g} -> {obj1:.6g}" if obj1 >= obj0 else
                              f"rejected: {ctx.monitor} {val0:.6g} -> {val1:.6g}"))
        return record

    def search(self, h, y, head: nn.Linear, ctx) -> HeadSearch:
        """The solver's candidate for the chosen nodes (a method so that tests can force one)."""
        return search_head(h, y, head.weight, head.bias, radius=self.radius, margin=self.margin, solver=self.solver,
                           time_limit=self.time_limit, threads=self.threads, seed=int(ctx.seed))

    @staticmethod
    def _val(ctx, evaluate) -> float:
        """The figure that selects the model, on the validation split."""
        return float(evaluate(("val",))[ctx.monitor])

    # -- command line -----------------------------------------------------------------------------
    @classmethod
    def add_args(cls, parser) -> None:
        for key, typ, default, text in OPTIONS:
            add_option(parser, "--escape-" + key.replace("_", "-"), type=typ, default=default,
                       help=f"milp escape: {text} (default {default})")

    @classmethod
    def from_args(cls, args) -> "MILPEscape":
        return cls(**{key: getattr(args, f"escape_{key}", default) for key, _, default, _ in OPTIONS})


# (constructor argument, type, default, help) of each --escape-* option
OPTIONS = [("solver", str, "cbc", "cbc or highs"),
           ("radius", float, 0.05, "box half-width around the head's weights and bias"),
           ("time_limit", float, 10.0, "solver seconds per call"),
           ("nodes", int, 96, "training nodes with a binary"),
           ("margin", float, 0.1, "logit margin by which a fixed node's class must win"),
           ("max_calls", int, 10, "calls per run"),
           ("patience", int, 10, "evaluations without validation improvement that trigger it")]


def head_of(model) -> nn.Linear:
    """The model's ``head``, which must be an ``nn.Linear``."""
    head = getattr(model, "head", None)
    if head is None:
        raise GnnkitError(f"the milp escape needs a model with a `head` (nn.Linear classifier); "
                          f"{type(model).__name__} has none")
    if not isinstance(head, nn.Linear):
        raise GnnkitError(f"the milp escape needs `model.head` to be an nn.Linear, got {type(head).__name__}")
    if head.bias is None:
        raise GnnkitError("the milp escape needs `model.head` with a bias (nn.Linear(..., bias=True))")
    return head


@torch.no_grad()
def training_objective(h, y, head: nn.Linear, weight_decay: float) -> tuple[float, float]:
    """``(CE, CE + (λ/2)(‖W‖² + ‖b‖²))`` of the head on frozen inputs ``h`` ``[n, d]``, in float64."""
    w, b = head.weight.double(), head.bias.double()
    ce = float(F.cross_entropy(h.double() @ w.T + b, y))
    return ce, ce + 0.5 * weight_decay * float((w * w).sum() + (b * b).sum())


def _worse(new: float, old: float, higher_is_better: bool) -> bool:
    if math.isnan(new):
        return not math.isnan(old)
    if math.isnan(old):
        return False
    return new < old if higher_is_better else new > old


def _describe(r: dict) -> str:
    gap = "n/a" if r["gap"] is None else f"{r['gap']:.3g}"
    return (f"milp escape @ epoch {r['epoch']}: {r['solver']} {r['status']} on {r['nodes']} nodes "
            f"({r['binaries']} binaries, {r['rows']} rows), gap {gap}, {r['seconds']:.2f}s, "
            f"satisfied {r['satisfied_before']} -> {r['satisfied_after']}, "
            f"train loss {r['train_loss_before']:.4f} -> {r['train_loss_after']:.4f}, "
            f"val {r['val_before']:.4f} -> {r['val_after']:.4f}, "
            f"{'accepted' if r['accepted'] else 'not accepted'}: {r['reason']}")
