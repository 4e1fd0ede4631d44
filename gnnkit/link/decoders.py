"""Edge decoders: node embeddings ``z`` ``[N, d]`` and edges ``[2, E]`` -> logits ``[E]``.

* :class:`DotDecoder`: ``s(u, v) = z_u · z_v`` (GAE's inner product; no parameters).
* :class:`HadamardMLPDecoder`: ``s(u, v) = MLP(z_u ⊙ z_v)``, an MLP of ``num_layers`` linear layers
  (ReLU and dropout between them) from ``d`` through ``hidden`` to one logit (the OGB baselines'
  ``LinkPredictor``). Symmetric in ``u, v`` like the dot product.
* :func:`link_loss`: binary cross-entropy on the logits, positives labeled 1 and negatives 0,
  averaged over all ``P + Q`` of them:
  ``-(1/(P+Q)) [Σ_pos log σ(s) + Σ_neg log(1 - σ(s))]``.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gnnkit.errors import GnnkitError
from gnnkit.models.dropout import relu_dropout


def _check(z: Tensor, edges: Tensor) -> None:
    if z.dim() != 2:
        raise GnnkitError(f"node embeddings must be [N, d], got {tuple(z.shape)}")
    if edges.dim() != 2 or edges.shape[0] != 2:
        raise GnnkitError(f"edges must be [2, E], got {tuple(edges.shape)}")


class DotDecoder(nn.Module):
    """``z_u · z_v`` for each edge: ``[E]``."""

    def forward(self, z: Tensor, edges: Tensor) -> Tensor:
        _check(z, edges)
        return (z[edges[0]] * z[edges[1]]).sum(-1)


class HadamardMLPDecoder(nn.Module):
    """``MLP(z_u ⊙ z_v)``: ``d -> hidden -> ... -> 1`` (``num_layers >= 1`` linear layers)."""

    def __init__(self, in_dim: int, hidden: int = 64, num_layers: int = 2, dropout: float = 0.0):
        super().__init__()
        if num_layers < 1 or min(in_dim, hidden) < 1 or not 0.0 <= dropout < 1.0:
            raise GnnkitError(f"bad MLP decoder: in_dim={in_dim} hidden={hidden} num_layers={num_layers} "
                              f"dropout={dropout}")
        dims = [in_dim] + [hidden] * (num_layers - 1) + [1]
        self.lins = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:]))
        self.dropout = dropout

    def forward(self, z: Tensor, edges: Tensor) -> Tensor:
        _check(z, edges)
        h = z[edges[0]] * z[edges[1]]
        for lin in self.lins[:-1]:
            h = relu_dropout(lin(h), self.dropout, self.training)
        return self.lins[-1](h).view(-1)


def link_loss(pos_logits: Tensor, neg_logits: Tensor) -> Tensor:
    """Mean BCE over positives (label 1) and negatives (label 0); a scalar with a gradient."""
    logits = torch.cat([pos_logits.view(-1), neg_logits.view(-1)])
    if logits.numel() == 0:
        raise GnnkitError("link_loss needs at least one positive or negative edge")
    labels = torch.cat([torch.ones_like(pos_logits.view(-1)), torch.zeros_like(neg_logits.view(-1))])
    return F.binary_cross_entropy_with_logits(logits, labels)


DECODERS = {"dot": DotDecoder, "mlp": HadamardMLPDecoder}


def make_decoder(name: str, dim: int, hidden: int = 64, num_layers: int = 2, dropout: float = 0.0) -> nn.Module:
    """``"dot"`` or ``"mlp"`` (Hadamard MLP on ``dim``-wide embeddings)."""
    if name == "dot":
        return DotDecoder()
    if name == "mlp":
        return HadamardMLPDecoder(dim, hidden, num_layers, dropout)
    raise GnnkitError(f"unknown decoder {name!r}; known: {', '.join(DECODERS)}")
