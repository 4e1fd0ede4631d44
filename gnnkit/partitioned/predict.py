"""Whole-graph output over the parts, layer by layer: :func:`predict_parts`.

The same computation as a model's ``inference`` on the whole normalized adjacency, split by
owner: for layer ``l`` each rank computes ``h_l`` of its own rows only, in chunks of ``B`` rows.
A chunk's block is the exact rows of ``Â`` (all in-neighbors, weighted as the neighbor sampler
weighs a block whose every neighbor is kept: for ``"gcn"`` ``1/sqrt((d_i+1)(d_j+1))`` and the
self-loop ``1/(d_i+1)``, for ``"mean"`` ``1/d_i``, for ``"sum"`` 1), built from the part's rows and
the book's degrees without a round; the inputs ``h_{l-1}`` of its columns owned elsewhere come in
one exchange round per chunk. Every rank runs ``ceil(max_r n_r / B)`` chunks per layer (a rank
with fewer rows sends empty requests), so the rounds stay in lockstep. Only ``h_{l-1}`` and
``h_l`` of the rank's own rows (``n_r x hidden``) are held, never ``N x hidden``. At the end the
logits ``[n_r, C]`` are all-gathered into ``[N, C]`` so the task scores them unchanged (every
rank computes the same figures: the metrics are reduced across ranks by that gather).
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

from gnnkit.errors import GnnkitError

CHUNK = 1 << 14


class _Owned:
    """The graph as :func:`samplers.neighbor.sample_block` reads it, for ids this rank owns."""

    def __init__(self, graph):
        self.graph = graph

    def in_degree(self, ids=None):
        return self.graph.in_degree(ids)

    def weighted_in_degree(self, ids=None):
        return self.graph.weighted_in_degree(ids)

    def sample_edges(self, ids, k, gen):
        return self.graph.local_edges(ids, -1)


def _check(ctx, model) -> None:
    if getattr(model, "wants_edge_index", False) or not callable(getattr(model, "apply_layer", None)):
        raise GnnkitError(f"{type(model).__name__}: partition-parallel evaluation runs gnnkit's block models "
                          "(apply_layer/head_input/head), not PyG-style modules")
    if ctx.adj_norm not in ("gcn", "mean", "sum"):
        raise GnnkitError(f"partition-parallel evaluation builds gcn, mean or sum rows; the model wants {ctx.adj_norm!r}")


def _layer(model, i: int, h: Tensor, graph, chunk: int, lid: Tensor, norm: str) -> Tensor:
    """``h_{i+1}`` ``[n_r, ...]`` of this rank's rows from ``h = h_i`` ``[n_r, ...]`` of its rows."""
    from gnnkit.samplers.neighbor import sample_block

    part, exchange = graph.part, graph.exchange
    n_r, owned = part.global_ids.numel(), _Owned(graph)
    fetch = lambda rows, head: (torch.ones(rows.numel(), dtype=torch.long), [h[rows]])  # noqa: E731
    outs = []
    for c in range(math.ceil(max(part.sizes) / chunk)):
        rows = torch.arange(min(c * chunk, n_r), min((c + 1) * chunk, n_r))
        block, new = sample_block(owned, part.global_ids[rows], -1, norm, None, lid)
        _, (h_new,) = exchange.round(new, fetch, fixed=True)
        cols, root = torch.cat([h[rows], h_new]), h[rows]
        last = i == len(model.layers)
        out = model.head_input(cols, block, root) if last else model.apply_layer(i, cols, block, root)
        if rows.numel():
            outs.append(out)
    return torch.cat(outs) if outs else h.new_zeros((0, *h.shape[1:]))


@torch.no_grad()
def predict_parts(ctx, model, graph) -> Tensor:
    """``[N, C]``: ``model``'s output for every node, computed by the ranks of their own rows."""
    _check(ctx, model)
    part, exchange = graph.part, graph.exchange
    was_training = model.training
    model.eval()
    chunk = ctx.inference_batch_size or CHUNK
    lid = torch.full((part.num_nodes,), -1, dtype=torch.long)
    h = part.features.get("x")
    for i in range(len(model.layers) + 1):
        h = _layer(model, i, h, graph, chunk, lid, ctx.adj_norm)
    logits = torch.cat([model.head(h[s:s + chunk]) for s in range(0, h.shape[0], chunk)]) if h.shape[0] \
        else model.head(h)
    model.train(was_training)
    parts = exchange.all_gather(logits.float(), part.sizes)
    owner, local = part.book.owner.long(), part.book.local.long()
    out = torch.empty((part.num_nodes, logits.shape[1]), dtype=torch.float32)
    for q, rows in enumerate(parts):  # a loop over ranks
        at = (owner == q).nonzero().view(-1)
        out[at] = rows[local[at]]
    return out
