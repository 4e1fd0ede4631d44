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
from gnnkit.sparse.build import index_dtype, insert_diagonal, make_csr, rows_of, sort_csr

NORMS = ("gcn", "mean", "sum", "diag")


def _a2a(out: Tensor, inp: Tensor, out_counts: List[int], in_counts: List[int], group) -> None:
    """``all_to_all_single`` with per-rank row counts (a no-op copy with one rank)."""
    if group is None:
        out.copy_(inp)
        return
    tdist.all_to_all_single(out, inp, out_counts, in_counts, group=group)


def localize(cols: Tensor, owner: Tensor, position: Tensor, rank: int, num_owned: int):
    """Local column ids of an owned block's entries, and its halo.

    ``cols`` ``[nnz]`` (global ids, unused but for the shape), ``owner`` ``[nnz]`` and ``position``
    ``[nnz]``: the owner rank and the position on that owner of each entry's column. Returns
    ``(local [nnz] int64, halo_owner [H], halo_pos [H])``: owned columns keep their position
    ``< num_owned``; halo column ``k`` (distinct ``(owner, position)`` pairs sorted by owner, then
    position) becomes ``num_owned + k``.
    """
    owner, position = owner.long(), position.long()
    mine = owner == rank
    local = torch.empty(cols.numel(), dtype=torch.int64, device=cols.device)
    local[mine] = position[mine]
    far = ~mine
    m = int(position.max()) + 1 if position.numel() else 1
    key, inverse = torch.unique(owner[far] * m + position[far], return_inverse=True)
    local[far] = num_owned + inverse
    return local, key // m, key % m


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


def normalized_block(indptr: Tensor, local_cols: Tensor, weight: Optional[Tensor], deg: Tensor, norm: str,
                     diag_lambda: float = 0.0) -> Adjacency:
    """The rows ``R_r`` of ``Â`` as a ``[n, n + H]`` :class:`Adjacency` (``n = len(indptr) - 1``).

    ``indptr`` ``[n + 1]`` / ``local_cols`` ``[nnz]``: the owned rows' in-neighbours in local column
    ids (:func:`localize`); ``weight`` ``[nnz]`` the ``a_ij`` (``None``: 1); ``deg`` ``[n + H]`` the
    GLOBAL weighted in-degrees of the owned and halo nodes, ``+ 1`` for the self-loop of ``A + I``
    under ``"gcn"``/``"diag"``. The values are those of :meth:`Adjacency.from_edge_index`:
    gcn ``a_ij / sqrt(d_i d_j)`` plus the loop ``1 / d_i``; mean ``a_ij / d_i``; sum ``a_ij``;
    diag ``(1 + λ[i = j]) a_ij / d_i`` plus the loop ``(1 + λ) / d_i``.
    """
    if norm not in NORMS:
        raise GnnkitError(f"unknown normalization {norm!r}; known: {', '.join(NORMS)}")
    n, m = indptr.numel() - 1, deg.numel()
    row = rows_of(indptr.long())
    col = local_cols.long()
    w = torch.ones(col.numel(), dtype=deg.dtype, device=col.device) if weight is None else weight.to(deg.dtype)
    diag = None
    if norm == "gcn":
        dinv = deg.pow(-0.5).masked_fill_(deg == 0, 0.0)
        val, diag = w * dinv[row] * dinv[col], dinv[:n] * dinv[:n]
    elif norm == "mean":
        val = w * deg.reciprocal().masked_fill_(deg == 0, 0.0)[row]
    elif norm == "diag":
        dinv = deg.reciprocal()
        val = w * dinv[row]
        if diag_lambda:
            val = torch.where(row == col, val * (1.0 + diag_lambda), val)
        diag = dinv[:n] * (1.0 + diag_lambda)
    else:
        val = w
    idx = index_dtype(col.numel() + n, n + 1, m)
    crow, col = indptr.to(idx), col.to(idx)
    if diag is not None:
        crow, col, val = insert_diagonal(crow, col, val, diag)
    csr = make_csr(crow, col, val, (n, m))
    if csr.is_cuda:
        return Adjacency(sort_csr(csr), sorted_columns=True)
    return Adjacency(csr, sorted_columns=False)


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
