"""Historical embeddings: a per-layer store of node embeddings, and batches that read it.

For a mini-batch of nodes ``S`` (the loss rows), every graph layer computes the rows of ``S`` only,
from the **exact** normalized full-graph weights (MVS-GNN, Cong et al. 2020, Eq. 7)::

    h_i^{l+1} = σ( Σ_{j ∈ N(i) ∩ S} Â_ij h_j^l W  +  Σ_{j ∈ N(i) \\ S} Â_ij h̄_j^l W ),   i ∈ S

with ``h̄^l`` the stored embedding of the out-of-batch neighbor ``j`` for hidden layers and its raw
features ``x_j`` at the input layer. So every layer uses the same bipartite block
``Â[S, S ‖ halo]`` (``halo = N(S) \\ S``, columns ordered batch first), and the input of layer
``l ≥ 1`` is ``[fresh rows of S ‖ stored rows of the halo]``. When the stored rows equal the
current exact embeddings (same parameters), the output rows equal the full-graph model's rows
exactly, so an importance-weighted loss over ``S`` is an unbiased estimate of the full loss and
its gradient with respect to the head is unbiased (Lemma 3.2's setting). The stored rows are
constants, though: the lower layers' gradient misses the paths through out-of-batch neighbors,
a bias that vanishes only as every node is kept (``tests/test_mvs.py`` checks the unbiased parts; the
authors' ``ForwardWrapper_v2`` detaches its history the same way).

The model consults the batch through the ``layer_input(model, i, h)`` hook of the per-layer list
(:meth:`gnnkit.models.GNN.embed`): :class:`HistoryBlocks` appends the halo's stored rows of layer
``i`` (dropped out like the fresh rows when the model trains with dropout) and pushes the fresh
rows. Fresh rows are pushed only when they are exact activations (``model.training`` off, or no
dropout and no batch norm): a dropped-out row is a noisy copy that the next use would drop out a
second time, so under dropout the store is written by exact passes only (:meth:`HistoryStore.push`
from a sampler's no-grad refresh).
"""
from __future__ import annotations

import os
import shutil
import tempfile
from typing import Callable, Dict, Optional

import torch
from torch import Tensor, nn

from .data.limits import format_bytes, memory_limit
from .models.dropout import dropout
from .errors import GnnkitError
from .sparse import Adjacency

Allocate = Callable[[int, int, torch.dtype], Tensor]
HISTORY_MODES = ("auto", "memory", "disk")
MEMORY_SHARE = 0.25  # "auto": a layer bigger than this share of the machine's memory goes to a file


class HistoryStore:
    """Stored embeddings ``h̄^l`` ``[N, d_l]`` per layer ``l`` (layer ``l``'s *input*), on ``device``.

    Layers are allocated on their first push (the width comes from the pushed rows). Rows never
    pushed cannot be pulled (a :class:`~gnnkit.errors.GnnkitError` names the layer). ``allocate(rows,
    width, dtype)`` returns the zero-filled ``[rows, width]`` array of a layer (default: ``torch.zeros``
    on ``device``); a graph bigger than memory passes a file-backed one (e.g. ``torch.from_file``).
    """

    def __init__(self, num_nodes: int, device="cpu", dtype: torch.dtype = torch.float32,
                 allocate: Optional[Callable[[int, int, torch.dtype], Tensor]] = None):
        if num_nodes < 1:
            raise GnnkitError(f"a history store needs at least one node, got {num_nodes}")
        self.num_nodes, self.device, self.dtype = int(num_nodes), torch.device(device), dtype
        self.allocate = allocate or (lambda rows, width, dt: torch.zeros(rows, width, dtype=dt, device=self.device))
        self.emb: Dict[int, Tensor] = {}
        self.filled: Dict[int, Tensor] = {}

    def push(self, layer: int, ids: Tensor, values: Tensor) -> None:
        """``h̄^layer[ids] = values`` (detached): ``ids`` ``[n]`` global ids, ``values`` ``[n, d]``."""
        if values.dim() != 2 or values.shape[0] != ids.numel():
            raise GnnkitError(f"history push: {ids.numel()} ids but values of shape {tuple(values.shape)}")
        if layer not in self.emb:
            self.emb[layer] = self.allocate(self.num_nodes, values.shape[1], self.dtype)
            self.filled[layer] = torch.zeros(self.num_nodes, dtype=torch.bool, device=self.device)
        elif self.emb[layer].shape[1] != values.shape[1]:
            raise GnnkitError(f"history layer {layer} holds width {self.emb[layer].shape[1]}, got {values.shape[1]}")
        ids = ids.to(self.device)
        self.emb[layer][ids] = values.detach().to(self.device, self.dtype)
        self.filled[layer][ids] = True

    def pull(self, layer: int, ids: Tensor, device=None) -> Tensor:
        """``h̄^layer[ids]`` ``[n, d]`` on ``device`` (default: the ids' device)."""
        device = ids.device if device is None else device
        if layer not in self.emb:
            raise GnnkitError(f"history layer {layer} was never written; refresh it before pulling")
        ids_here = ids.to(self.device)
        if ids.numel() and not bool(self.filled[layer][ids_here].all()):
            raise GnnkitError(f"history layer {layer}: some requested nodes were never written")
        return self.emb[layer][ids_here].to(device, non_blocking=True)


def file_backed(folder: Optional[str] = None) -> Allocate:
    """``allocate(rows, width, dtype)`` that maps a zero-filled ``[rows, width]`` array onto a new
    file in ``folder`` (default: the system's temporary folder). The file is sparse (no byte is
    written until a row is), removed from the folder as soon as it is mapped (its space is given
    back when the array is freed or the process ends), and refused with a :class:`GnnkitError`
    naming both sizes when the folder's free space is smaller than the array."""
    folder = os.fspath(folder) if folder is not None else tempfile.gettempdir()

    def allocate(rows: int, width: int, dtype: torch.dtype) -> Tensor:
        nbytes = rows * width * dtype.itemsize
        if not os.path.isdir(folder):
            raise GnnkitError(f"history folder {folder} does not exist")
        free = shutil.disk_usage(folder).free
        if nbytes > free:
            raise GnnkitError(f"a history layer [{rows} x {width}] {dtype} needs {format_bytes(nbytes)} of disk; "
                              f"{folder} has {format_bytes(free)} free")
        fd, path = tempfile.mkstemp(prefix="gnnkit-history-", suffix=".bin", dir=folder)
        try:
            os.ftruncate(fd, nbytes)
            out = torch.from_file(path, shared=True, size=rows * width, dtype=dtype).view(rows, width)
        finally:
            os.close(fd)
            os.unlink(path)
        return out

    return allocate


def history_allocator(mode: str = "auto", device="cpu", folder: Optional[str] = None,
                      budget: Optional[int] = None) -> Optional[Allocate]:
    """Where :class:`HistoryStore` keeps its layers: ``"memory"`` (``None``: the store's default,
    ``torch.zeros`` on its device), ``"disk"`` (:func:`file_backed` in ``folder``), or ``"auto"``:
    on a CPU device, a layer of ``rows · width · itemsize`` bytes above ``budget`` (default
    ``MEMORY_SHARE`` of :func:`gnnkit.data.limits.memory_limit`) goes to a file, a smaller one
    stays in memory; a GPU device keeps its layers in its memory. The rows are the same numbers
    wherever they live, so the choice never changes a result."""
    if mode not in HISTORY_MODES:
        raise GnnkitError(f"history must be one of {', '.join(HISTORY_MODES)}, got {mode!r}")
    if mode == "memory" or (mode == "auto" and torch.device(device).type != "cpu"):
        return None
    mapped = file_backed(folder)
    if mode == "disk":
        return mapped
    limit = int(MEMORY_SHARE * memory_limit()) if budget is None else int(budget)

    def allocate(rows: int, width: int, dtype: torch.dtype) -> Tensor:
        if rows * width * dtype.itemsize > limit:
            return mapped(rows, width, dtype)
        return torch.zeros(rows, width, dtype=dtype, device=device)

    return allocate



def pushes_exact(model: nn.Module) -> bool:
    """Whether a training-mode forward of ``model`` computes exact (deterministic) activations."""
    if not model.training:
        return True
    bn = any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())
    return getattr(model, "dropout", 0.0) == 0 and not bn


class HistoryBlocks(list):
    """``num_layers`` copies of one block ``Â[S, S ‖ halo]`` that pull the halo from ``store``.

    ``layer_input(model, i, h)``: ``h`` ``[|S|, d]`` are the fresh rows of layer ``i``'s input;
    returns ``[|S| + |halo|, d]``, the halo's stored rows appended (with the model's dropout in
    training mode), after pushing ``h`` when it is exact (:func:`pushes_exact`).
    """

    def __init__(self, block: Adjacency, num_layers: int, batch: Tensor, halo: Tensor,
                 store: HistoryStore, push: bool = True):
        super().__init__([block] * num_layers)
        self.batch, self.halo, self.store, self.push = batch, halo, store, push

    def layer_input(self, model: nn.Module, i: int, h: Tensor) -> Tensor:
        if self.push and pushes_exact(model):
            self.store.push(i, self.batch, h)
        old = self.store.pull(i, self.halo, h.device).to(h.dtype)
        if model.training and getattr(model, "dropout", 0.0):
            old = dropout(old, model.dropout, True)
        return torch.cat([h, old], dim=0)


@torch.no_grad()
def exact_pass(model: nn.Module, x: Tensor, blocks, n_id: Tensor, store: Optional[HistoryStore]):
    """A no-grad, eval-mode forward over exact full-neighborhood ``blocks`` (layer order, as the
    neighbor sampler builds them with all neighbors) that pushes every layer's exact rows into
    ``store``. Returns ``(logits, embedding)`` of the output rows ``n_id[:blocks[-1].num_rows]``."""
    was = model.training
    model.eval()
    h = x
    for i in range(len(model.layers)):
        h = model.apply_layer(i, h, blocks[i])
        if store is not None:
            store.push(i + 1, n_id[:h.shape[0]], h)
    emb = model.head_input(h, blocks[len(model.layers)])
    logits = model.head(emb)
    model.train(was)
    return logits, emb
