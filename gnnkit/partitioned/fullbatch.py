"""Full-batch partition-parallel training: each rank computes its own rows of every layer, exactly.

Rank ``r`` holds one part (:func:`gnnkit.partitioned.open_part`): the owned nodes ``R_r``, their
CSR rows (global source ids), features, labels and masks. :func:`part_adjacency` turns them into a
:class:`~gnnkit.partitioned.halo.HaloAdjacency` (the rows ``Â[R_r, :]`` normalized with global
degrees, plus the plan of the per-layer halo exchange), so a forward pass of gnnkit's GCN,
GraphSAGE or MLP on ``(x[R_r], adj)`` gives exactly the rows ``R_r`` of the one-process forward, and
its backward the exact gradients (halo gradients are sent back to their owners).

Loss: each rank sums the cross-entropy of ALL its training nodes with weight ``P / n_train`` (``P``
ranks, ``n_train`` training nodes over all parts); DistributedDataParallel averages the ranks'
gradients, so the update is the gradient of ``(1 / n_train) Σ_i ℓ_i``, the one-process loss. (Each
rank's gradient is the part of the total that its rows' computation contributes: the halo
gradients it sent back carry the other ranks' losses into its rows.)

Supported: :class:`~gnnkit.models.GCN`, :class:`~gnnkit.models.GraphSAGE` and
:class:`~gnnkit.models.MLP` (and their subclasses) with any of the ``"gcn"``, ``"mean"``, ``"sum"``,
``"diag"`` operators, ``norm=None`` or ``"layer"``, residual or not. Refused: batch normalization
(its statistics would be per part) and models that read the graph their own way (PyG modules).
Dropout is drawn per rank over its own rows: training equals one process in distribution, and bit
for bit (within float rounding) when ``dropout=0``.
"""
from __future__ import annotations

from typing import Optional, Sequence

import torch
import torch.distributed as tdist
import torch.nn.functional as F
from torch import Tensor, nn

from gnnkit import distributed as gdist
from gnnkit.errors import GnnkitError

from .halo import HaloAdjacency, HaloIndex, HaloPlan, comm_device, normalized_block, row_chunks

def halo_group():
    """The process group the halo exchanges run on (all ranks; its own, so that they never interleave
    with DistributedDataParallel's gradient all-reduce on the default group); ``None`` with one process."""
    return gdist.side_group("halo")


def _all_sum(values: Sequence[float], group=None, dtype=torch.float64) -> list:
    """The element-wise sum over all ranks of a short list of numbers."""
    t = torch.tensor(list(values), dtype=dtype)
    if gdist.is_initialized() and gdist.world_size() > 1:
        t = t.to(comm_device(group))
        tdist.all_reduce(t, group=group)
    return t.cpu().tolist()


def _book(part, ids: Tensor):
    """``(owner [k], position [k])`` of the global ``ids`` from the part's replicated book."""
    book = part.book
    if callable(getattr(book, "locate", None)):
        return book.locate(ids)
    return book.owner[ids], book.local[ids]


def check_model(model: nn.Module) -> None:
    """A :class:`GnnkitError` for a model this mode cannot train exactly (see the module docstring)."""
    from gnnkit.models import GCN, MLP, GraphSAGE

    if not isinstance(model, (GCN, GraphSAGE, MLP)):
        raise GnnkitError(f"full-batch partition-parallel training runs gnnkit's GCN, GraphSAGE and MLP; "
                          f"{type(model).__name__} is not one of them (use the neighbor sampler on parts)")
    if any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules()):
        raise GnnkitError("full-batch partition-parallel training cannot use batch normalization (its "
                          "statistics would be per part): use --norm layer or none (norm='layer' or None)")


def check_world(part) -> None:
    """The run must have exactly one rank per part, rank ``r`` holding part ``r``."""
    world, rank = gdist.world_size(), gdist.rank()
    if int(part.num_parts) != world or int(part.rank) != rank:
        raise GnnkitError(f"computing over a partitioned graph needs every rank, one per part: rank {rank} of "
                          f"{world} holds part {part.rank} of {part.num_parts} (work that one rank does alone, "
                          "such as an escape's search, cannot run over parts)")


def _halo_index(part, indptr: Tensor, indices: Tensor, rank: int) -> HaloIndex:
    """The part's :class:`HaloIndex`: its rows' sources owned elsewhere, found chunk by chunk
    (a bool mark per global node, ``N`` bytes, instead of a sort of all ``E_r`` sources)."""
    seen = torch.zeros(int(part.num_nodes), dtype=torch.bool)
    for _, _, e0, e1 in row_chunks(indptr):
        cols = indices[e0:e1].long()
        seen[cols[_book(part, cols)[0] != rank]] = True
    ids = seen.nonzero().squeeze(1)
    return HaloIndex(ids, *_book(part, ids), indptr.numel() - 1)


def _own_degrees(indptr: Tensor, weight: Optional[Tensor], dtype: torch.dtype) -> Tensor:
    """The owned rows' weighted in-degrees ``[n]`` (entry counts when unweighted)."""
    if weight is None:
        return indptr.diff().to(dtype)
    deg = torch.zeros(indptr.numel() - 1, dtype=dtype)
    for r0, r1, e0, e1 in row_chunks(indptr):
        rows = torch.repeat_interleave(torch.arange(r1 - r0), indptr[r0 + 1:r1 + 1] - indptr[r0:r1],
                                       output_size=e1 - e0)
        deg[r0:r1].index_add_(0, rows, weight[e0:e1].to(dtype))
    return deg


def part_adjacency(part, norm: str, diag_lambda: float = 0.0, dtype: torch.dtype = torch.float32) -> HaloAdjacency:
    """This rank's :class:`HaloAdjacency` in normalization ``norm`` (collective: every rank calls it).

    Reads the owned rows' CSR (global source ids) and their weights chunk by chunk, finds the halo
    in the book, builds the halo plan, fetches the halo nodes' global in-degrees with one exchange,
    and normalizes (:func:`~gnnkit.partitioned.halo.normalized_block`).
    """
    check_world(part)
    group, rank = halo_group(), gdist.rank()
    indptr, indices = part.graph.csr()
    indptr = indptr.long()
    n = indptr.numel() - 1
    halo = _halo_index(part, indptr, indices, rank)
    plan = HaloPlan.build(halo.owner, halo.pos, n, group)
    weight = part.graph.csr_weight()
    deg = _own_degrees(indptr, weight, dtype)
    if norm in ("gcn", "diag"):
        deg = deg + 1.0  # the self-loop of A + I
    deg_all = torch.cat([deg, plan.gather(deg[:, None])[:, 0]])
    own, far = normalized_block(indptr, indices, weight, lambda cols: halo.local(cols, *_book(part, cols), rank),
                                deg_all, norm, diag_lambda if norm == "diag" else 0.0)
    plan.sent_bytes = plan.received_bytes = plan.rounds = 0  # count training and evaluation only
    nnz = int(_all_sum([own.nnz + far.nnz], group, torch.int64)[0])
    return HaloAdjacency(own, far, plan, int(part.num_nodes), nnz)


def train_rows(features, group=None) -> tuple[Tensor, Tensor]:
    """``(loss_index [m], loss_weight [m])``: every owned training node, weighted ``P / n_train``."""
    idx = features.index("train_mask")
    total = int(_all_sum([idx.numel()], group, torch.int64)[0])
    if total == 0:
        raise GnnkitError("full-batch partition-parallel training: no part has a training node")
    return idx, torch.full((idx.numel(),), gdist.world_size() / total, device=idx.device)


def features_of(ctx, part):
    """The part's own feature store as the run reads it (``x`` in the run precision's type,
    :func:`gnnkit.precision.cast_features`)."""
    from gnnkit.precision import cast_features

    return cast_features(part.features, getattr(ctx, "precision", "32"))


def part_of(ctx):
    """The :class:`~gnnkit.partitioned.Part` this rank trains on (``ctx.graph.part``), or ``None``."""
    return getattr(ctx.graph, "part", None) if ctx is not None else None


def cached_adjacency(part, norm: str, diag_lambda: float, device) -> HaloAdjacency:
    """:func:`part_adjacency` on ``device``, built once per ``(norm, λ)`` and kept on the part (the
    same calls on every rank, so the collective build happens everywhere at the same time)."""
    check_world(part)
    lam = float(diag_lambda or 0.0) if norm == "diag" else 0.0
    cache = part.__dict__.setdefault("_halo_adjacency", {})
    key = (norm, lam, str(device))
    if key not in cache:
        cache[key] = part_adjacency(part, norm, lam).to(device)
    return cache[key]


def part_batch(ctx, model: nn.Module, part):
    """The full batch of this rank's part: ``x``/``y`` of the owned rows, the :class:`HaloAdjacency`
    in the model's operator, the loss on every owned training node weighted ``P / n_train``
    (:func:`train_rows`), ``n_id`` the owned rows' global ids."""
    from gnnkit.samplers.batch import Batch

    check_model(model)
    adj = cached_adjacency(part, ctx.adj_norm, ctx.diag_lambda, ctx.device)
    idx, weight = train_rows(part.features)
    dev = ctx.device
    return Batch(x=features_of(ctx, part).get("x").to(dev), y=part.features.get("y").to(dev), adj=adj,
                 n_id=part.global_ids.to(dev), loss_index=idx.to(dev), loss_weight=weight.to(dev),
                 num_nodes=adj.num_owned)


def evaluate_parts(ctx, model: nn.Module, task, splits: Sequence[str]) -> dict:
    """The loop's evaluation when each rank holds one part: exact layer-wise inference of the owned
    rows (:func:`predict`) and the task's figures reduced over the parts (:func:`score`)."""
    part = part_of(ctx)
    check_model(model)
    adj = cached_adjacency(part, ctx.adj_norm, ctx.diag_lambda, ctx.device)
    logits = predict(model, features_of(ctx, part).get("x").to(ctx.device), adj)
    return score(task, part.features, logits, splits)


@torch.no_grad()
def predict(model: nn.Module, x: Tensor, adj: HaloAdjacency) -> Tensor:
    """The logits ``[|R_r|, C]`` of this rank's rows: the model's layer-wise inference, one halo
    exchange per layer (collective)."""
    return model.inference(x, adj, batch_size=None)


def score(task, features, logits: Tensor, splits: Sequence[str] = ("train", "val", "test")) -> dict:
    """``{split}_{metric}``, ``{split}_loss`` and the user's metrics over ALL parts, from this rank's
    ``logits`` ``[|R_r|, C]`` (node classification: labels and masks of the owned rows in ``features``).

    Accuracy and the mean cross-entropy are sums of correct predictions, losses and counts,
    all-reduced (equal to one process up to float rounding); any other figure (an OGB evaluator's
    that is not accuracy, a user metric) gathers the split's logits and labels from every rank
    (``m x C`` on each) and scores them as one process would.
    """
    from gnnkit.tasks.node import NodeClassification

    if not isinstance(task, NodeClassification):
        raise GnnkitError(f"evaluation over parts scores node classification; the {type(task).__name__} task "
                          "cannot run on a partitioned graph")
    y = features.get("y").to(logits.device)
    masks = [features.get(f"{s}_mask").to(logits.device) for s in splits]
    per = []
    for mask in masks:
        lg, lb = logits[mask], y[mask]
        correct = float((lg.argmax(-1) == lb).sum()) if lb.numel() else 0.0
        loss = float(F.cross_entropy(lg, lb, reduction="sum")) if lb.numel() else 0.0
        per += [correct, loss, float(lb.numel())]
    sums = _all_sum(per)
    evaluator = getattr(task, "evaluator", None)
    counted = task.metric == "accuracy" and (evaluator is None or evaluator.eval_metric == "acc")
    out, nan = {}, float("nan")
    for k, (s, mask) in enumerate(zip(splits, masks)):
        correct, loss, count = sums[3 * k: 3 * k + 3]
        out[f"{s}_{task.metric}"] = correct / count if count else nan
        out[f"{s}_loss"] = loss / count if count else nan
        if counted and not task.metrics:
            continue
        lg, lb = _gather_rows(logits[mask]), _gather_rows(y[mask])
        if not counted:
            out[f"{s}_{task.metric}"] = task.figure(lg, lb)
        task.user_figures(s, lg, lb, out)
    return out


def _gather_rows(t: Tensor) -> Tensor:
    """Every rank's ``t`` ``[m_r, ...]`` concatenated in rank order (on every rank)."""
    if not gdist.is_initialized() or gdist.world_size() == 1:
        return t
    counts = [int(c) for c in _all_counts(t.shape[0])]
    dev = comm_device()
    pad = t.new_zeros((max(counts), *t.shape[1:]), device=dev)
    pad[: t.shape[0]] = t
    parts = [torch.empty_like(pad) for _ in counts]
    tdist.all_gather(parts, pad)
    return torch.cat([p[:c] for p, c in zip(parts, counts)]).to(t.device)


def _all_counts(m: int) -> list:
    dev = comm_device()
    box = [torch.zeros(1, dtype=torch.int64, device=dev) for _ in range(gdist.world_size())]
    tdist.all_gather(box, torch.tensor([m], dtype=torch.int64, device=dev))
    return [int(b) for b in box]


def traffic(part) -> dict:
    """This rank's halo-exchange traffic so far over every adjacency built for ``part``:
    ``{"bytes_sent", "bytes_received", "rounds"}`` (forward and backward, training and evaluation)."""
    plans = [adj.plan for adj in part.__dict__.get("_halo_adjacency", {}).values()]
    return {"bytes_sent": sum(p.sent_bytes for p in plans), "bytes_received": sum(p.received_bytes for p in plans),
            "rounds": sum(p.rounds for p in plans)}
