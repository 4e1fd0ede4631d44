"""The Trainer: one loop for every task, sampler, strategy and escape.

``Trainer(...).fit(model, data)`` runs ``max_epochs`` epochs. In each, the sampler yields batches,
the strategy turns each into an update (through the task's loss), the sampler may receive feedback,
and every ``eval_every`` epochs the task scores the model on the train/val/test splits. The Trainer
keeps the weights with the best validation metric (restored at the end for ``test()``), stops
after ``patience`` evaluations without improvement, calls the escape (``on_plateau``) when the
validation metric has stalled for ``escape.patience`` evaluations, and writes a checkpoint after
every epoch. Nothing here is specific to one technique.

Several processes: launched by ``torchrun`` the Trainer starts the process group, wraps the model
in DistributedDataParallel and lets only rank 0 write; see :mod:`gnnkit.distributed`.
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
from tqdm.auto import tqdm

from . import checkpoint as ckpt
from . import distributed as dist
from .callbacks import Callback, CSVLogger
from .errors import GnnkitError
from .escape import Escape
from .sparse import Adjacency
from .strategies import Strategy
from .tasks import Task

log = logging.getLogger("gnnkit")


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def resolve_device(device: Any) -> torch.device:
    if device in (None, "auto"):
        if torch.cuda.is_available():
            return torch.device("cuda", dist.local_rank() % torch.cuda.device_count())
        return torch.device("cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise GnnkitError(f"device {device!r} was asked for but CUDA is not available")
    if dev.type == "cuda" and dev.index is None:  # an explicit index: set_device and DDP need one
        multi = dist.env_world_size() > 1
        dev = torch.device("cuda", dist.local_rank() % torch.cuda.device_count() if multi else torch.cuda.current_device())
    return dev


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


class Trainer:
    """Trains a model on a graph. All arguments are keyword-only.

    Args:
        task, sampler, strategy, escape: a name or an instance for each axis (``sampler=None`` is
            ``"full"``, the whole graph as one batch; ``escape=None`` is no escape).
        max_epochs: number of epochs. lr, weight_decay, optimizer: optimizer settings, used by the
            strategy (``"adam"``, ``"adamw"`` or ``"sgd"``).
        device: ``"auto"`` (CUDA when present), ``"cpu"``, ``"cuda"``, ``"cuda:1"``...
        seed: seeds Python, NumPy and torch; the same seed gives the same result on CPU.
        callbacks: extra :class:`~gnnkit.callbacks.Callback` objects.
        checkpoint_dir: write ``epoch-*.pt`` there after every epoch (``keep_checkpoints`` kept).
        log_dir: write per-evaluation figures to ``log_dir/metrics.csv``.
        progress: show a tqdm bar. eval_every: evaluate every this many epochs.
        patience: stop after this many evaluations without improvement (``None``: never).
        metric: validation figure that selects the model, ``"<metric>"`` of the task by default;
            ``"loss"`` selects on the validation loss (lower is better).
        inference_batch_size: rows per chunk in full-graph inference (``None``: all at once).
        backend: process-group backend under torchrun (default gloo on CPU, nccl on CUDA).
    """

    def __init__(self, *, task: Any = "node", sampler: Any = None, strategy: Any = "backprop", escape: Any = None,
                 max_epochs: int = 200, lr: float = 0.01, weight_decay: float = 0.0, optimizer: str = "adam",
                 device: Any = "auto", seed: int = 0, callbacks: Iterable[Callback] = (),
                 checkpoint_dir: Optional[str] = None, log_dir: Optional[str] = None, progress: bool = True,
                 eval_every: int = 1, patience: Optional[int] = None, metric: Optional[str] = None,
                 inference_batch_size: Optional[int] = None, keep_checkpoints: int = 2,
                 backend: Optional[str] = None):
        from gnnkit.samplers import Sampler  # the installed name of samplers/

        if max_epochs < 0:
            raise GnnkitError(f"max_epochs must be >= 0, got {max_epochs}")
        if eval_every < 1:
            raise GnnkitError(f"eval_every must be >= 1, got {eval_every}")
        if patience is not None and patience < 1:
            raise GnnkitError(f"patience must be >= 1 or None, got {patience}")
        if lr <= 0 or not math.isfinite(lr):
            raise GnnkitError(f"lr must be a positive number, got {lr}")
        self.task: Task = Task.resolve(task)
        self.sampler = Sampler.resolve("full" if sampler is None else sampler)
        self.strategy: Strategy = Strategy.resolve(strategy)
        self.escape: Optional[Escape] = Escape.resolve(escape)
        self.max_epochs, self.lr, self.weight_decay, self.optimizer_name = max_epochs, lr, weight_decay, optimizer
        self.device_spec, self.seed, self.backend = device, seed, backend
        self.user_callbacks = list(callbacks)
        self.checkpoint_dir, self.log_dir, self.keep_checkpoints = checkpoint_dir, log_dir, keep_checkpoints
        self.progress, self.eval_every, self.patience = progress, eval_every, patience
        self.metric_spec, self.inference_batch_size = metric, inference_batch_size
        if log_dir:
            self.user_callbacks.append(CSVLogger(log_dir))
        self.model = self.raw_model = self.data = None
        self._adj_cache: dict = {}
        self.history: list[dict] = []
        self.last_train_logs: dict = {}
        self.result: dict = {}

    # -- small helpers shared with the plug-ins -----------------------------------------------------
    @property
    def callbacks(self) -> list[Callback]:
        axes = [self.task, self.sampler, self.strategy] + ([self.escape] if self.escape else [])
        return axes + self.user_callbacks

    def _call(self, hook: str, *args) -> None:
        for cb in self.callbacks:
            getattr(cb, hook)(self, *args)

    @property
    def rank(self) -> int:
        return dist.rank()

    @property
    def world_size(self) -> int:
        return dist.world_size()

    @property
    def is_main(self) -> bool:
        return dist.is_main()

    @property
    def elapsed(self) -> float:
        return self._elapsed_before + (time.perf_counter() - self._t0)

    @property
    def monitor(self) -> str:
        """The validation key that selects the model, e.g. ``val_accuracy``."""
        return f"val_{self.metric_spec or self.task.metric}"

    @property
    def higher_is_better(self) -> bool:
        return self.task.higher_is_better if (self.metric_spec or self.task.metric) == self.task.metric else False

    def full_adjacency(self, data, norm: Optional[str] = None) -> Adjacency:
        """The whole graph's adjacency in the model's normalization, built once and cached."""
        norm = norm or getattr(self.raw_model, "adj_norm", "gcn")
        lam = float(getattr(self.raw_model, "diag_lambda", 0.0) or 0.0) if norm == "diag" else 0.0
        key = (id(data), norm, lam)
        if key not in self._adj_cache:
            self._adj_cache[key] = Adjacency.from_edge_index(
                data.edge_index, data.num_nodes, norm=norm, diag_lambda=lam,
                symmetric=bool(getattr(data, "is_symmetric", False)))
        return self._adj_cache[key]

    def make_optimizer(self, params) -> torch.optim.Optimizer:
        params = [p for p in params if p.requires_grad]
        name = self.optimizer_name.lower()
        if name == "adam":
            return torch.optim.Adam(params, lr=self.lr, weight_decay=self.weight_decay)
        if name == "adamw":
            return torch.optim.AdamW(params, lr=self.lr, weight_decay=self.weight_decay)
        if name == "sgd":
            return torch.optim.SGD(params, lr=self.lr, weight_decay=self.weight_decay, momentum=0.9)
        raise GnnkitError(f"unknown optimizer {self.optimizer_name!r}; known: adam, adamw, sgd")

    def _is_better(self, value: float, metrics: dict) -> bool:
        """Strictly better on the monitored figure; on a tie, lower validation loss breaks it
        (accuracy on a few hundred nodes moves in coarse steps, so ties are common)."""
        if self.best_value is None:
            return True
        if value != self.best_value:
            return value > self.best_value if self.higher_is_better else value < self.best_value
        loss, best_loss = metrics.get("val_loss"), self.best_metrics.get("val_loss")
        return loss is not None and best_loss is not None and loss < best_loss

    # -- fit ------------------------------------------------------------------------------------------
    def fit(self, model: torch.nn.Module, data, ckpt_path: Optional[str] = None) -> dict:
        """Train ``model`` on ``data``; resume from ``ckpt_path`` (a file, or ``"last"`` for the
        newest loadable checkpoint in ``checkpoint_dir``, starting afresh when there is none)."""
        self.device = resolve_device(self.device_spec)
        self._dist_started = dist.init(self.device, self.backend)
        try:
            return self._fit(model, data, ckpt_path)
        finally:
            dist.shutdown(self._dist_started)

    def _fit(self, model, data, ckpt_path) -> dict:
        if self.world_size > 1 and self.task.distributed_unsupported:
            raise GnnkitError(f"task {self.task.name!r} cannot run on {self.world_size} processes: "
                              f"{self.task.distributed_unsupported}")
        seed_everything(self.seed)
        if self.device.type == "cuda":
            torch.cuda.set_device(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
        self.raw_model = model.to(self.device)
        self.data = self.task.setup(self, data)
        self.model = self.raw_model
        if self.world_size > 1:
            self.model = torch.nn.parallel.DistributedDataParallel(
                self.raw_model, device_ids=[self.device.index] if self.device.type == "cuda" else None,
                find_unused_parameters=getattr(self.strategy, "find_unused_parameters", False))
        self.strategy.configure(self, self.raw_model)
        self.sampler.setup(self, self.data)
        self.start_epoch, self.epoch, self._elapsed_before = 0, 0, 0.0
        self.best_value, self.best_epoch, self.best_state, self.best_metrics = None, -1, None, {}
        self.since_improve, self.should_stop, self.plateau_escaped = 0, False, False
        self.history = []
        if ckpt_path:
            self._resume(ckpt_path)
        self._t0 = time.perf_counter()
        self._call("on_fit_start")
        bar = tqdm(total=self.max_epochs, initial=self.start_epoch, desc="train", unit="epoch",
                   disable=not (self.progress and self.is_main), dynamic_ncols=True, leave=False)
        for epoch in range(self.start_epoch, self.max_epochs):
            self.epoch = epoch
            self._run_epoch(epoch)
            if (epoch + 1) % self.eval_every == 0 or epoch + 1 == self.max_epochs:
                self._validate()
            self._write_checkpoint(epoch)
            bar.update(1)
            bar.set_postfix({k: f"{v:.4f}" for k, v in list(self.history[-1].items())[1:5]} if self.history else {})
            if self.should_stop:
                break
        bar.close()
        return self._finish()

    def _run_epoch(self, epoch: int) -> None:
        self.raw_model.train()
        self.sampler.set_epoch(epoch)
        self._call("on_epoch_start", epoch)
        totals: dict[str, float] = {}
        steps = 0
        for batch in self.sampler:
            outputs = self.strategy.step(self, batch)
            if self.sampler.wants_feedback:
                self.sampler.feedback(batch, outputs)
            self._call("on_batch_end", batch, outputs)
            for k, v in outputs.items():
                if isinstance(v, (int, float)):
                    totals[k] = totals.get(k, 0.0) + float(v)
            steps += 1
        self.last_train_logs = {f"train_{k}": v / max(steps, 1) for k, v in totals.items()}
        self.last_train_logs["steps"] = steps
        self._call("on_epoch_end", epoch, self.last_train_logs)

    def mark_best(self, metrics: dict) -> None:
        """Make the current weights the selected model (restored at the end of ``fit``), with
        ``metrics`` as their figures. Used by the validation loop and by strategies that choose
        the final model themselves (ForwardGNN's sequential schedule)."""
        self.best_value, self.best_epoch, self.best_metrics = float(metrics[self.monitor]), self.epoch, dict(metrics)
        self.best_state = {k: v.detach().cpu().clone() for k, v in self.raw_model.state_dict().items()}
        self.since_improve = 0

    def _validate(self) -> None:
        metrics = self.task.evaluate(self)
        if self.monitor not in metrics:
            raise GnnkitError(f"metric {self.monitor!r} is not among the task's figures: {', '.join(metrics)}")
        value = float(metrics[self.monitor])
        if self._is_better(value, metrics):
            self.mark_best(metrics)
        else:
            self.since_improve += 1
        self.history.append({"epoch": self.epoch, **metrics, "seconds": self.elapsed})
        self._call("on_validation_end", metrics)
        plateau = self.escape.patience if self.escape else self.patience
        if plateau and self.since_improve and self.since_improve % plateau == 0:
            self.plateau_escaped = False
            self._call("on_plateau")
            if self.plateau_escaped:
                self.since_improve = 0
        if (self.patience and self.since_improve >= self.patience and not self.strategy.manages_stopping):
            self.should_stop = True

    # -- checkpoints ----------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {
            "format": ckpt.FORMAT, "epoch": self.epoch,
            "model": self.raw_model.state_dict(), "model_signature": ckpt.model_signature(self.raw_model),
            "strategy": self.strategy.state_dict(), "sampler": self.sampler.state_dict(),
            "task": self.task.state_dict(), "escape": self.escape.state_dict() if self.escape else {},
            "callbacks": [cb.state_dict() for cb in self.user_callbacks],
            "trainer": {"best_value": self.best_value, "best_epoch": self.best_epoch, "best_state": self.best_state,
                        "best_metrics": self.best_metrics, "since_improve": self.since_improve,
                        "should_stop": self.should_stop, "history": self.history, "elapsed": self.elapsed},
            "rng": ckpt.rng_state(),
        }

    def _write_checkpoint(self, epoch: int) -> None:
        if not self.checkpoint_dir:
            return
        if self.is_main:
            path = ckpt.path_for(self.checkpoint_dir, epoch)
            ckpt.save(self.state_dict(), path)
            ckpt.prune(self.checkpoint_dir, self.keep_checkpoints)
            self._call("on_checkpoint", path)
        dist.barrier()

    def _resume(self, ckpt_path: str) -> None:
        if ckpt_path == "last":
            if not self.checkpoint_dir:
                raise GnnkitError("ckpt_path='last' needs checkpoint_dir")
            found = ckpt.latest(self.checkpoint_dir)
            if found is None:
                return  # nothing yet: start afresh, so one command serves first start and restarts
            path, state = found
        else:
            path, state = ckpt_path, ckpt.load(ckpt_path)
        ckpt.check_signature(state, self.raw_model, path)
        self.raw_model.load_state_dict(state["model"])
        self.strategy.load_state_dict(state["strategy"])
        self.sampler.load_state_dict(state["sampler"])
        self.task.load_state_dict(state["task"])
        if self.escape:
            self.escape.load_state_dict(state["escape"])
        if len(state["callbacks"]) != len(self.user_callbacks):
            raise GnnkitError(f"checkpoint {path} has {len(state['callbacks'])} callback states, "
                              f"this Trainer has {len(self.user_callbacks)} callbacks")
        for cb, s in zip(self.user_callbacks, state["callbacks"]):
            cb.load_state_dict(s)
        t = state["trainer"]
        self.best_value, self.best_epoch, self.best_state = t["best_value"], t["best_epoch"], t["best_state"]
        self.best_metrics, self.since_improve = t["best_metrics"], t["since_improve"]
        self.should_stop, self.history, self._elapsed_before = t["should_stop"], list(t["history"]), t["elapsed"]
        ckpt.set_rng_state(state["rng"])
        self.start_epoch = state["epoch"] + 1
        self.resumed_from = path
        if self.is_main:
            log.info("resumed from %s (epoch %d done)", path, state["epoch"])

    # -- end of fit and evaluation --------------------------------------------------------------------
    def _finish(self) -> dict:
        if self.best_state is not None:
            self.raw_model.load_state_dict(self.best_state)
        final = self.task.evaluate(self)
        self.result = {
            "val": final.get(f"val_{self.task.metric}"), "test": final.get(f"test_{self.task.metric}"),
            "selected_on": self.monitor,
            "metrics": final, "best_epoch": self.best_epoch, "epochs": self.epoch + 1 if self.max_epochs else 0,
            "seconds": self.elapsed, "peak_rss_mb": peak_rss_mb(), "history": self.history,
        }
        if self.device.type == "cuda":
            self.result["peak_cuda_mb"] = torch.cuda.max_memory_allocated(self.device) / 2**20
        if self.escape:
            self.result["escape"] = list(self.escape.records)
        self._call("on_fit_end")
        return self.result

    def _need_fit(self) -> None:
        if self.raw_model is None:
            raise GnnkitError("call fit(model, data) first")

    def evaluate(self, split: str = "val") -> dict:
        """Figures of the current model on one split, e.g. ``{"val_accuracy": 0.79, ...}``."""
        self._need_fit()
        return self.task.evaluate(self, splits=(split,))

    def test(self) -> dict:
        return self.evaluate("test")

    @torch.no_grad()
    def predict(self):
        """The model's output for every node (or event, for temporal tasks)."""
        self._need_fit()
        self.raw_model.eval()
        return self.task.predict(self)
