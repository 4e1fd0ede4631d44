"""The Trainer: the loop, and nothing else.

Each epoch the sampler yields batches, the strategy turns each into an update (through the task's
loss) and the sampler gets the step's outputs; the strategy may end the run or choose the final
model (a :class:`~gnnkit.context.Control`). Every ``eval_every`` epochs the loop evaluates
(strategy's ``predict`` -> task's ``score``), feeds the model selection and, on a plateau, runs the
escape (rank 0 proposes a head; the loop broadcasts and applies it). Selection, early stopping,
checkpoints, the CSV log and the progress bar are callbacks (:mod:`gnnkit.callbacks`); plug-ins see
a read-only :class:`~gnnkit.context.RunContext`. Under ``torchrun`` :mod:`gnnkit.distributed`
starts the process group and wraps the model; only rank 0 writes.
"""
from __future__ import annotations

import logging
import math
import random
import resource
import time
from typing import Any, Iterable, Optional

import numpy as np
import torch
from gnnkit.models.pyg import as_model  # the installed name of models/

from . import checkpoint as ckpt
from . import distributed as dist
from .callbacks import Callback, Checkpointing, ModelSelection, loop_callbacks
from .context import Control, LoopClock, RunContext, run_data
from .distributed import resolve_device  # noqa: F401 - re-exported for the command layer
from .errors import GnnkitError
from .precision import PRECISIONS
from .escape.base import Escape, cpu_copy, load_head
from .precision import cast_features
from .strategies.base import Strategy
from .tasks.base import SPLITS, Task

log = logging.getLogger("gnnkit")
LARGE_GRAPH, INFERENCE_ROWS = 1 << 17, 1 << 16  # the default inference chunking above 2^17 nodes


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


class Trainer:
    """Trains a model on a graph. All arguments are keyword-only.

    Args:
        task, sampler, strategy, escape: a name or an instance for each axis (``sampler=None`` is
            the task's ``default_sampler``: ``"full"`` (the whole graph as one batch) for node and link
            tasks, ``"temporal"`` for temporal-link, ``"graph"`` for graph; a sampler that cannot feed
            the task is refused in one line; ``escape=None`` is no escape).
        metrics: user metrics the task computes beside its own figures (:mod:`gnnkit.metrics`: a
            ``Metric(name, fn, higher_is_better=...)``, a registered name such as ``"macro_f1"``, or a
            callable declaring ``higher_is_better``); ``metric="<name>"`` selects on one. A metric
            without a declared direction is refused.
        max_epochs: number of epochs. lr, weight_decay, optimizer: optimizer settings, used by the
            strategy (``"adam"``, ``"adamw"`` or ``"sgd"``).
        device: ``"auto"`` (CUDA when present), ``"cpu"``, ``"cuda"``, ``"cuda:1"``...
        seed: seeds Python, NumPy and torch; the same seed gives the same result on CPU.
        callbacks: extra :class:`~gnnkit.callbacks.Callback` objects.
        checkpoint_dir: ``epoch-*.pt`` after every epoch (newest ``keep_checkpoints`` kept), and every
            ``checkpoint_every_steps`` steps inside an epoch when set (resumed bit for bit). log_dir:
            ``metrics.csv`` there. progress: a tqdm bar. eval_every: evaluate every this many epochs.
        patience: stop after this many evaluations without improvement (``None``: never).
        metric: validation figure that selects the model, ``"<metric>"`` of the task by default;
            ``"loss"`` selects on the validation loss (lower is better).
        inference_batch_size: rows per inference chunk (``None``: all up to 2^17 nodes, else 2^16).
        backend: process-group backend under torchrun (default gloo on CPU, nccl on CUDA).
        precision: ``"32"``, ``"bf16-mixed"`` or ``"16-mixed"`` (Lightning's names).
        num_workers, prefetch: background workers that sample batches ahead of the step, and how many
            batches each keeps ready (``num_workers=0``: sampled in the loop's own thread).
        scan_group: training batches whose feature rows are read together, in one sequential pass over
            an on-disk store's feature file (:mod:`gnnkit.samplers.scan`; ``0``: each batch gathers its
            own rows). The same batches; sampled evaluation reads its batches' rows the same way.
        run_info: what this run is (dataset, fingerprint, settings); resuming another run's checkpoint
            is refused, naming what differs.
    """

    def __init__(self, *, task: Any = "node", sampler: Any = None, strategy: Any = "backprop", escape: Any = None,
                 max_epochs: int = 200, lr: float = 0.01, weight_decay: float = 0.0, optimizer: str = "adam",
                 device: Any = "auto", seed: int = 0, callbacks: Iterable[Callback] = (),
                 checkpoint_dir: Optional[str] = None, log_dir: Optional[str] = None, progress: bool = True,
                 eval_every: int = 1, patience: Optional[int] = None, metric: Optional[str] = None,
                 inference_batch_size: Optional[int] = None, keep_checkpoints: int = 2,
                 backend: Optional[str] = None, run_info: Optional[dict] = None, precision: str = "32",
                 num_workers: int = 0, prefetch: int = 2, metrics: Iterable = (), scan_group: int = 0,
                 checkpoint_every_steps: Optional[int] = None):
        from gnnkit.samplers import Sampler  # the installed name of samplers/

        for ok, what, value in ((max_epochs >= 0, "max_epochs must be >= 0", max_epochs),
                                (eval_every >= 1, "eval_every must be >= 1", eval_every),
                                (lr > 0 and math.isfinite(lr), "lr must be a positive number", lr),
                                (patience is None or patience >= 1, "patience must be >= 1 or None", patience),
                                (inference_batch_size is None or inference_batch_size >= 1,
                                 "inference_batch_size must be >= 1 or None", inference_batch_size),
                                (str(precision) in PRECISIONS, f"precision must be one of {', '.join(PRECISIONS)}",
                                 precision),
                                (num_workers >= 0, "num_workers must be >= 0", num_workers),
                                (prefetch >= 1, "prefetch must be >= 1", prefetch),
                                (scan_group >= 0, "scan_group must be >= 0", scan_group)):
            if not ok:
                raise GnnkitError(f"{what}, got {value}")
        self.task: Task = Task.resolve(task)
        if metrics:
            self.task.add_metrics(metrics)
        self.sampler = Sampler.resolve(self.task.default_sampler if sampler is None else sampler)
        self.task.check_sampler(self.sampler)
        self.strategy: Strategy = Strategy.resolve(strategy)
        self.escape: Optional[Escape] = Escape.resolve(escape)
        if self.escape and not getattr(self.strategy, "supports_escape", True):
            raise GnnkitError(f"the {self.escape.name} escape searches a classifier head; the {self.strategy.name} "
                              "strategy has none: drop --escape or use --strategy backprop")
        self.components = {"task": self.task, "sampler": self.sampler, "strategy": self.strategy,
                           **({"escape": self.escape} if self.escape else {})}
        self.max_epochs, self.lr, self.weight_decay, self.optimizer_name = max_epochs, lr, weight_decay, optimizer
        self.device_spec, self.seed, self.backend, self.progress = device, seed, backend, progress
        self.eval_every, self.patience, self.metric_spec, self.log_dir = eval_every, patience, metric, log_dir
        self.inference_batch_size, self.run_info, self.resumed_from = inference_batch_size, run_info, None
        self.precision, self.num_workers, self.prefetch = str(precision), int(num_workers), int(prefetch)
        self.scan_group = int(scan_group)
        self.selection, self.checkpoint_dir = ModelSelection(), checkpoint_dir
        self.callbacks: list[Callback] = loop_callbacks(
            self.selection, callbacks, log_dir=log_dir, checkpoint_dir=checkpoint_dir, keep_checkpoints=keep_checkpoints,
            checkpoint_every_steps=checkpoint_every_steps, progress=progress,
            patience=None if self.strategy.manages_stopping else patience)
        self.model = self.raw_model = self.data = self.ctx = None
        self.clock, self.history, self.last_train_logs, self.result = LoopClock(), [], {}, {}

    @property
    def epoch(self) -> int:
        return self.clock.epoch

    @property
    def elapsed(self) -> float:
        return self._elapsed_before + (time.perf_counter() - self._t0)

    @property
    def monitor(self) -> str:
        """The validation key that selects the model, e.g. ``val_accuracy``."""
        return f"val_{self.metric_spec or self.task.metric}"

    @property
    def higher_is_better(self) -> bool:
        return self.task.metric_direction(self.metric_spec or self.task.metric)

    @property
    def last_checkpoint(self) -> Optional[str]:
        """The newest checkpoint this run wrote (``None`` before the first)."""
        return next((cb.last_path for cb in self.callbacks if isinstance(cb, Checkpointing)), None)

    def notify(self, hook: str, *args) -> None:
        """Call ``hook`` on every callback; a returned :class:`Control` is applied."""
        for cb in self.callbacks:
            self._apply(getattr(cb, hook)(self, *args))

    def _apply(self, control: Optional[Control]) -> None:
        if isinstance(control, Control):
            if control.select is not None:
                self.selection.select(self, control.select)
            self.should_stop = self.should_stop or control.stop

    # -- fit ------------------------------------------------------------------------------------------
    def fit(self, model: torch.nn.Module, data, ckpt_path: Optional[str] = None) -> dict:
        """Train ``model`` on ``data`` (a PyG ``Data``, an event stream, or a ``(GraphStore,
        FeatureStore)`` pair); ``ckpt_path``: resume from a file or ``"last"`` (in checkpoint_dir)."""
        self.device = resolve_device(self.device_spec)
        started = dist.init(self.device, self.backend)
        try:
            self._setup(model, data)
            if ckpt_path:
                self._resume(ckpt_path)
            self._t0 = time.perf_counter()
            self.notify("on_fit_start")
            for epoch in range(self.start_epoch, self.max_epochs):
                if self.should_stop:  # also a resumed run that had stopped
                    break
                self.clock.epoch = epoch
                self._run_epoch(epoch)
                if (epoch + 1) % self.eval_every == 0 or epoch + 1 == self.max_epochs:
                    self._validate()
                self.epochs_done = epoch + 1
                self.notify("on_epoch_complete", epoch)
            return self._finish()
        finally:
            self.model = self.raw_model  # DDP's reducer is freed while its process group lives
            dist.shutdown(started)

    def _setup(self, model, data) -> None:
        """Everything in the order that fixes the random stream: seed, model, data, optimizer, sampler."""
        seed_everything(self.seed)
        if self.device.type == "cuda":
            torch.cuda.set_device(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
        self.raw_model = as_model(model).to(self.device)  # a PyG-style module (forward(x, edge_index)) is wrapped
        self.data, graph, features = run_data(self.task.prepare_data(data, self.seed), self.device)
        features = cast_features(features, self.precision)  # "x" held in the precision's half type
        large = graph is not None and graph.num_nodes > LARGE_GRAPH
        ibs = self.inference_batch_size or (INFERENCE_ROWS if large else None)
        self.ctx = RunContext(
            device=self.device, seed=self.seed, graph=graph, features=features, data=self.data,
            adj_norm=getattr(self.raw_model, "adj_norm", "gcn"),
            diag_lambda=float(getattr(self.raw_model, "diag_lambda", 0.0) or 0.0),
            lr=self.lr, weight_decay=self.weight_decay, optimizer=self.optimizer_name, max_epochs=self.max_epochs,
            inference_batch_size=ibs, monitor=self.monitor, higher_is_better=self.higher_is_better,
            log_dir=self.log_dir, progress=self.progress, clock=self.clock, precision=self.precision,
            num_workers=self.num_workers, prefetch=self.prefetch)
        self.task.setup(self.ctx, self.raw_model)
        self.model = dist.wrap_model(self.raw_model, self.device, self.strategy.find_unused_parameters)
        self.strategy.configure(self.ctx, self.raw_model)
        from gnnkit.samplers.scan import scan_context  # features read ahead in one pass (scan_group > 0)

        deferrable = any(getattr(cb, "every_steps", None) for cb in self.callbacks)  # resumed epochs skip reads
        self.sampler_ctx = scan_context(self.ctx, self.sampler, self.scan_group, deferrable)
        self.sampler.setup(self.sampler_ctx, self.raw_model)
        self.start_epoch = self.epochs_done = self.clock.epoch = 0
        self.resume_position, self._skip, self._totals = None, 0, {}  # where a resumed run stands, and in its epoch
        self.step_in_epoch = self.steps_in_epoch = 0
        self._elapsed_before, self.should_stop = 0.0, False
        self.selection.reset()
        self.history, self.escape_records = [], []

    def _run_epoch(self, epoch: int) -> None:
        self.raw_model.train()
        self.sampler.set_epoch(epoch)
        for part in self.components.values():
            part.on_epoch_start(self.ctx, epoch)
        self.notify("on_epoch_start", epoch)
        from gnnkit.samplers.pipeline import epoch_batches  # batches ahead in a thread (num_workers >= 1)

        from gnnkit.samplers.resume import Resumed  # a mid-epoch checkpoint's epoch: its first steps drawn again
        from gnnkit.samplers.scan import ScanAhead  # inside the pipeline: its thread runs the scans

        steps, totals, self._skip = self._skip, self._totals, 0
        source = Resumed(self.sampler, steps, self.sampler_ctx.features) if steps else self.sampler
        source = ScanAhead(source, self.sampler_ctx.features, self.scan_group) if self.scan_group else source
        self.steps_in_epoch, self._totals = len(self.sampler), {}
        with epoch_batches(source, self.ctx) as batches:
            for batch in batches:
                outputs = self.strategy.step(self.ctx, self.model, batch, self.task)
                self.sampler.feedback(batch, outputs)
                for k, v in outputs.items():
                    if isinstance(v, (int, float)):
                        totals[k] = totals.get(k, 0.0) + float(v)
                steps += 1
                self.step_in_epoch, self._totals = steps, totals
                self.notify("on_batch_end", batch, outputs)
                batch = outputs = None  # not held while the next batch is made (a scan group's pass)
        self.last_train_logs = {f"train_{k}": v / max(steps, 1) for k, v in totals.items()}
        self.last_train_logs["steps"] = steps
        self._apply(self.strategy.on_epoch_end(self.ctx, self.raw_model, epoch, self._evaluate))
        self.notify("on_epoch_end", epoch, self.last_train_logs)

    def _evaluate(self, splits=None) -> dict:
        """The loop's evaluation: strategy's output for every node -> task's figures on ``splits``
        (default :meth:`_loop_splits`)."""
        splits = self._loop_splits() if splits is None else splits
        self.raw_model.eval()
        with torch.no_grad():
            if getattr(self.ctx.graph, "part", None) is not None:  # each rank holds one part (issue 22)
                from .partitioned.fullbatch import evaluate_parts  # exact layer-wise inference, figures reduced

                return evaluate_parts(self.ctx, self.raw_model, self.task, tuple(splits))
            return self.task.evaluate(self.ctx, self.raw_model, self._strategy_predict, tuple(splits))

    def _loop_splits(self) -> tuple:
        """All splits; val and test alone when the evaluation runs on sampled neighborhoods (a graph
        too big for whole-graph inference, e.g. papers100M: scoring its 1.2M training nodes would
        take longer than the epoch; the epoch's mean training loss stays in the logs)."""
        from .strategies.base import use_sampled_inference

        graph = self.ctx.graph if self.task.input == "graph" else None
        sampled = graph is not None and getattr(graph, "part", None) is None and use_sampled_inference(
            self.ctx, self.raw_model, getattr(self.strategy, "inference", "full"))
        return tuple(s for s in SPLITS if s != "train") if sampled else SPLITS

    def _strategy_predict(self):  # with scan_group, sampled evaluation reads its rows in passes too
        return self.strategy.predict(self.sampler_ctx if self.scan_group else self.ctx, self.raw_model)

    def _validate(self) -> None:
        metrics = self._evaluate()
        if self.monitor not in metrics:
            from .metrics import REGISTRY

            hint = f"; add it with metrics=[{self.metric_spec!r}] (--metrics {self.metric_spec})" \
                if self.metric_spec in REGISTRY else ""
            raise GnnkitError(f"metric {self.monitor!r} is not among the task's figures: {', '.join(metrics)}{hint}")
        selected = self.selection.observe(self, metrics)
        self.history.append({"epoch": self.epoch, **metrics, "seconds": self.elapsed})
        for part in self.components.values():
            part.on_validation_end(self.ctx, metrics, selected)
        self.notify("on_validation_end", metrics)
        every = self.escape.patience if self.escape else self.patience
        since = self.selection.since_improve
        if every and since and since % every == 0:
            if self.escape:
                self._escape()
            self.notify("on_plateau")

    def _escape(self) -> None:
        """Rank 0 runs the escape; every rank applies the accepted head and forgets its optimizer state."""
        result = dist.run_on_main(lambda: cpu_copy(self.escape.on_plateau(self.ctx, self.raw_model, self._evaluate,
                                                                           self.task)))
        if result is not None:
            if result.head_state is not None:
                self.strategy.reset_state(load_head(self.raw_model, result.head_state))
                self.selection.restart_patience()
            self.escape_records.append(result.record)

    def run_record(self) -> dict:
        """What this run is, as stored in checkpoints and compared on resume."""
        parts = {name: type(part).__name__ for name, part in self.components.items()}
        return {"loop": {**parts, "optimizer": self.optimizer_name.lower()}, **(self.run_info or {})}

    def state_dict(self, in_epoch: bool = False) -> dict:
        """The checkpoint of the run at the end of epoch :attr:`epoch`, or (``in_epoch``) after its
        :attr:`step_in_epoch` steps, with the step outputs summed so far."""
        loop = {"history": self.history, "elapsed": self.elapsed, "should_stop": self.should_stop,
                "escape_records": self.escape_records,
                "in_epoch": {"epoch": self.epoch, "step": self.step_in_epoch, "totals": dict(self._totals)}
                if in_epoch else None}
        done = self.epoch - 1 if in_epoch else self.epoch
        return ckpt.snapshot(done, self.raw_model, self.components, self.callbacks, loop, self.run_record())

    def _resume(self, ckpt_path: str) -> None:
        found = ckpt.find(ckpt_path, self.checkpoint_dir, set_aside=self.ctx.is_main)
        if found is None:
            return  # nothing yet: start afresh, so one command serves first start and restarts
        path, state = found
        ckpt.check_run(state, self.run_record(), path)
        ckpt.check_signature(state, self.raw_model, path)
        loop, at = state["loop"], state["epoch"] + 1  # the epoch the run goes on with
        mid = loop.get("in_epoch")
        if at + (mid is not None) > self.max_epochs:
            raise GnnkitError(f"checkpoint {path} is at epoch {at + (mid is not None)}, "
                              f"beyond max_epochs {self.max_epochs}")
        ckpt.restore(state, self.raw_model, self.components, self.callbacks)
        self.history, self._elapsed_before = list(loop["history"]), loop["elapsed"]
        self.should_stop, self.escape_records = loop["should_stop"], list(loop["escape_records"])
        self.start_epoch = self.epochs_done = at
        self.clock.epoch, self.resumed_from = state["epoch"], path
        self.resume_position = (state["epoch"], ckpt.END) if mid is None else (mid["epoch"], mid["step"])
        if mid is not None:
            self._skip, self._totals, self.clock.epoch = int(mid["step"]), dict(mid["totals"]), at
        where = f"epoch {state['epoch']} done" if mid is None else f"{mid['step']} steps of epoch {mid['epoch']} done"
        (log.info if self.ctx.is_main else log.debug)("resumed from %s (%s)", path, where)

    # -- end of fit and evaluation --------------------------------------------------------------------
    def _finish(self) -> dict:
        self.selection.restore(self.raw_model)
        splits = self._loop_splits()  # on sampled neighborhoods the selected weights' figures are reused:
        reuse = self.selection.best_evaluated and splits != SPLITS  # the same evaluation, an hour at scale
        final = dict(self.selection.best_metrics) if reuse else self._evaluate(splits)
        self.result = {
            "val": final.get(f"val_{self.task.metric}"), "test": final.get(f"test_{self.task.metric}"),
            "selected_on": self.monitor, "metrics": final, "best_epoch": self.selection.best_epoch,
            "epochs": self.epochs_done, "seconds": self.elapsed, "history": self.history,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0}
        if self.device.type == "cuda":
            self.result["peak_cuda_mb"] = torch.cuda.max_memory_allocated(self.device) / 2**20
        if self.escape:
            self.result["escape"] = list(self.escape_records)
        self.notify("on_fit_end")
        return self.result

    def evaluate(self, split: str = "val") -> dict:
        """Figures of the current model on one split, e.g. ``{"val_accuracy": 0.79, ...}``."""
        if self.ctx is None:
            raise GnnkitError("call fit(model, data) first")
        return self._evaluate((split,))

    def test(self) -> dict:
        return self.evaluate("test")

    def predict(self, queries: Any = None):
        """The model's output for every node (every row the task scores); a task that scores chosen
        items takes them as ``queries`` (temporal-link: ``(src, dst, t)`` -> link probabilities)."""
        if self.ctx is None:
            raise GnnkitError("call fit(model, data) first")
        self.raw_model.eval()
        with torch.no_grad():
            if queries is None:
                return self.task.predict(self.ctx, self.raw_model, self._strategy_predict)
            return self.task.predict(self.ctx, self.raw_model, self._strategy_predict, queries=queries)
