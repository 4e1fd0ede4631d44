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

import weakref
from typing import List, Optional, Tuple

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


def _a2a(out: Tensor, inp: Tensor, out_counts: List[int], in_counts: List[int], group):
    """Start an ``all_to_all_single`` of rows with per-rank row counts (a copy with one rank,
    ``group=None``); returns ``done()``, which waits for it and returns ``out``. Tensors not on
    the group's :func:`comm_device` (setup counts on the CPU under NCCL, CUDA rows under gloo) go
    through a copy there."""
    if group is None:
        out.copy_(inp)
        return lambda: out
    dev = comm_device(group)
    target = out if out.device == dev else torch.empty_like(out, device=dev)
    src = inp.to(dev).contiguous()
    work = tdist.all_to_all_single(target, src, out_counts, in_counts, group=group, async_op=True)

    def done(_keep: Tensor = src) -> Tensor:  # the send buffer lives until the exchange is over
        work.wait()
        if target is not out:
            out.copy_(target)
        return out

    return done


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
        self.num_owned = int(num_owned)
        self._group = None if group is None else weakref.ref(group)  # shutdown must be able to free it
        self.sent_bytes = self.received_bytes = self.rounds = 0

    @property
    def group(self):
        """The process group the plan exchanges on (``None``: one process)."""
        if self._group is None:
            return None
        group = self._group()
        if group is None:
            raise GnnkitError("the process group this halo plan was built on has been shut down")
        return group

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
        _a2a(send, recv, [1] * world, [1] * world, group)()
        send_counts, recv_counts = send.tolist(), recv.tolist()
        send_index = torch.empty(sum(send_counts), dtype=torch.int64)
        _a2a(send_index, halo_pos.long().cpu().contiguous(), send_counts, recv_counts, group)()
        if send_index.numel() and (int(send_index.min()) < 0 or int(send_index.max()) >= num_owned):
            raise GnnkitError("a rank asked for a row this part does not own: the parts disagree "
                              "(were they written by one `gnnkit partition` run?)")
        return cls(send_index.to(halo_pos.device), send_counts, recv_counts, num_owned, group)

    def to(self, device) -> "HaloPlan":
        plan = HaloPlan(self.send_index.to(device), self.send_counts, self.recv_counts, self.num_owned, self.group)
        return plan

    def start_gather(self, x: Tensor):
        """Start fetching the halo rows ``[H, d]`` of a layer whose owned rows are ``x``
        ``[num_owned, d]``; returns ``done()`` -> those rows (work may go on meanwhile)."""
        send = x.index_select(0, self.send_index.to(x.device))
        out = x.new_empty((self.num_halo, *x.shape[1:]))
        self._count(send, out)
        return _a2a(out, send, self.recv_counts, self.send_counts, self.group)

    def gather(self, x: Tensor) -> Tensor:
        """The halo rows ``[H, d]`` of a layer whose owned rows are ``x`` ``[num_owned, d]``."""
        return self.start_gather(x)()

    def start_scatter(self, grad: Tensor):
        """The reverse: start sending the halo gradient ``[H, d]`` back to its owners; returns
        ``done(into)``, which adds the received rows into ``into`` ``[num_owned, d]`` and returns it."""
        back = grad.new_empty((self.send_index.numel(), *grad.shape[1:]))
        self._count(grad, back)
        wait = _a2a(back, grad, self.send_counts, self.recv_counts, self.group)
        return lambda into: into.index_add_(0, self.send_index.to(into.device), wait())

    def _count(self, sent: Tensor, received: Tensor) -> None:
        self.sent_bytes += sent.numel() * sent.element_size()
        self.received_bytes += received.numel() * received.element_size()
        self.rounds += 1


def _values(norm: str, row: Tensor, col: Tensor, w: Optional[Tensor], dinv: Optional[Tensor], lam: float) -> Tensor:
    """The normalized entries ``(row, col)`` (weights ``w``, ``None`` = 1): see :func:`normalized_block`."""
    if norm == "sum":
        return torch.ones(row.numel(), dtype=dinv.dtype) if w is None else w
    val = dinv[row] * dinv[col] if norm == "gcn" else dinv[row]
    val = val if w is None else w * val
    if norm == "diag" and lam:  # self-loops already in A belong to diag(Ã) as well
        val = torch.where(row == col, val * (1.0 + lam), val)
    return val


def _chunk_rows(indptr: Tensor, r0: int, r1: int, e0: int, e1: int) -> Tensor:
    """The row of every entry ``e0:e1`` of rows ``r0:r1`` (``[e1 - e0]`` int64)."""
    return torch.repeat_interleave(torch.arange(r0, r1), indptr[r0 + 1:r1 + 1] - indptr[r0:r1], output_size=e1 - e0)


def _csr(crow: Tensor, col: Tensor, val: Tensor, shape) -> Adjacency:
    return Adjacency(make_csr(crow.to(col.dtype), col, val, shape), sorted_columns=False)


def normalized_block(indptr: Tensor, indices: Tensor, weight: Optional[Tensor], lookup, deg: Tensor, norm: str,
                     diag_lambda: float = 0.0) -> Tuple[Adjacency, Adjacency]:
    """The rows ``R_r`` of ``Â`` as ``(own [n, n], far [n, H])`` :class:`Adjacency` (``n = len(indptr) - 1``):
    the columns of the owned nodes and of the halo, so that ``Â_r [h_own; h_halo] = own h_own + far h_halo``.

    ``indptr`` ``[n + 1]`` / ``indices`` ``[nnz]``: the owned rows' in-neighbours (GLOBAL ids, read
    :data:`ROWS` rows at a time, so a memory-mapped part is never widened whole); ``lookup(ids)``
    -> their local columns (:meth:`HaloIndex.local`: ``< n`` owned, ``n + k`` halo node ``k``);
    ``weight`` ``[nnz]`` the ``a_ij`` (``None``: 1); ``deg`` ``[n + H]`` the GLOBAL weighted in-degrees
    of the owned and halo nodes in local column order, ``+ 1`` for the self-loop of ``A + I`` under
    ``"gcn"``/``"diag"``. The values are those of :meth:`Adjacency.from_edge_index`: gcn
    ``a_ij / sqrt(d_i d_j)`` and the loop ``1 / d_i``; mean ``a_ij / d_i``; sum ``a_ij``; diag
    ``(1 + λ[i = j]) a_ij / d_i`` and the loop ``(1 + λ) / d_i``; the loop first in its row of
    ``own``, the other entries in the part's order.
    """
    if norm not in NORMS:
        raise GnnkitError(f"unknown normalization {norm!r}; known: {', '.join(NORMS)}")
    n, h, indptr = indptr.numel() - 1, deg.numel() - (indptr.numel() - 1), indptr.long()
    loops = norm in ("gcn", "diag")
    dinv = deg
    if norm == "gcn":
        dinv = deg.pow(-0.5).masked_fill_(deg == 0, 0.0)
    elif norm in ("mean", "diag"):
        dinv = deg.reciprocal().masked_fill_(deg == 0, 0.0)
    own_counts = torch.zeros(n, dtype=torch.long)
    for r0, r1, e0, e1 in row_chunks(indptr):  # first pass: owned columns per row
        mine = lookup(indices[e0:e1].long()) < n
        rows = _chunk_rows(indptr, r0, r1, e0, e1)[mine]
        own_counts.index_add_(0, rows, torch.ones(rows.numel(), dtype=torch.long))
    own_ptr = torch.cat([own_counts.new_zeros(1), torch.cumsum(own_counts + int(loops), 0)])
    far_ptr = torch.cat([own_counts.new_zeros(1), torch.cumsum(indptr.diff() - own_counts, 0)])
    own_nnz, far_nnz = int(own_ptr[-1]), int(far_ptr[-1])  # columns stored in their final (int32) type
    own_col = torch.empty(own_nnz, dtype=index_dtype(own_nnz, n + 1, n))
    far_col = torch.empty(far_nnz, dtype=index_dtype(far_nnz, n + 1, h))
    own_val, far_val = torch.empty(own_nnz, dtype=deg.dtype), torch.empty(far_nnz, dtype=deg.dtype)
    for r0, r1, e0, e1 in row_chunks(indptr):
        row, col = _chunk_rows(indptr, r0, r1, e0, e1), lookup(indices[e0:e1].long())
        val = _values(norm, row, col, None if weight is None else weight[e0:e1].to(deg.dtype), dinv, diag_lambda)
        mine = col < n
        # an entry's place: after the chunk's earlier entries of its kind (and the loops of its rows)
        at = own_ptr[r0] + torch.cumsum(mine, 0) - 1 + ((row - r0 + 1) if loops else 0)
        own_col[at[mine]], own_val[at[mine]] = col[mine].to(own_col.dtype), val[mine]
        at = far_ptr[r0] + torch.cumsum(~mine, 0) - 1
        far_col[at[~mine]], far_val[at[~mine]] = (col[~mine] - n).to(far_col.dtype), val[~mine]
    if loops:
        own_col[own_ptr[:-1]] = torch.arange(n, dtype=own_col.dtype)
        own_val[own_ptr[:-1]] = dinv[:n] * dinv[:n] if norm == "gcn" else dinv[:n] * (1.0 + diag_lambda)
    return _csr(own_ptr, own_col, own_val, (n, n)), _csr(far_ptr, far_col, far_val, (n, h))


class _HaloProduct(torch.autograd.Function):
    """``y = own x + far halo(x)``; backward ``dx = own^T dy + scatter(far^T dy)``."""

    @staticmethod
    def forward(ctx, x: Tensor, adj: "HaloAdjacency") -> Tensor:  # type: ignore[override]
        ctx.adj = adj
        return adj.product(x)

    @staticmethod
    def backward(ctx, grad: Tensor):  # type: ignore[override]
        return ctx.adj.product_t(grad.contiguous()), None


class HaloAdjacency:
    """A rank's rows of the whole graph's operator: ``adj @ h_own`` ``[|R_r|, d] -> [|R_r|, d']``.

    ``own`` ``[|R_r|, |R_r|]`` and ``far`` ``[|R_r|, H]``: the block ``Â_r`` split by column
    (:func:`normalized_block`); ``plan``: its :class:`HaloPlan`. ``adj @ x`` starts the halo
    exchange, multiplies the owned columns meanwhile, then adds ``far @ halo`` (the backward
    likewise overlaps the gradients' return trip with ``own^T dy``). ``num_rows``/``num_cols``/``nnz``
    are the GLOBAL figures ``N, N, nnz(Â)`` (the same on every rank; see the module docstring);
    ``num_owned`` is ``|R_r|``. Each product is a collective: every rank must call it, same width.
    """

    partitioned = True

    def __init__(self, own: Adjacency, far: Adjacency, plan: HaloPlan, num_nodes: int, global_nnz: int):
        n = plan.num_owned
        if (own.num_rows, own.num_cols, far.num_rows, far.num_cols) != (n, n, n, plan.num_halo):
            raise GnnkitError(f"blocks {own.num_rows}x{own.num_cols} and {far.num_rows}x{far.num_cols} do not match "
                              f"the plan's {n} owned and {plan.num_halo} halo rows")
        self.own, self.far, self.plan = own, far, plan
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
        return self.own.device

    def product(self, x: Tensor) -> Tensor:
        """``own x + far halo(x)`` without autograd, the exchange overlapping ``own x``."""
        done = self.plan.start_gather(x)
        y = self.own @ x  # a new tensor: the halo part is added in place
        return y.add_(self.far @ done())

    def product_t(self, grad: Tensor) -> Tensor:
        """The gradient ``[|R_r|, d]`` of ``x`` from ``grad`` ``[|R_r|, d]``, exchange overlapping ``own^T grad``."""
        done = self.plan.start_scatter(self.far.t() @ grad)
        return done(self.own.t() @ grad)

    def __matmul__(self, x: Tensor) -> Tensor:
        if not isinstance(x, Tensor) or x.dim() != 2 or x.shape[0] != self.num_owned:
            shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
            raise GnnkitError(f"this rank's adjacency multiplies its {self.num_owned} owned rows "
                              f"[{self.num_owned}, d], got {shape}")
        if torch.is_grad_enabled() and x.requires_grad:
            return _HaloProduct.apply(x, self)
        return self.product(x)

    def to(self, device) -> "HaloAdjacency":
        if self.own.device == torch.device(device):
            return self
        return HaloAdjacency(self.own.to(device), self.far.to(device), self.plan.to(device), self.num_nodes,
                             self.global_nnz)

    def to_dense(self) -> Tensor:
        """The local block ``[|R_r|, |R_r| + H]`` as a dense matrix (small graphs, tests)."""
        return torch.cat([self.own.to_dense(), self.far.to_dense()], 1)

    def row_slice(self, start: int, end: int):
        raise GnnkitError("a partitioned adjacency has no row slices (one exchange per layer covers all "
                          "owned rows): run inference with batch_size=None (gnnkit.partitioned.fullbatch.predict)")

    def t(self):
        raise GnnkitError("a partitioned adjacency has no transpose")

    def __repr__(self) -> str:
        return (f"HaloAdjacency(owned={self.num_owned}, halo={self.plan.num_halo}, "
                f"local_nnz={self.own.nnz + self.far.nnz}, global={self.num_nodes}x{self.num_nodes})")
