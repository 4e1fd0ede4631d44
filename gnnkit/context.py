"""The run context: what a plug-in may know about the run, read-only.

The Trainer builds one :class:`RunContext` at the start of ``fit`` and hands it to every plug-in
(task, sampler, strategy, escape). Plug-ins read from it and return results; they never assign to
it (assigning raises :class:`~gnnkit.errors.GnnkitError`), nor to the Trainer or the model.

Ranks: ``rank``, ``world_size`` and ``is_main`` read :mod:`gnnkit.distributed` each time, and
``shard`` / ``row_range`` / ``gather_rows`` / ``broadcast`` / ``barrier`` / ``main_first`` delegate
to it, so plug-ins never import it (work that rank 0 does alone, e.g. an escape's search, sees one
process).

Also here, so that plug-ins import them without the Trainer: :class:`Control` (what a strategy's
``on_epoch_end`` returns) and :class:`EscapeResult` (what an escape's ``on_plateau`` returns).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Optional, Sequence

import torch

from . import distributed as dist
from .errors import GnnkitError

#: ``evaluate(splits)``: the loop's evaluation, ``{"val_accuracy": .., "val_loss": .., ...}``.
Evaluate = Callable[[Sequence[str]], dict]

OPTIMIZERS = ("adam", "adamw", "sgd")


class LoopClock:
    """The loop's position (the current epoch), written by the Trainer alone and read through
    ``RunContext.epoch``."""

    __slots__ = ("epoch",)

    def __init__(self) -> None:
        self.epoch = 0


@dataclass(frozen=True)
class RunContext:
    """Read-only facts of one ``fit`` call.

    Attributes:
        device: where the model and the batches live.
        seed: the run's seed (``Trainer(seed=)``).
        precision: ``"32"``, ``"bf16-mixed"`` or ``"16-mixed"`` (``Trainer(precision=)``).
        num_workers, prefetch: background sampling workers and batches kept ready per worker.
        graph, features: the :class:`~gnnkit.stores.GraphStore` / ``FeatureStore`` of the data
            (``None`` for data that has no stores, e.g. an event stream).
        data: the validated data object (a PyG ``Data`` on ``device``, an ``EventStream``, a graph
            collection), or ``None`` when ``fit`` was given a ``(GraphStore, FeatureStore)`` pair.
        adj_norm, diag_lambda: the model's operator (``"gcn"``, ``"mean"``, ``"diag"`` with
            ``diag_lambda``), fixed when the model was built.
        lr, weight_decay, optimizer: optimizer settings (see :meth:`make_optimizer`).
        max_epochs: epochs of the run.
        inference_batch_size: rows per chunk in full-graph inference (the loop fills in its default
            when the user gave none: all rows up to 2^17 nodes, else 2^16-row chunks).
        monitor, higher_is_better: the validation figure that selects the model (``val_accuracy``).
        log_dir, progress: where per-run records go (``None``: nowhere) and whether bars are shown.
    """

    device: torch.device
    seed: int = 0
    precision: str = "32"
    graph: Any = None
    features: Any = None
    data: Any = None
    adj_norm: str = "gcn"
    diag_lambda: float = 0.0
    lr: float = 0.01
    weight_decay: float = 0.0
    optimizer: str = "adam"
    max_epochs: int = 1
    inference_batch_size: Optional[int] = None
    monitor: str = "val_accuracy"
    higher_is_better: bool = True
    log_dir: Optional[str] = None
    progress: bool = False
    clock: LoopClock = field(default_factory=LoopClock, repr=False, compare=False)
    num_workers: int = 0
    prefetch: int = 2

    def replace(self, **changes: Any) -> "RunContext":
        """A copy with ``changes`` (for the loop and tests; plug-ins keep the one they were given)."""
        return dataclasses.replace(self, **changes)

    # -- the loop's position ----------------------------------------------------------------------
    @property
    def epoch(self) -> int:
        """The epoch the loop is in (0-based)."""
        return self.clock.epoch

    # -- ranks (delegating to gnnkit.distributed) -------------------------------------------------
    @property
    def rank(self) -> int:
        return dist.rank()

    @property
    def world_size(self) -> int:
        return dist.world_size()

    @property
    def is_main(self) -> bool:
        return dist.is_main()

    def shard(self, items: Sequence, equal: bool = True) -> Sequence:
        """This rank's share of ``items`` (round-robin; ``equal``: same count on every rank)."""
        return dist.shard(items, equal=equal)

    def row_range(self, n: int) -> tuple[int, int]:
        """This rank's contiguous block ``[start, end)`` of ``n`` rows."""
        return dist.row_range(n)

    def gather_rows(self, local: torch.Tensor, n: int) -> torch.Tensor:
        """The ``[n, ...]`` tensor whose :meth:`row_range` blocks the ranks hold as ``local``."""
        return dist.all_gather_rows(local, n)

    def main_first(self):
        """A context manager: rank 0 runs the body first, the other ranks after it (caches written once)."""
        return dist.main_first()

    def barrier(self) -> None:
        """Wait for every rank (nothing with one process)."""
        dist.barrier()

    def broadcast(self, obj: Any) -> Any:
        """Rank 0's ``obj`` on every rank (``obj`` itself with one process)."""
        return dist.broadcast_object(obj)

    # -- helpers ----------------------------------------------------------------------------------
    def make_optimizer(self, params: Iterable[torch.nn.Parameter], fused: bool = True) -> torch.optim.Optimizer:
        """The run's optimizer over ``params`` (those that require a gradient): Adam, AdamW, or
        SGD with momentum 0.9, at ``lr`` and ``weight_decay``. Fused (``fused=True``: one kernel
        over all parameters instead of a few small ops per parameter) when every parameter is a
        floating-point tensor on the CPU or a CUDA device, all on one device; the same update rule,
        rounded in another order (results differ from the unfused step in the last bits).
        ``fused=False`` asks for the per-parameter step (ForwardGNN's per-layer optimizers: with the
        fused step its layer-wise training diverges after ~10 epochs in tests/test_forward.py, cause
        not yet found)."""
        params = [p for p in params if p.requires_grad]
        devices = {p.device for p in params}
        fused = {"fused": True} if (fused and len(devices) == 1 and next(iter(devices)).type in ("cpu", "cuda") and all(
            p.is_floating_point() and p.layout == torch.strided for p in params)) else {}
        name = self.optimizer.lower()
        if name == "adam":
            return torch.optim.Adam(params, lr=self.lr, weight_decay=self.weight_decay, **fused)
        if name == "adamw":
            return torch.optim.AdamW(params, lr=self.lr, weight_decay=self.weight_decay, **fused)
        if name == "sgd":
            return torch.optim.SGD(params, lr=self.lr, weight_decay=self.weight_decay, momentum=0.9, **fused)
        raise GnnkitError(f"unknown optimizer {self.optimizer!r}; known: {', '.join(OPTIMIZERS)}")


def run_data(data: Any, device: torch.device) -> tuple[Any, Any, Any]:
    """``(data, graph, features)`` of what ``fit`` was given: a ``(GraphStore, FeatureStore)`` pair
    is used as it is (``data`` None); a PyG ``Data`` is moved to ``device`` (in place, as PyG does)
    and seen through the in-memory stores; anything else (an event stream, a collection of graphs)
    is moved, without stores."""
    if isinstance(data, tuple):
        graph, features = data
        return None, graph, features
    from torch_geometric.data import Data

    data = data.to(device)
    if isinstance(data, Data):
        from .stores import from_data

        return (data, *from_data(data))
    return data, None, None


def _read_only(self, name: str, value: Any = None) -> None:
    raise GnnkitError(f"the run context is read-only (tried to set {name!r})")


# after the dataclass is built (a frozen dataclass may not define these itself); its __init__ and
# dataclasses.replace go through object.__setattr__ and are unaffected
RunContext.__setattr__ = _read_only  # type: ignore[method-assign]
RunContext.__delattr__ = _read_only  # type: ignore[method-assign]


@dataclass(frozen=True)
class Control:
    """What a strategy's ``on_epoch_end`` tells the loop.

    ``stop``: end training after this epoch. ``select``: make the current weights the selected
    model (restored at the end of ``fit``) with these figures (e.g. ``{"val_accuracy": ..}``).
    """

    stop: bool = False
    select: Optional[dict] = None


@dataclass(frozen=True)
class EscapeResult:
    """What an escape's ``on_plateau`` returns (on rank 0; the loop broadcasts it).

    ``record``: one JSON-able dict describing the call (``accepted``: bool among its keys).
    ``head_state``: ``{parameter name as in model.named_parameters(): tensor}`` to copy into the
    model when the call was accepted, ``None`` otherwise. The loop copies it into the model on every
    rank, clears the strategy's optimizer state of those parameters and restarts its patience.
    """

    record: dict
    head_state: Optional[dict] = None

    @property
    def accepted(self) -> bool:
        return self.head_state is not None
