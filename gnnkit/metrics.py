"""User metrics: a name, a function ``(predictions, targets) -> float`` and a declared direction.

A task reports its own figures (its ``metric``, ``loss``, ...) and any metrics the user adds with
``Task(metrics=[...])`` (or ``Trainer(metrics=[...])``): each is computed on every split the loop
evaluates and reported as ``"<split>_<name>"``; ``Trainer(metric="<name>")`` selects the model on
it. Model selection, early stopping and the escape's plateau and acceptance read the direction the
metric declares; a metric without a declared direction is refused when it is added, never guessed.

A metric may be given as:

* a :class:`Metric` ``Metric("macro_f1", fn, higher_is_better=True)``;
* the name of a registered metric (``"macro_f1"``; :func:`register_metric` adds one, and
  :data:`REGISTRY` lists them);
* any callable with a boolean ``higher_is_better`` attribute: a ``torchmetrics`` metric object, or
  a function decorated with ``@metric(higher_is_better=...)``. Its name is its ``name`` attribute,
  else the function's name, else the class name in snake case (``MulticlassF1Score`` ->
  ``multiclass_f1_score``).

What the function receives is the task's (see each task's docstring): node and graph
classification hand the split's logits ``[m, C]`` and labels ``[m]`` (graph targets ``[g, T]`` for
binary or multi-label sets, NaN where missing); temporal link prediction hands the link logits
``[P]`` of the scored pairs (true events and their negatives) and labels ``[P]`` (1 true, 0
negative). A tensor result must hold one number; NaN is allowed (an undefined figure never
selects a model).
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Union

import torch
import torch.nn.functional as F
from torch import Tensor

from .errors import GnnkitError

MetricFn = Callable[[Tensor, Tensor], Any]


@dataclass(frozen=True)
class Metric:
    """``fn(predictions, targets)`` reported as ``name``; ``higher_is_better`` declares its direction."""

    name: str
    fn: MetricFn
    higher_is_better: bool

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not re.fullmatch(r"[A-Za-z][A-Za-z0-9_@.\-]*", self.name):
            raise GnnkitError(f"a metric name is letters, digits and _@.- starting with a letter, got {self.name!r}")
        if not callable(self.fn):
            raise GnnkitError(f"metric {self.name!r}: its function is not callable ({type(self.fn).__name__})")
        if not isinstance(self.higher_is_better, bool):
            raise GnnkitError(f"metric {self.name!r}: higher_is_better must be True or False, "
                              f"got {self.higher_is_better!r}")

    def __call__(self, predictions: Tensor, targets: Tensor) -> float:
        """The figure as a Python float (a tensor result must hold one number)."""
        fn = self.fn
        if isinstance(fn, torch.nn.Module):  # a torchmetrics object: its state where the tensors are
            fn = fn.to(predictions.device)
            if hasattr(fn, "reset"):
                fn.reset()
        value = fn(predictions.detach(), targets.detach())
        if isinstance(value, Tensor):
            if value.numel() != 1:
                raise GnnkitError(f"metric {self.name!r} returned {value.numel()} numbers, expected one")
            value = value.item()
        try:
            return float(value)
        except (TypeError, ValueError):
            raise GnnkitError(f"metric {self.name!r} returned {type(value).__name__}, expected a number") from None


#: registered metrics by name (the built-in ones below and what :func:`register_metric` adds)
REGISTRY: dict[str, Metric] = {}


def register_metric(name: str, fn: MetricFn, *, higher_is_better: bool) -> Metric:
    """Register ``fn`` under ``name`` (refused when the name is taken by another function)."""
    m = Metric(name, fn, higher_is_better)
    old = REGISTRY.get(name)
    if old is not None and old != m:
        raise GnnkitError(f"a metric named {name!r} is already registered")
    REGISTRY[name] = m
    return m


def metric(*, higher_is_better: bool, name: str | None = None) -> Callable[[MetricFn], MetricFn]:
    """Decorator declaring a function's direction (and optionally its name)::

        @gnnkit.metrics.metric(higher_is_better=True)
        def macro_recall(logits, y): ...
    """
    def mark(fn: MetricFn) -> MetricFn:
        Metric(name or getattr(fn, "__name__", "metric"), fn, higher_is_better)  # checks the declaration
        fn.higher_is_better = higher_is_better
        if name is not None:
            fn.metric_name = name
        return fn
    return mark


def _default_name(obj: Any) -> str:
    for attr in ("metric_name", "name"):
        value = getattr(obj, attr, None)
        if isinstance(value, str) and value:
            return value
    if getattr(obj, "__name__", None) and obj.__name__ != "<lambda>":
        return obj.__name__
    if not hasattr(obj, "__name__"):  # an object: its class name in snake case
        return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", type(obj).__name__).lower()
    raise GnnkitError("a lambda has no name: give it one with gnnkit.metrics.Metric(name, fn, higher_is_better=...)")


def as_metric(spec: Union[Metric, str, MetricFn]) -> Metric:
    """A :class:`Metric` from any accepted form (module docstring); an undeclared direction is refused."""
    if isinstance(spec, Metric):
        return spec
    if isinstance(spec, str):
        if spec not in REGISTRY:
            raise GnnkitError(f"unknown metric {spec!r}; registered: {', '.join(sorted(REGISTRY))} "
                              "(or pass gnnkit.metrics.Metric(name, fn, higher_is_better=...))")
        return REGISTRY[spec]
    if not callable(spec):
        raise GnnkitError(f"a metric is a gnnkit.metrics.Metric, a registered name or a callable, "
                          f"got {type(spec).__name__}")
    name = _default_name(spec)
    direction = getattr(spec, "higher_is_better", None)
    if not isinstance(direction, bool):
        raise GnnkitError(f"metric {name!r} does not declare whether higher is better: wrap it as "
                          f"gnnkit.metrics.Metric({name!r}, fn, higher_is_better=True or False)")
    return Metric(name, spec, direction)


def as_metrics(specs: Iterable) -> list[Metric]:
    """:func:`as_metric` of each (one metric alone is accepted too); two with one name are refused."""
    if isinstance(specs, (Metric, str)) or callable(specs):
        specs = [specs]
    out: list[Metric] = []
    for m in map(as_metric, specs):
        if any(o.name == m.name for o in out):
            raise GnnkitError(f"two metrics are named {m.name!r}")
        out.append(m)
    return out


# -- built-in metrics ------------------------------------------------------------------------------
def _classes(logits: Tensor, y: Tensor) -> tuple[Tensor, Tensor, int]:
    """``(predicted, true, C)`` class ids: argmax of ``[m, C]`` logits, or ``logit > 0`` for ``[m]``."""
    if logits.dim() == 1:
        return (logits > 0).long(), y.view(-1).long(), 2
    if logits.dim() != 2:
        raise GnnkitError(f"expected logits [m, C] or [m], got {list(logits.shape)}")
    c = logits.size(1)
    return logits.argmax(1), y.view(-1).long(), c


def accuracy(logits: Tensor, y: Tensor) -> float:
    """Share of rows whose predicted class (argmax, or ``logit > 0`` for one column) is ``y``."""
    pred, true, _ = _classes(logits, y)
    return float((pred == true).double().mean()) if true.numel() else math.nan


def error_rate(logits: Tensor, y: Tensor) -> float:
    """``1 − accuracy``."""
    return 1.0 - accuracy(logits, y)


def macro_f1(logits: Tensor, y: Tensor) -> float:
    """Unweighted mean over classes of ``F1_c = 2 TP_c / (2 TP_c + FP_c + FN_c)``, over the classes
    that occur among the labels or the predictions (scikit-learn's ``f1_score(average="macro")``)."""
    pred, true, c = _classes(logits, y)
    if true.numel() == 0:
        return math.nan
    c = max(c, int(true.max()) + 1, int(pred.max()) + 1)
    tp = torch.bincount(true[pred == true], minlength=c).double()
    denom = torch.bincount(pred, minlength=c).double() + torch.bincount(true, minlength=c).double()
    present = denom > 0
    return float((2 * tp[present] / denom[present]).mean())


def cross_entropy(logits: Tensor, y: Tensor) -> float:
    """Mean softmax cross-entropy of ``[m, C]`` logits (binary cross-entropy for ``[m]``)."""
    if logits.dim() == 1:
        return float(F.binary_cross_entropy_with_logits(logits.double(), y.double()))
    return float(F.cross_entropy(logits.double(), y.view(-1).long()))


def _binary(fn):
    def figure(scores: Tensor, y: Tensor) -> float:
        from .temporal.metrics import average_precision, roc_auc

        if scores.dim() == 2 and scores.size(1) == 2:  # two-class logits: the log-odds of class 1
            scores = scores[:, 1] - scores[:, 0]
        if scores.dim() != 1:
            raise GnnkitError(f"expected binary scores [m] or two-class logits [m, 2], got {list(scores.shape)}")
        return {"ap": average_precision, "auc": roc_auc}[fn](scores, y.view(-1))
    return figure


for _name, _fn, _hib in (("accuracy", accuracy, True), ("macro_f1", macro_f1, True), ("error_rate", error_rate, False),
                         ("cross_entropy", cross_entropy, False), ("average_precision", _binary("ap"), True),
                         ("roc_auc", _binary("auc"), True)):
    register_metric(_name, _fn, higher_is_better=_hib)
