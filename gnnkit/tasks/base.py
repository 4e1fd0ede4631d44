"""Task: what is learned and how it is scored (loss and metrics only).

``prepare_data(data, seed)`` checks the graph and returns what the run trains on (before the
run context exists: the task's ``metric`` may depend on the data, e.g. an OGB evaluator).
``setup(ctx, model)`` once the context exists (model read-only). ``training_step(model, batch)``
turns a batch into ``(loss, outputs)``. ``score(ctx, predictions, splits)`` turns the strategy's
output for every node into figures ``{"<split>_<metric>": .., "<split>_loss": ..}``; the loop
evaluates through ``evaluate(ctx, model, predict, splits)``, which is ``score(ctx, predict(),
splits)`` (``predict``: the strategy's output) unless the task overrides :meth:`predict` (rows that
are not nodes) or :meth:`evaluate` (a stream scored in order: temporal link prediction). The task names its
``metric`` and whether higher is better; the loop selects the model on ``val_<metric>``.

Directions: :meth:`own_figures` declares whether higher is better for every figure the task
computes (``{"accuracy": True, "loss": False}``), :attr:`metrics` holds the user's metrics
(:mod:`gnnkit.metrics`, added with :meth:`add_metrics`; a task computes them with
:meth:`user_figures` on the rows it scores), and :meth:`metric_direction` answers from these two
alone: a figure with no declared direction is refused, never guessed.
"""
from __future__ import annotations

import abc
from typing import Any, Callable, ClassVar, Optional, Sequence

from ..plugins import Plugin

SPLITS = ("train", "val", "test")
#: what a task trains on / a sampler samples, in words
INPUTS = {"graph": "a graph (PyG Data or stores)", "events": "an event stream", "graphs": "a collection of graphs"}


class Task(Plugin):
    axis = "task"
    package = "gnnkit.tasks"
    _registry: ClassVar[dict[str, type]] = {}

    metric: str = "accuracy"
    higher_is_better: bool = True
    #: the sampler ``gnnkit train`` uses when none is named
    default_sampler: ClassVar[str] = "full"
    #: what the task trains on: ``"graph"`` (a PyG ``Data``) or ``"events"`` (an ``EventStream``)
    input: ClassVar[str] = "graph"

    #: the user's metrics (:class:`gnnkit.metrics.Metric`), computed beside the task's own figures
    metrics: tuple = ()
    #: whether a run can resume inside an epoch (``checkpoint_every_steps``): False for a task whose
    #: steps change state that checkpoints do not hold (TGN's memory and neighbor lists)
    resumes_mid_epoch: ClassVar[bool] = True

    def add_metrics(self, metrics) -> None:
        """Add user metrics (:func:`gnnkit.metrics.as_metrics` forms: a ``Metric``, a registered name,
        a callable declaring ``higher_is_better``); re-adding the same metric is a no-op, a second
        metric with a taken name or a name of the task's own figures is refused."""
        from ..errors import GnnkitError
        from ..metrics import as_metrics

        added = list(self.metrics)
        for m in as_metrics(metrics):
            if m.name in self.own_figures():
                raise GnnkitError(f"metric {m.name!r} is a figure the {self._label()} task computes itself; "
                                  "give yours another name")
            same = next((x for x in added if x.name == m.name), None)
            if same is not None and same != m:
                raise GnnkitError(f"the {self._label()} task already has a metric named {m.name!r}")
            if same is None:
                added.append(m)
        self.metrics = tuple(added)

    def own_figures(self) -> dict[str, bool]:
        """``{figure: higher_is_better}`` of the figures this task computes itself (without the split
        prefix); by default its ``metric`` and ``loss`` (lower is better)."""
        return {self.metric: self.higher_is_better, "loss": False}

    def figures(self) -> dict[str, bool]:
        """Every figure with its declared direction: the task's own and the user's metrics."""
        return {**self.own_figures(), **{m.name: m.higher_is_better for m in self.metrics}}

    def user_figures(self, split: str, predictions, targets, out: Optional[dict] = None) -> dict[str, float]:
        """``{"<split>_<name>": value}`` of the user's metrics on one split's ``predictions`` and
        ``targets`` (what each task hands is in its docstring), added to ``out`` when given; a
        name already in ``out`` (one of the task's figures) is refused rather than overwritten."""
        from ..errors import GnnkitError

        out = {} if out is None else out
        for m in self.metrics:
            key = f"{split}_{m.name}"
            if key in out:
                raise GnnkitError(f"metric {m.name!r} clashes with the {self._label()} task's figure {key!r}")
            out[key] = m(predictions, targets) if len(targets) else float("nan")
        return out

    def _label(self) -> str:
        return self.name or type(self).__name__

    def check_sampler(self, sampler) -> None:
        """Refuse a sampler that cannot produce this task's batches, in one line (the Trainer calls
        it when it is built). A sampler that declares its ``input`` must declare this task's."""
        from ..errors import GnnkitError

        given = getattr(sampler, "input", None)
        if given is not None and given != self.input:
            raise GnnkitError(f"sampler {getattr(sampler, 'name', None) or type(sampler).__name__!r} samples "
                              f"{INPUTS.get(given, given)}, the {self._label()} task trains on "
                              f"{INPUTS.get(self.input, self.input)}: use sampler={self.default_sampler!r}")

    def prepare_data(self, data: Any, seed: int) -> Any:
        """The validated data this task trains on (called by ``fit`` before anything else)."""
        return data

    def metric_direction(self, name: str) -> bool:
        """Whether higher is better for the validation figure ``name`` (without the split prefix), as
        :meth:`figures` declares it; any other name has no declared direction and is refused, never
        guessed."""
        from ..errors import GnnkitError

        known = self.figures()
        if name in known:
            return known[name]
        from ..metrics import REGISTRY

        listed = ", ".join(f"{k} ({'higher' if v else 'lower'} is better)" for k, v in known.items())
        add = (f"add the registered metric with metrics=[{name!r}] (--metrics {name})" if name in REGISTRY else
               f"add your own with metrics=[gnnkit.metrics.Metric({name!r}, fn, higher_is_better=...)]")
        raise GnnkitError(f"metric {name!r} has no declared direction for the {self._label()} task (its figures: "
                          f"{listed}); {add}")

    def setup(self, ctx, model) -> None:
        """Called once by ``fit`` with the run context, before the strategy and the sampler."""

    def run_summary(self, result: dict) -> dict:
        """Extra per-run figures for ``results.json`` (beyond val/test/epochs/seconds)."""
        return {}

    @abc.abstractmethod
    def training_step(self, model, batch) -> tuple[Any, dict]:
        """The batch's loss (a scalar tensor) and outputs handed to the sampler and callbacks."""

    @abc.abstractmethod
    def score(self, ctx, predictions, splits: Sequence[str] = SPLITS) -> dict[str, float]:
        """Figures ``{"<split>_<metric>": value, "<split>_loss": value, ...}`` on ``splits``."""

    def predict(self, ctx, model, predict: Callable[[], Any], queries: Any = None) -> Any:
        """The output scored by :meth:`score` (``Trainer.predict``'s answer): by default the strategy's
        output for every node, ``predict()``; a task whose rows are not nodes (graphs) computes its own,
        and a task that scores chosen items takes them as ``queries`` (temporal link prediction)."""
        if queries is not None:
            from ..errors import GnnkitError

            raise GnnkitError(f"the {self._label()} task predicts every row it scores; it takes no queries")
        return predict()

    def evaluate(self, ctx, model, predict: Callable[[], Any], splits: Sequence[str] = SPLITS) -> dict[str, float]:
        """The loop's evaluation (eval mode, no gradient): ``score(ctx, self.predict(ctx, model, predict), splits)``."""
        return self.score(ctx, self.predict(ctx, model, predict), splits)
