"""Sampler: yields the batches of one epoch.

A batch is a PyG :class:`~torch_geometric.data.Data` holding

* ``x`` ``[n_in, F]``: input features of the batch's nodes;
* ``adj``: an :class:`~gnnkit.sparse.Adjacency` ``[n_out, n_in]``, or a list of them, one per
  layer (bipartite: layer ``l`` maps ``adj[l].num_cols`` rows to the first ``adj[l].num_rows``);
* ``y`` ``[n_out]`` labels of the output rows, ``n_id`` ``[n_in]`` global ids (``None`` for the
  whole graph);
* ``loss_index`` ``[m]``: output rows that carry the loss, and optionally ``loss_weight`` ``[m]``:
  when given the loss is ``Σ_i w_i ℓ_i`` (weights already normalized, e.g. importance weights),
  otherwise the mean of ``ℓ_i``.

``setup(trainer, data)`` runs once at fit start with the whole (validated, on-device) graph and the
model (``trainer.model``); ``set_epoch(epoch)`` before each epoch, so that a resumed run draws the
same batches. A sampler that sets ``wants_feedback = True`` gets ``feedback(batch, outputs)`` after
every step with the step's outputs (``logits``, ``embedding``, ``loss``).

Under ``torch.distributed`` the sampler reads ``trainer.rank``/``trainer.world_size`` and yields
only its rank's share, with the same number of steps on every rank.
"""
from __future__ import annotations

from typing import ClassVar, Iterator

from gnnkit.plugins import Plugin


class Sampler(Plugin):
    axis = "sampler"
    package = "gnnkit.samplers"
    _registry: ClassVar[dict[str, type]] = {}

    wants_feedback: bool = False

    def setup(self, trainer, data) -> None:
        self.trainer = trainer
        self.data = data
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator:
        raise NotImplementedError  # abstract: every sampler defines it

    def __len__(self) -> int:
        raise NotImplementedError  # abstract: every sampler defines it

    def feedback(self, batch, outputs: dict) -> None:
        """Per-step outputs for samplers that set ``wants_feedback`` (MVS: gradient norms)."""
