"""``gnnkit export MODEL --out FILE``: a TorchScript program of a saved model for full-graph inference.

The program (``torch.jit.load(FILE)``, no gnnkit needed to run it) maps
``(x [N, F], crow [N + 1], col [nnz], val [nnz])`` to the logits ``[N, C]``, the CSR being the
graph's adjacency with the model's normalization (see :mod:`gnnkit.model_export`; in Python:
``gnnkit.model_export.csr_inputs(graph, adj_norm, diag_lambda)``). Its logits equal the model's.
"""
from __future__ import annotations

import argparse

from ..errors import GnnkitError
from . import model_io

NAME = "export"
HELP = "write a saved model as a TorchScript program (x, crow, col, val) -> logits"
ORDER = 42


def add_arguments(p: argparse.ArgumentParser) -> None:
    model_io.add_model_argument(p)
    p.add_argument("--out", required=True, help="the program file to write (e.g. model.ts)")
    p.add_argument("--format", default="torchscript", help="torchscript (the one format so far)")


def run(args) -> int:
    if args.format != "torchscript":
        raise GnnkitError(f"--format {args.format!r}: known formats: torchscript")
    model, record = model_io.load(args.model)
    from ..model_export import save_program, script_model

    program = script_model(model, record["model"]["family"])
    save_program(args.out, program)
    norm = record["normalization"]
    lam = f", diag_lambda {norm['diag_lambda']}" if norm["adj_norm"] == "diag" else ""
    print(f"exported {record['model']['family']} -> {args.out} (inputs x [N, {record['model']['in_dim']}], "
          f"crow, col, val: the graph's {norm['adj_norm']}-normalized adjacency{lam})")
    return 0
