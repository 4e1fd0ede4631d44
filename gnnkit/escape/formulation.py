"""The mixed-integer program behind the ``milp`` escape (GDSolver's last-layer search).

Given the frozen head inputs ``H`` ``[n, d]`` of training nodes, their classes ``y`` ``[n]`` and a
linear head ``logits = H Wᵀ + b`` (``W`` ``[C, d]``, ``b`` ``[C]``), search a box around the head::

    maximize    Σ_i z_i  −  ε (‖Δ‖₁ + ‖δ‖₁)
    subject to  s_ik(Δ, δ) ≥ margin − M_ik (1 − z_i)        for chosen i, every k ≠ y_i
                s_ik(Δ, δ) = (w_y − w_k + Δ_y − Δ_k)·h_i + (b_y − b_k + δ_y − δ_k)
                |Δ_kj| ≤ r,  |δ_k| ≤ r,  z_i ∈ {0, 1}

so ``z_i = 1`` only if node ``i``'s true class beats every other class by ``margin`` at the new
point. ``Δ = P − Q`` with ``P, Q ∈ [0, r]`` makes the L1 term linear; ``ε = 1 / (4 r (C d + C))``
keeps the whole L1 term below 1/2, so it only breaks ties between points that satisfy the same
number of nodes, in favour of the smallest move (a move that disturbs the nodes left out least).

Big-M, per (node, class), from the box: over the box ``s_ik ≥ d_ik − ρ_i`` with ``d_ik`` the
current score difference and ``ρ_i = r (2‖h_i‖₁ + 2)``, so ``M_ik = margin − d_ik + ρ_i`` is the
smallest constant that leaves the constraint inactive when ``z_i = 0``; a pair with ``M_ik ≤ 0``
can never be violated and gets no row.

Chosen nodes (:func:`select_nodes`): up to ``budget`` training nodes, at least half of them (when
there are enough) violators (margin below ``margin``) that the box can still fix, closest to the
margin first, the rest "guards": satisfied nodes that the box could break, smallest margin first,
so that fixing some does not silently break others. Every other node is judged by the escape's
exact acceptance test on the whole training set.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Optional

import numpy as np
import torch
from torch import Tensor

from ..errors import GnnkitError

SOLVERS = {"cbc": "CBC", "highs": "HiGHS"}  # gnnkit name -> python-mip solver_name


def solver_name(name: str) -> str:
    """python-mip's name for ``cbc`` or ``highs``; anything else is an error (python-mip itself
    would silently fall back to CBC on an unknown name)."""
    key = str(name).lower()
    if key not in SOLVERS:
        raise GnnkitError(f"unknown MILP solver {name!r}; known: {', '.join(SOLVERS)}")
    return SOLVERS[key]


def margins(logits: Tensor, y: Tensor) -> Tensor:
    """``[n]`` score of the true class minus the best other class (negative: misclassified)."""
    true = logits.gather(1, y.view(-1, 1)).squeeze(1)
    others = logits.scatter(1, y.view(-1, 1), float("-inf"))
    return true - others.max(1).values


def select_nodes(h: Tensor, logits: Tensor, y: Tensor, *, radius: float, margin: float, budget: int) -> Tensor:
    """Indices (into the rows of ``h``) of the nodes that get a binary; see the module docstring."""
    m = margins(logits, y)
    reach = radius * (2 * h.abs().sum(1) + 2)
    violators = ((m < margin) & (m + reach >= margin)).nonzero().view(-1)
    guards = ((m >= margin) & (m - reach < margin)).nonzero().view(-1)
    violators = violators[torch.argsort(-m[violators], stable=True)]  # closest to the margin first
    guards = guards[torch.argsort(m[guards], stable=True)]  # weakest first
    n_v = min(violators.numel(), max(budget // 2, budget - guards.numel()))
    n_g = min(guards.numel(), budget - n_v)
    return torch.cat([violators[:n_v], guards[:n_g]])


@dataclass
class HeadSearch:
    """What one solve returned. ``delta_w`` ``[C, d]``/``delta_b`` ``[C]`` are ``None`` without a
    solution; ``satisfied`` counts chosen nodes at the margin before (``Δ = 0``) and at the
    solver's point (per its binaries)."""

    status: str
    seconds: float
    nodes: int = 0
    binaries: int = 0
    rows: int = 0
    columns: int = 0
    gap: Optional[float] = None
    satisfied_before: int = 0
    satisfied_after: Optional[int] = None
    delta_w: Optional[Tensor] = None
    delta_b: Optional[Tensor] = None
    notes: list = field(default_factory=list)


def search_head(h: Tensor, y: Tensor, weight: Tensor, bias: Tensor, *, radius: float, margin: float,
                solver: str = "cbc", time_limit: float = 10.0, threads: int = 1, seed: int = 0) -> HeadSearch:
    """Build and solve the program for the chosen nodes ``h`` ``[n, d]``, ``y`` ``[n]``.

    Never raises for solver trouble: a missing solver, a crash, infeasibility or a time-out
    without a solution come back as ``status`` with no ``delta_w``.
    """
    name = solver_name(solver)
    t0 = time.perf_counter()
    h64 = h.detach().double().cpu()
    w64, b64, yy = weight.detach().double().cpu(), bias.detach().double().cpu(), y.detach().cpu()
    n = h64.shape[0]
    logits = h64 @ w64.T + b64
    diff = logits.gather(1, yy.view(-1, 1)) - logits  # [n, C] d_ik = s_iy - s_ik
    reach = radius * (2 * h64.abs().sum(1, keepdim=True) + 2)  # [n, 1]
    big_m = margin - diff + reach  # [n, C]
    big_m.scatter_(1, yy.view(-1, 1), 0.0)  # no row for k = y
    sat_before = int((margins(logits, yy) >= margin).sum())
    out = HeadSearch(status="building", seconds=0.0, nodes=n, binaries=n, satisfied_before=sat_before)
    model = _start(name, out)
    if model is not None:
        try:
            model.verbose, model.threads, model.seed = 0, max(1, int(threads)), int(seed)
            pw, qw, z = _build(model, h64, yy, logits, diff, big_m, radius, margin, out)
            status = model.optimize(max_seconds=time_limit)
            out.status = status.name.lower()
            _read_solution(model, status, pw, qw, z, radius, weight.dtype, bias.dtype, out)
        except Exception as e:  # noqa: BLE001 - a solver crash must not end training
            out.status = "error"
            out.notes.append(f"{type(e).__name__}: {e}")
            out.delta_w = out.delta_b = None
    out.seconds = time.perf_counter() - t0
    return out


def _start(name: str, out: HeadSearch):
    """A python-mip model on solver ``name``, or ``None`` with ``out.status = "unavailable"``."""
    try:
        import mip
    except Exception as e:  # noqa: BLE001 - any import failure means "solver missing"
        out.status = "unavailable"
        out.notes.append(f"python-mip could not be imported: {e}")
        return None
    try:
        model = mip.Model(sense=mip.MAXIMIZE, solver_name=name)
    except Exception as e:  # noqa: BLE001 - a solver library that fails to load
        out.status = "unavailable"
        out.notes.append(f"{name} could not be started: {e}")
        return None
    if str(getattr(model, "solver_name", name)).lower() != name.lower():  # python-mip's silent fallback
        out.status = "unavailable"
        out.notes.append(f"python-mip started {model.solver_name} instead of {name}")
        return None
    return model


def _build(model, h64: Tensor, yy: Tensor, logits: Tensor, diff: Tensor, big_m: Tensor, radius: float,
           margin: float, out: HeadSearch):
    """Variables ``P, Q`` ``[C, d+1]`` (column ``d``: the bias), binaries ``z`` ``[n]``, objective,
    one row per (node, class) with ``M_ik > 0`` and the start point ``Δ = 0``; returns ``(P, Q, z)``."""
    import mip

    (n, d), c = h64.shape, logits.shape[1]
    pw = [[model.add_var(lb=0.0, ub=radius) for _ in range(d + 1)] for _ in range(c)]
    qw = [[model.add_var(lb=0.0, ub=radius) for _ in range(d + 1)] for _ in range(c)]
    z = [model.add_var(var_type=mip.BINARY) for _ in range(n)]
    eps = 1.0 / (4.0 * radius * c * (d + 1))
    moves = mip.xsum(v for row in pw + qw for v in row)
    model.objective = mip.xsum(z) - eps * moves
    hb = torch.cat([h64, torch.ones(n, 1, dtype=h64.dtype)], 1).numpy()  # [n, d+1] with the bias input
    pairs = (big_m > 0).nonzero().tolist()  # the only loop: over the bounded chosen set's rows
    for i, k in pairs:
        yi, coef = int(yy[i]), hb[i].tolist()
        variables = pw[yi] + qw[yi] + pw[k] + qw[k] + [z[i]]
        coeffs = coef + [-v for v in coef] + [-v for v in coef] + coef + [-float(big_m[i, k])]
        model.add_constr(mip.LinExpr(variables, coeffs) >= margin - float(diff[i, k]) - float(big_m[i, k]))
    out.rows, out.columns = len(pairs), 2 * c * (d + 1) + n
    current = (margins(logits, yy) >= margin).tolist()
    model.start = ([(z[i], 1.0 if current[i] else 0.0) for i in range(n)]
                   + [(v, 0.0) for row in pw + qw for v in row])
    return pw, qw, z


def _read_solution(model, status, pw, qw, z, radius: float, w_dtype, b_dtype, out: HeadSearch) -> None:
    """``Δ = P − Q`` (clipped to the box) into ``out`` when the solver has a solution."""
    import mip

    if model.num_solutions > 0 and status in (mip.OptimizationStatus.OPTIMAL, mip.OptimizationStatus.FEASIBLE):
        delta = np.array([[p.x - q.x for p, q in zip(prow, qrow)] for prow, qrow in zip(pw, qw)])
        delta = np.clip(delta, -radius, radius)
        d = delta.shape[1] - 1
        out.delta_w = torch.as_tensor(delta[:, :d], dtype=w_dtype)
        out.delta_b = torch.as_tensor(delta[:, d], dtype=b_dtype)
        out.satisfied_after = int(round(sum(v.x for v in z)))
        gap = model.gap
        out.gap = float(gap) if gap is not None and math.isfinite(gap) else None
