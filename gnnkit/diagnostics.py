"""Measurements of training itself: the variance of mini-batch gradients.

At a fixed model state ``θ`` (eval mode: no dropout, so only the sampling is random), with ``∇f``
the full-batch gradient of the task's loss (mean over the training nodes, whole graph) and ``g_b``
the gradients of ``draws`` independent mini-batches of ``sampler``::

    variance = (1 / draws) Σ_b ‖g_b − ∇f‖² / ‖∇f‖²        bias = ‖mean_b g_b − ∇f‖² / ‖∇f‖²

``variance`` is the mean squared error around the full gradient (it includes the squared bias);
``bias`` is small for an unbiased sampler, within ``variance / draws`` of zero.

A sampler gives one mini-batch through ``sample(generator)`` when it has it (the neighbor and MVS
samplers; MVS first refreshes its candidates, history and norms at ``θ`` through
``refresh_candidates``); otherwise its epochs are iterated, skipping batches marked ``refresh``.
"""
from __future__ import annotations

from typing import Iterator

import torch
from torch import Tensor

from .errors import GnnkitError


def _flat_grad(model: torch.nn.Module, loss: Tensor) -> Tensor:
    params = [p for p in model.parameters() if p.requires_grad]
    grads = torch.autograd.grad(loss, params, allow_unused=True)
    return torch.cat([(torch.zeros_like(p) if g is None else g).reshape(-1) for p, g in zip(params, grads)])


def _batches(sampler, draws: int, gen: torch.Generator) -> Iterator:
    if hasattr(sampler, "sample"):
        if hasattr(sampler, "refresh_candidates"):
            sampler.refresh_candidates(gen)
        for _ in range(draws):
            yield sampler.sample(gen)
        return
    n, epoch = 0, 0
    while n < draws:
        sampler.set_epoch(epoch)
        before = n
        for batch in sampler:
            if getattr(batch, "refresh", False):
                continue
            yield batch
            n += 1
            if n == draws:
                return
        if n == before:
            raise GnnkitError(f"sampler {type(sampler).__name__} yields no mini-batches to measure")
        epoch += 1


def gradient_stats(model: torch.nn.Module, data, sampler, draws: int = 100, seed: int = 0,
                   trainer=None) -> dict:
    """``{"variance", "bias", "full_norm2", "mean_batch_size", "draws"}`` at the model's current
    state (see the module docstring). ``trainer``: one whose ``fit`` set ``sampler`` up; by default
    a zero-epoch :class:`~gnnkit.trainer.Trainer` on ``data``'s device sets it up."""
    if draws < 2:
        raise GnnkitError(f"draws must be at least 2, got {draws}")
    if trainer is None:
        from .trainer import Trainer

        trainer = Trainer(sampler=sampler, max_epochs=0, progress=False, device=data.x.device, seed=seed)
        trainer.fit(model, data)
    data = trainer.data
    was = model.training
    model.eval()
    train = data.train_mask.nonzero().view(-1)
    from gnnkit.samplers.batch import Batch

    adj = trainer.ctx.graph.adjacency(model.adj_norm, model.diag_lambda)  # the model's whole-graph operator
    full = Batch(x=data.x, y=data.y, adj=adj, n_id=None, loss_index=train, num_nodes=data.num_nodes)
    full_grad = _flat_grad(model, trainer.task.training_step(model, full)[0])
    gen = torch.Generator(device=train.device).manual_seed(int(seed))
    sq, total, sizes, n = 0.0, torch.zeros_like(full_grad), 0, 0
    for batch in _batches(sampler, draws, gen):
        g = _flat_grad(model, trainer.task.training_step(model, batch)[0])
        sq += float((g - full_grad).pow(2).sum())
        total += g
        sizes += int(batch.loss_index.numel())
        n += 1
    model.train(was)
    norm2 = float(full_grad.pow(2).sum())
    if norm2 == 0.0:
        raise GnnkitError("the full-batch gradient is zero at this state; nothing to normalize by")
    return {"variance": sq / n / norm2, "bias": float((total / n - full_grad).pow(2).sum()) / norm2,
            "full_norm2": norm2, "mean_batch_size": sizes / n, "draws": n}
