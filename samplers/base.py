"""Sampler: yields the batches of one epoch (:class:`~samplers.batch.Batch`).

Protocol. ``setup(ctx, model)`` runs once at fit start with the read-only
:class:`~gnnkit.context.RunContext` (its ``graph`` and ``features`` stores are the only way a
sampler reads the graph: structure through ``ctx.graph``, features, labels and masks through
``ctx.features.get(name, ids)``) and the model (read only: its layer count, its normalization,
and MVS's exact no-grad passes). ``set_epoch(epoch)`` comes before each epoch, so a resumed run
draws the same batches; ``__iter__`` yields this rank's share of the epoch (equal step counts on
every rank) and ``__len__`` counts it. A sampler that sets ``wants_feedback = True`` gets
``feedback(batch, outputs)`` after every step with the step's outputs (``logits``, ``embedding``,
``loss``); its batches are then produced in the loop (the next one depends on the step). A sampler
that sets ``background = False`` is never run in the sampling pipeline's thread
(:mod:`samplers.pipeline`); the others must draw only from their epoch's generator (not torch's
global one), make no collective calls while iterating, and keep no state the step changes.
Seed selection, shuffling, sharding and epoch seeding live in :mod:`samplers.loader`.

``sample_from_nodes(seeds)`` gives the batch whose loss rows are the nodes ``seeds``;
``sample_from_edges(edge_label_index, edge_label)`` the batch that scores the given edges (link
prediction). A sampler that cannot do one raises a :class:`~gnnkit.errors.GnnkitError` naming it.
A sampler never writes to the model, the context or the trainer.
"""
from __future__ import annotations

import abc
from typing import ClassVar, Iterator, Optional

from torch import Tensor

from gnnkit.errors import GnnkitError
from gnnkit.plugins import Plugin

from .batch import Batch


def check_edge_attr(data, model) -> None:
    """A :class:`GnnkitError` when ``data`` (a PyG ``Data``) carries ``edge_attr`` and ``model`` does not
    declare ``takes_edge_attr = True`` (gnnkit's own models read no edge features): silently ignoring
    them would train another model than the user meant."""
    from torch_geometric.data import Data

    attr = getattr(data, "edge_attr", None) if isinstance(data, Data) else None
    if attr is None or getattr(model, "takes_edge_attr", False):
        return
    raise GnnkitError(f"the graph has edge_attr {tuple(attr.shape)} but {type(model).__name__} cannot use edge "
                      "features; drop them (gnnkit.data.load(..., drop_edge_attr=True), or del data.edge_attr) or "
                      "train a PyG model whose forward takes edge_attr")


def wants_edges(model) -> bool:
    """Whether ``model`` reads a PyG-style :class:`~samplers.batch.PygEdges` (``wants_edge_index``)."""
    return bool(getattr(model, "wants_edge_index", False))


def edge_attr_of(ctx, model, eid: Optional[Tensor] = None) -> Optional[Tensor]:
    """``data.edge_attr`` rows ``eid`` (all when ``None``) for a model that takes edge features,
    else ``None`` (a graph given as stores carries no edge features)."""
    if not getattr(model, "takes_edge_attr", False):
        return None
    attr = getattr(ctx.data, "edge_attr", None)
    if attr is None:
        return None
    return attr if eid is None else attr[eid]


class Sampler(Plugin, abc.ABC):
    axis = "sampler"
    package = "gnnkit.samplers"
    _registry: ClassVar[dict[str, type]] = {}

    wants_feedback: bool = False
    background: bool = True  # whether samplers.pipeline may run __iter__ in a background thread
    epoch: int = 0

    def setup(self, ctx, model) -> None:
        """Keep the context and the model (read only); subclasses call this first. Refuses a graph
        with ``edge_attr`` for a model that cannot read it (:func:`check_edge_attr`)."""
        from gnnkit.models.pyg import is_pyg_model

        if is_pyg_model(model):
            raise GnnkitError(f"{type(model).__name__} is a PyG-style module (forward(x, edge_index)): train it as "
                              "gnnkit.models.pyg.PyGModel(model)")
        check_edge_attr(ctx.data, model)
        self.ctx, self.model, self.epoch = ctx, model, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    @abc.abstractmethod
    def __iter__(self) -> Iterator[Batch]:
        """This rank's batches of epoch ``self.epoch``."""

    @abc.abstractmethod
    def __len__(self) -> int:
        """The number of batches ``__iter__`` yields (the same on every rank)."""

    def feedback(self, batch: Batch, outputs: dict) -> None:
        """Per-step outputs for samplers that set ``wants_feedback`` (MVS: gradient norms)."""

    def sample_from_nodes(self, seeds: Tensor) -> Batch:
        """The batch whose loss rows are the nodes ``seeds`` ``[B]``."""
        raise GnnkitError(f"the {self.name} sampler cannot build a batch from given seed nodes")

    def sample_from_edges(self, edge_label_index: Tensor, edge_label: Optional[Tensor] = None) -> Batch:
        """The batch that scores the edges ``edge_label_index`` ``[2, E]`` (labels ``[E]``)."""
        raise GnnkitError(f"the {self.name} sampler does not sample from edges yet (link prediction): "
                          "use the full or neighbor sampler")

    def state_dict(self) -> dict:
        return {"epoch": self.epoch}

    def load_state_dict(self, state: dict) -> None:
        self.epoch = int(state.get("epoch", self.epoch))
