"""A saved model as a TorchScript program for full-graph inference (``gnnkit export``).

gnnkit's models multiply by an :class:`~gnnkit.sparse.Adjacency`, a Python object TorchScript
cannot carry. The exported program takes the normalized adjacency as the three tensors of its CSR
instead::

    logits = program(x, crow, col, val)
    # x [N, F] float; crow [N + 1] int64; col [nnz] int64; val [nnz] float  -> logits [N, C]

Row ``i`` of the CSR lists the in-neighbors ``j`` of node ``i`` with their weights (gnnkit's
layout: :meth:`gnnkit.stores.GraphStore.adjacency` with the model's ``adj_norm``/``diag_lambda``,
see :func:`csr_inputs`). Each product ``Â h`` is ``torch.sparse.mm`` on the CSR tensor built from
them, the product gnnkit's own layers run, so the program gives the model's logits. Layers (eval
mode, no dropout), per family::

    gcn:  h' = Â (h W) + b        sage: h' = W_l (Â h) + b + W_r h        mlp: h' = W h + b
    then norm (batch: running statistics; layer), ReLU, + h when residual and widths agree;
    head: gcn W_o (Â h) + b_o, sage W_o [Â h ‖ h] + b_o, mlp W_o h + b_o.
"""
from __future__ import annotations

from typing import Tuple

import torch
from torch import Tensor, nn

from .errors import GnnkitError


class _Propagate(nn.Module):
    """``Â h`` for the square CSR ``(crow, col, val)`` ``[N, N]`` and ``h`` ``[N, d]``.

    ``sparse=True``: ``torch.sparse.mm`` on the CSR tensor (TorchScript; gnnkit's own product).
    ``sparse=False``: ``out[rows[e]] += val[e] · h[col[e]]`` by ``index_add`` with ``rows`` the
    row of each entry (``torch.export`` traces no sparse tensor); the sum of each row runs over its
    entries in order, as the CSR product does.
    """

    def __init__(self, sparse: bool):
        super().__init__()
        self.sparse = sparse

    def forward(self, crow: Tensor, col: Tensor, val: Tensor, rows: Tensor, h: Tensor) -> Tensor:
        n = crow.size(0) - 1
        if self.sparse:
            adj = torch.sparse_csr_tensor(crow, col, val, (n, h.size(0)), dtype=h.dtype, device=h.device)
            return torch.sparse.mm(adj, h)
        out = torch.zeros(n, h.size(1), dtype=h.dtype, device=h.device)
        return out.index_add(0, rows, h.index_select(0, col) * val.unsqueeze(1))


def _transform_first(weight: Tensor) -> bool:
    """gnnkit's choice of order (:func:`models.gcn.transform_first`) for a square ``Â`` ``[N, N]``:
    ``N d_in d_out + nnz d_out <= nnz d_in + N d_in d_out`` is ``d_out <= d_in``; the same order
    gives the same rounding, so the same logits."""
    return weight.size(0) <= weight.size(1)


class _Layer(nn.Module):
    """One hidden graph layer of a family, with its normalization, ReLU and residual."""

    def __init__(self, family: str, conv: nn.Module, norm: nn.Module, residual: bool, sparse: bool):
        super().__init__()
        self.family, self.residual, self.norm, self.propagate = family, residual, norm, _Propagate(sparse)
        if family == "gcn":
            self.lin, self.bias = conv.lin, conv.bias
            self.lin_r = nn.Identity()
        elif family == "sage":
            self.lin, self.lin_r, self.bias = conv.lin_l, conv.lin_r, conv.lin_l.bias
        else:  # the MLP's layer is an nn.Linear whose forward takes the adjacency: a plain one
            self.lin, self.lin_r, self.bias = nn.Linear(conv.in_features, conv.out_features), nn.Identity(), None
            self.lin.weight, self.lin.bias = conv.weight, conv.bias

    def forward(self, h: Tensor, crow: Tensor, col: Tensor, val: Tensor, rows: Tensor) -> Tensor:
        first = _transform_first(self.lin.weight)
        bias = self.bias
        if self.family == "gcn":
            if first:
                out = self.propagate(crow, col, val, rows, self.lin(h))
            else:
                out = self.lin(self.propagate(crow, col, val, rows, h))
            if bias is not None:
                out = out + bias
        elif self.family == "sage":
            if first and bias is not None:
                agg = self.propagate(crow, col, val, rows, nn.functional.linear(h, self.lin.weight)) + bias
            else:
                agg = self.lin(self.propagate(crow, col, val, rows, h))
            out = agg + self.lin_r(h)
        else:
            out = self.lin(h)
        out = torch.relu(self.norm(out))
        if self.residual and out.size(1) == h.size(1):
            out = out + h
        return out


class InferenceProgram(nn.Module):
    """The model's eval-mode forward over the whole graph: ``(x, crow, col, val) -> logits``
    (``sparse``: the CSR product, for TorchScript; else ``index_add``, for ``torch.export``)."""

    def __init__(self, model, family: str, sparse: bool = True):
        super().__init__()
        if family not in ("gcn", "sage", "mlp"):
            raise GnnkitError(f"cannot export a {family!r} model (known: gcn, sage, mlp)")
        self.family, self.sparse, self.propagate = family, sparse, _Propagate(sparse)
        self.layers = nn.ModuleList([_Layer(family, conv, norm, bool(model.residual), sparse)
                                     for conv, norm in zip(model.layers, model.norms)])
        self.head = model.head

    def forward(self, x: Tensor, crow: Tensor, col: Tensor, val: Tensor) -> Tensor:
        crow, col = crow.to(torch.int64), col.to(torch.int64)
        val = val.to(x.dtype)
        rows = col[:0]
        if not self.sparse:  # the row of each entry, for index_add
            n = crow.size(0) - 1
            rows = torch.repeat_interleave(torch.arange(n, device=col.device), crow[1:] - crow[:-1],
                                           output_size=col.size(0))
        h = x
        for layer in self.layers:
            h = layer(h, crow, col, val, rows)
        if self.family == "gcn":
            h = self.propagate(crow, col, val, rows, h)
        elif self.family == "sage":
            h = torch.cat([self.propagate(crow, col, val, rows, h), h], dim=1)
        return self.head(h)


def _one_line(exc: Exception) -> str:
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()] or [type(exc).__name__]
    return lines[0][:300]


def script_model(model, family: str) -> torch.jit.ScriptModule:
    """The TorchScript program of ``model`` (a copy in eval mode; ``model`` is left as it is)."""
    import copy

    program = InferenceProgram(copy.deepcopy(model).eval(), family, sparse=True).eval()
    try:
        return torch.jit.script(program)
    except Exception as exc:  # TorchScript's own errors are long; one line for the user
        raise GnnkitError(f"TorchScript could not compile the {family} model: {_one_line(exc)}") from None


def export_model(model, family: str, example: Tuple[Tensor, Tensor, Tensor, Tensor]):
    """The ``torch.export`` program of ``model`` traced on ``example = (x, crow, col, val)``, with
    the numbers of nodes and entries dynamic (any graph of the same feature width)."""
    import copy

    program = InferenceProgram(copy.deepcopy(model).eval(), family, sparse=False).eval()
    dyn = torch.export.Dim.DYNAMIC
    try:
        return torch.export.export(program, tuple(example), dynamic_shapes=({0: dyn}, {0: dyn}, {0: dyn}, {0: dyn}))
    except Exception as exc:
        raise GnnkitError(f"torch.export could not trace the {family} model: {_one_line(exc)}") from None


def csr_inputs(graph, adj_norm: str, diag_lambda: float = 0.0) -> Tuple[Tensor, Tensor, Tensor]:
    """``(crow, col, val)`` int64/int64/float of ``graph``'s (a GraphStore) normalized adjacency
    (copies: plain dense tensors, not views of the sparse one)."""
    csr = graph.adjacency(adj_norm, diag_lambda).csr
    return (csr.crow_indices().to(torch.int64, copy=True), csr.col_indices().to(torch.int64, copy=True),
            csr.values().clone())


def save_program(path: str, program) -> None:
    """Write ``program`` to ``path`` atomically: a TorchScript module (``torch.jit.load`` reads it)
    or a ``torch.export`` program (``torch.export.load(path).module()`` runs it)."""
    from .fileio import atomic_write

    if isinstance(program, torch.export.ExportedProgram):
        atomic_write(path, lambda f: torch.export.save(program, f))
    else:
        atomic_write(path, lambda f: torch.jit.save(program, f))
