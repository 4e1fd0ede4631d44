"""The plain-PyTorch GIN epoch and evaluation the graph benchmarks share (gnnkit's batching;
the Trainer integration of issue 24 replaces them)."""
from __future__ import annotations

import torch


def train_epoch(model, loader, opt, epoch: int, task: str = "multiclass") -> None:
    """One epoch over ``loader`` (a :class:`gnnkit.graphs.GraphLoader`, reshuffled for ``epoch``):
    ``model(x, adj, ptr)`` ``[B, C]``, :func:`gnnkit.graphs.graph_loss`, one optimizer step per batch."""
    from gnnkit.graphs import graph_loss

    loader.set_epoch(epoch)
    model.train()
    for b in loader:
        opt.zero_grad()
        graph_loss(model(b.x, b.adj, b.ptr), b.y, task).backward()
        opt.step()


def evaluate(model, batcher, ids) -> float:
    """Accuracy of ``model`` (eval mode, no gradient) on the graphs ``ids`` as one batch."""
    from gnnkit.graphs import accuracy

    model.eval()
    with torch.no_grad():
        b = batcher(ids)
        return accuracy(model(b.x, b.adj, b.ptr), b.y)
