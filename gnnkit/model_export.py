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


def _spmm(crow: Tensor, col: Tensor, val: Tensor, h: Tensor) -> Tensor:
    """``Â h`` for the square CSR ``(crow, col, val)`` ``[N, N]`` and ``h`` ``[N, d]``."""
    n = crow.size(0) - 1
    adj = torch.sparse_csr_tensor(crow, col, val, (n, h.size(0)), dtype=h.dtype, device=h.device)
    return torch.sparse.mm(adj, h)


def _transform_first(crow: Tensor, h: Tensor, weight: Tensor) -> bool:
    """gnnkit's choice of order (:func:`models.gcn.transform_first`): ``Â (h W)`` when it costs
    fewer flops than ``(Â h) W`` (the same order gives the same rounding, so the same logits)."""
    n, nnz = crow.size(0) - 1, int(crow[-1])
    d_out, d_in = weight.size(0), weight.size(1)
    return h.size(0) * d_in * d_out + nnz * d_out <= nnz * d_in + n * d_in * d_out


class _Layer(nn.Module):
    """One hidden graph layer of a family, with its normalization, ReLU and residual."""

    def __init__(self, family: str, conv: nn.Module, norm: nn.Module, residual: bool):
        super().__init__()
        self.family, self.residual, self.norm = family, residual, norm
        if family == "gcn":
            self.lin, self.bias = conv.lin, conv.bias
            self.lin_r = nn.Identity()
        elif family == "sage":
            self.lin, self.lin_r, self.bias = conv.lin_l, conv.lin_r, conv.lin_l.bias
        else:  # the MLP's layer is an nn.Linear whose forward takes the adjacency: a plain one
            self.lin, self.lin_r, self.bias = nn.Linear(conv.in_features, conv.out_features), nn.Identity(), None
            self.lin.weight, self.lin.bias = conv.weight, conv.bias

    def forward(self, h: Tensor, crow: Tensor, col: Tensor, val: Tensor) -> Tensor:
        first = _transform_first(crow, h, self.lin.weight)
        bias = self.bias
        if self.family == "gcn":
            out = _spmm(crow, col, val, self.lin(h)) if first else self.lin(_spmm(crow, col, val, h))
            if bias is not None:
                out = out + bias
        elif self.family == "sage":
            if first and bias is not None:
                agg = _spmm(crow, col, val, nn.functional.linear(h, self.lin.weight)) + bias
            else:
                agg = self.lin(_spmm(crow, col, val, h))
            out = agg + self.lin_r(h)
        else:
            out = self.lin(h)
        out = torch.relu(self.norm(out))
        if self.residual and out.size(1) == h.size(1):
            out = out + h
        return out


class InferenceProgram(nn.Module):
    """The model's eval-mode forward over the whole graph: ``(x, crow, col, val) -> logits``."""

    def __init__(self, model, family: str):
        super().__init__()
        if family not in ("gcn", "sage", "mlp"):
            raise GnnkitError(f"cannot export a {family!r} model (known: gcn, sage, mlp)")
        self.family = family
        self.layers = nn.ModuleList([_Layer(family, conv, norm, bool(model.residual))
                                     for conv, norm in zip(model.layers, model.norms)])
        self.head = model.head

    def forward(self, x: Tensor, crow: Tensor, col: Tensor, val: Tensor) -> Tensor:
        crow, col = crow.to(torch.int64), col.to(torch.int64)
        val = val.to(x.dtype)
        h = x
        for layer in self.layers:
            h = layer(h, crow, col, val)
        if self.family == "gcn":
            h = _spmm(crow, col, val, h)
        elif self.family == "sage":
            h = torch.cat([_spmm(crow, col, val, h), h], dim=1)
        return self.head(h)


def script_model(model, family: str) -> torch.jit.ScriptModule:
    """The TorchScript program of ``model`` (a copy in eval mode; ``model`` is left as it is)."""
    import copy

    program = InferenceProgram(copy.deepcopy(model).eval(), family).eval()
    try:
        return torch.jit.script(program)
    except Exception as exc:  # TorchScript's own errors are long; one line for the user
        lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()] or [type(exc).__name__]
        raise GnnkitError(f"TorchScript could not compile the {family} model: {lines[0]}") from None


def csr_inputs(graph, adj_norm: str, diag_lambda: float = 0.0) -> Tuple[Tensor, Tensor, Tensor]:
    """``(crow, col, val)`` int64/int64/float of ``graph``'s (a GraphStore) normalized adjacency."""
    csr = graph.adjacency(adj_norm, diag_lambda).csr
    return csr.crow_indices().to(torch.int64), csr.col_indices().to(torch.int64), csr.values()


def save_program(path: str, program: torch.jit.ScriptModule) -> None:
    """Write the TorchScript ``program`` to ``path`` atomically (``torch.jit.load`` reads it)."""
    from .fileio import atomic_write

    atomic_write(path, lambda f: torch.jit.save(program, f))
