"""Halo exchange: the rows of a layer that a rank needs from the other ranks, forward and backward.

Rank ``r`` owns the rows ``R_r`` of the graph (a part). Its share of the whole graph's normalized
adjacency ``Â`` ``[N, N]`` is the block of rows ``Â[R_r, :]``, whose nonzero columns are ``R_r`` and
the *halo* ``H_r``: in-neighbours of ``R_r`` owned by other ranks. Locally that block is the
``[|R_r|, |R_r| + |H_r|]`` CSR ``Â_r`` (columns: the owned rows in part order, then the halo rows
grouped by owner and, inside an owner, by their position there), normalized with the GLOBAL degrees,
so ``Â_r`` equals those rows of the one-process matrix (up to the order of the terms in a row sum).

One layer's product ``(Â h)[R_r] = Â_r [h[R_r] ; h[H_r]]`` needs ``h[H_r]``: :class:`HaloPlan`
fetches it with one ``all_to_all_single`` over all ranks (a collective of both gloo and NCCL): rank
``q`` sends rank ``r`` the rows of its nodes that ``r``'s halo holds. Its backward is the reverse
exchange: the gradient ``dL/dh[H_r]`` ``[|H_r|, d]`` travels back to the owners, who add it to their
own rows' gradient (``index_add``). :class:`HaloAdjacency` wraps ``Â_r`` and the plan so that
``adj @ h_own`` (``h_own`` ``[|R_r|, d]``) does exchange + product, and gnnkit's GCN and GraphSAGE
run on it unchanged (their layers only ever compute ``adj @ h``).

Every rank must take part in every exchange (same layers, same order): :class:`HaloAdjacency`
reports the GLOBAL shape ``[N, N]`` and nonzero count, so every size-driven choice a layer makes
(GCN's ``transform_first``: aggregate before or after the linear map) is the same on every rank.
"""
from __future__ import annotations

from typing import List, Optional

import torch
import torch.distributed as tdist
from torch import Tensor

from gnnkit.errors import GnnkitError
from gnnkit.sparse import Adjacency
from gnnkit.sparse.build import index_dtype, make_csr

NORMS = ("gcn", "mean", "sum", "diag")


def comm_device(group=None) -> torch.device:
    """Where tensors must be for ``group``'s collectives (``None``: the default group): the current
    CUDA device under NCCL, the CPU under gloo."""
    if tdist.is_available() and tdist.is_initialized() and tdist.get_backend(group) == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def _a2a(out: Tensor, inp: Tensor, out_counts: List[int], in_counts: List[int], group) -> None:
    """``all_to_all_single`` of rows with per-rank row counts (a copy with one rank, ``group=None``);
    tensors not on the group's :func:`comm_device` (setup counts on the CPU under NCCL, CUDA rows
    under gloo) go through a copy there."""
    if group is None:
        out.copy_(inp)
        return
    dev = comm_device(group)
    target = out if out.device == dev else torch.empty_like(out, device=dev)
    tdist.all_to_all_single(target, inp.to(dev), out_counts, in_counts, group=group)
    if target is not out:
        out.copy_(target)


ROWS = 1 << 16  # rows per chunk when a part's CSR is read: temporaries stay O(chunk), never O(E_r)


def row_chunks(indptr: Tensor, rows: Optional[int] = None):
    """``(r0, r1, e0, e1)``: consecutive spans of ``rows`` (default :data:`ROWS`) rows and their
    entries ``e0:e1``."""
    n, rows = indptr.numel() - 1, rows or ROWS
    for r0 in range(0, n, rows):
        r1 = min(n, r0 + rows)
        yield r0, r1, int(indptr[r0]), int(indptr[r1])


class HaloIndex:
    """The halo of a part and the local column of every halo node.

    ``ids`` ``[H]``: the halo's global ids, ascending; ``owner``/``pos`` ``[H]``: their owner rank
    and position there. Local columns: owned node at position ``p`` -> ``p``; halo nodes, ordered by
    ``(owner, pos)`` (the order in which :class:`HaloPlan` receives them) -> ``num_owned + k``.
    """

    def __init__(self, ids: Tensor, owner: Tensor, pos: Tensor, num_owned: int):
        ids, owner, pos = ids.long(), owner.long(), pos.long()
        m = int(pos.max()) + 1 if pos.numel() else 1
        order = torch.argsort(owner * m + pos)
        self.ids, self.num_owned = ids, int(num_owned)
        self.column = torch.empty_like(ids)
        self.column[order] = num_owned + torch.arange(ids.numel(), device=ids.device)
        self.owner, self.pos = owner[order], pos[order]  # in arrival order

    def local(self, cols: Tensor, owner: Tensor, pos: Tensor, rank: int) -> Tensor:
        """Local columns ``[k]`` of global ``cols`` ``[k]`` (owners/positions ``owner``/``pos``)."""
        if self.ids.numel() == 0:
            return pos.long()
        at = torch.searchsorted(self.ids, cols).clamp_(max=self.ids.numel() - 1)
        return torch.where(owner == rank, pos.long(), self.column[at])


class HaloPlan:
    """Who sends which owned rows to whom, and in which order the halo rows arrive.

    ``send_index`` ``[S]`` int64: the owned rows this rank sends, grouped by destination rank
    (``send_counts[q]`` rows for rank ``q``); ``recv_counts[q]``: the halo rows owned by ``q``, which
    arrive in the halo's order. ``sent_bytes``/``received_bytes``/``rounds`` count this rank's
    traffic so far (forward and backward exchanges), for the benchmarks.
    """

    def __init__(self, send_index: Tensor, send_counts: List[int], recv_counts: List[int], num_owned: int,
                 group=None):
        self.send_index, self.send_counts, self.recv_counts = send_index, send_counts, recv_counts
        self.num_owned, self.group = int(num_owned), group
        self.sent_bytes = self.received_bytes = self.rounds = 0

    @property
    def num_halo(self) -> int:
        return sum(self.recv_counts)

    @classmethod
    def build(cls, halo_owner: Tensor, halo_pos: Tensor, num_owned: int, group=None) -> "HaloPlan":
        """Collective (every rank of ``group``): tell each owner which of its rows this rank's halo
        holds (``halo_owner``/``halo_pos`` ``[H]``, sorted by owner) and learn what to send."""
        world = 1 if group is None else tdist.get_world_size(group)
        if halo_owner.numel() and int(halo_owner.max()) >= world:
            raise GnnkitError(f"the halo names part {int(halo_owner.max())} but only {world} ranks run")
        recv = torch.bincount(halo_owner.long().cpu(), minlength=world)
        send = torch.empty_like(recv)
        _a2a(send, recv, [1] * world, [1] * world, group)
        send_counts, recv_counts = send.tolist(), recv.tolist()
        send_index = torch.empty(sum(send_counts), dtype=torch.int64)
        _a2a(send_index, halo_pos.long().cpu().contiguous(), send_counts, recv_counts, group)
        if send_index.numel() and (int(send_index.min()) < 0 or int(send_index.max()) >= num_owned):
            raise GnnkitError("a rank asked for a row this part does not own: the parts disagree "
                              "(were they written by one `gnnkit partition` run?)")
        return cls(send_index.to(halo_pos.device), send_counts, recv_counts, num_owned, group)

    def to(self, device) -> "HaloPlan":
        plan = HaloPlan(self.send_index.to(device), self.send_counts, self.recv_counts, self.num_owned, self.group)
        return plan

    def gather(self, x: Tensor) -> Tensor:
        """The halo rows ``[H, d]`` of a layer whose owned rows are ``x`` ``[num_owned, d]``."""
        send = x.index_select(0, self.send_index.to(x.device))
        out = x.new_empty((self.num_halo, *x.shape[1:]))
        _a2a(out, send.contiguous(), self.recv_counts, self.send_counts, self.group)
        self._count(send, out)
        return out

    def _count(self, sent: Tensor, received: Tensor) -> None:
        self.sent_bytes += sent.numel() * sent.element_size()
        self.received_bytes += received.numel() * received.element_size()
        self.rounds += 1

    def scatter_back(self, grad: Tensor) -> Tensor:
        """The reverse: the halo gradient ``[H, d]`` back to the owners, summed into ``[num_owned, d]``."""
        back = grad.new_empty((self.send_index.numel(), *grad.shape[1:]))
        _a2a(back, grad.contiguous(), self.send_counts, self.recv_counts, self.group)
        self._count(grad, back)
        out = grad.new_zeros((self.num_owned, *grad.shape[1:]))
        return out.index_add_(0, self.send_index.to(grad.device), back)

    def exchange(self, x: Tensor) -> Tensor:
        """:meth:`gather`, differentiable (its backward is :meth:`scatter_back`)."""
        if torch.is_grad_enabled() and x.requires_grad:
            return _Exchange.apply(x, self)
        return self.gather(x)


class _Exchange(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, plan: HaloPlan) -> Tensor:  # type: ignore[override]
        ctx.plan = plan
        return plan.gather(x)

    @staticmethod
    def backward(ctx, grad: Tensor):  # type: ignore[override]
        return ctx.plan.scatter_back(grad), None


def _values(norm: str, row: Tensor, col: Tensor, w: Optional[Tensor], dinv: Optional[Tensor], lam: float) -> Tensor:
    """The normalized entries ``(row, col)`` (weights ``w``, ``None`` = 1): see :func:`normalized_block`."""
    if norm == "sum":
        return torch.ones(row.numel(), dtype=dinv.dtype) if w is None else w
    val = dinv[row] * dinv[col] if norm == "gcn" else dinv[row]
    val = val if w is None else w * val
    if norm == "diag" and lam:  # self-loops already in A belong to diag(Ã) as well
        val = torch.where(row == col, val * (1.0 + lam), val)
    return val


def normalized_block(indptr: Tensor, indices: Tensor, weight: Optional[Tensor], lookup, deg: Tensor, norm: str,
                     diag_lambda: float = 0.0) -> Adjacency:
    """The rows ``R_r`` of ``Â`` as a ``[n, n + H]`` :class:`Adjacency` (``n = len(indptr) - 1``).

    ``indptr`` ``[n + 1]`` / ``indices`` ``[nnz]``: the owned rows' in-neighbours (GLOBAL ids, read
    :data:`ROWS` rows at a time, so a memory-mapped part is never widened whole); ``lookup(ids)``
    -> their local columns (:meth:`HaloIndex.local`); ``weight`` ``[nnz]`` the ``a_ij`` (``None``: 1);
    ``deg`` ``[n + H]`` the GLOBAL weighted in-degrees of the owned and halo nodes in local column
    order, ``+ 1`` for the self-loop of ``A + I`` under ``"gcn"``/``"diag"``. The values are those of
    :meth:`Adjacency.from_edge_index`: gcn ``a_ij / sqrt(d_i d_j)`` and the loop ``1 / d_i``; mean
    ``a_ij / d_i``; sum ``a_ij``; diag ``(1 + λ[i = j]) a_ij / d_i`` and the loop ``(1 + λ) / d_i``;
    the loop first in its row, the other entries in the part's order.
    """
    if norm not in NORMS:
        raise GnnkitError(f"unknown normalization {norm!r}; known: {', '.join(NORMS)}")
    n, m, indptr = indptr.numel() - 1, deg.numel(), indptr.long()
    loops = norm in ("gcn", "diag")
    nnz = int(indptr[-1]) + (n if loops else 0)
    idx = index_dtype(nnz, n + 1, m)
    dinv = None
    if norm == "gcn":
        dinv = deg.pow(-0.5).masked_fill_(deg == 0, 0.0)
    elif norm in ("mean", "diag"):
        dinv = deg.reciprocal().masked_fill_(deg == 0, 0.0)
    col_out, val_out = torch.empty(nnz, dtype=idx), torch.empty(nnz, dtype=deg.dtype)
    for r0, r1, e0, e1 in row_chunks(indptr):
        row = torch.repeat_interleave(torch.arange(r0, r1), indptr[r0 + 1:r1 + 1] - indptr[r0:r1],
                                      output_size=e1 - e0)
        col = lookup(indices[e0:e1].long())
        w = None if weight is None else weight[e0:e1].to(deg.dtype)
        dest = torch.arange(e0, e1) + (row + 1 if loops else 0)  # a loop ahead of each row
        col_out[dest] = col.to(idx)
        val_out[dest] = _values(norm, row, col, w, dinv if dinv is not None else deg, diag_lambda)
    crow = indptr
    if loops:
        crow = indptr + torch.arange(n + 1)
        at = crow[:-1]
        col_out[at] = torch.arange(n, dtype=idx)
        val_out[at] = dinv[:n] * dinv[:n] if norm == "gcn" else dinv[:n] * (1.0 + diag_lambda)
    return Adjacency(make_csr(crow.to(idx), col_out, val_out, (n, m)), sorted_columns=False)


class HaloAdjacency:
    """A rank's rows of the whole graph's operator: ``adj @ h_own`` ``[|R_r|, d] -> [|R_r|, d']``.

    ``block``: the local ``[|R_r|, |R_r| + H]`` :class:`Adjacency` (:func:`normalized_block`),
    ``plan``: its :class:`HaloPlan`. ``num_rows``/``num_cols``/``nnz`` are the GLOBAL figures
    ``N, N, nnz(Â)`` (the same on every rank; see the module docstring); ``num_owned`` is ``|R_r|``.
    Each product is a collective: every rank must call it, with the same width ``d``.
    """

    partitioned = True

    def __init__(self, block: Adjacency, plan: HaloPlan, num_nodes: int, global_nnz: int):
        if block.num_cols != plan.num_owned + plan.num_halo or block.num_rows != plan.num_owned:
            raise GnnkitError(f"block {block.num_rows}x{block.num_cols} does not match the plan's "
                              f"{plan.num_owned} owned + {plan.num_halo} halo rows")
        self.block, self.plan = block, plan
        self.num_nodes, self.global_nnz = int(num_nodes), int(global_nnz)

    @property
    def num_rows(self) -> int:
        return self.num_nodes

    @property
    def num_cols(self) -> int:
        return self.num_nodes

    @property
    def nnz(self) -> int:
        return self.global_nnz

    @property
    def num_owned(self) -> int:
        return self.plan.num_owned

    @property
    def device(self) -> torch.device:
        return self.block.device

    def __matmul__(self, x: Tensor) -> Tensor:
        if not isinstance(x, Tensor) or x.dim() != 2 or x.shape[0] != self.num_owned:
            shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
            raise GnnkitError(f"this rank's adjacency multiplies its {self.num_owned} owned rows "
                              f"[{self.num_owned}, d], got {shape}")
        return self.block @ torch.cat([x, self.plan.exchange(x)])

    def to(self, device) -> "HaloAdjacency":
        if self.block.device == torch.device(device):
            return self
        return HaloAdjacency(self.block.to(device), self.plan.to(device), self.num_nodes, self.global_nnz)

    def row_slice(self, start: int, end: int):
        raise GnnkitError("a partitioned adjacency has no row slices (one exchange per layer covers all "
                          "owned rows): run inference with batch_size=None (gnnkit.partitioned.fullbatch.predict)")

    def t(self):
        raise GnnkitError("a partitioned adjacency has no transpose")

    def __repr__(self) -> str:
        return (f"HaloAdjacency(owned={self.num_owned}, halo={self.plan.num_halo}, local_nnz={self.block.nnz}, "
                f"global={self.num_nodes}x{self.num_nodes})")
