"""``gnnkit export MODEL --out FILE``: a saved model as a program for full-graph inference.

The program (no gnnkit needed to run it) maps ``(x [N, F], crow [N + 1], col [nnz], val [nnz])`` to
the logits ``[N, C]``, the CSR being the graph's adjacency with the model's normalization (see
:mod:`gnnkit.model_export`; in Python: ``gnnkit.model_export.csr_inputs(graph, adj_norm, diag_lambda)``).
Its logits equal the model's. ``--format export`` (default): a ``torch.export`` program, run with
``torch.export.load(FILE).module()(x, crow, col, val)`` (any number of nodes and edges);
``--format torchscript``: ``torch.jit.load(FILE)(x, crow, col, val)``.
"""
from __future__ import annotations

import argparse

import torch

from ..errors import GnnkitError
from . import model_io

NAME = "export"
HELP = "write a saved model as a torch.export or TorchScript program (x, crow, col, val) -> logits"
ORDER = 42
FORMATS = ("export", "torchscript")


def add_arguments(p: argparse.ArgumentParser) -> None:
    model_io.add_model_argument(p)
    p.add_argument("--out", required=True, help="the program file to write (e.g. model.pt2)")
    p.add_argument("--format", default="export", help="export (torch.export, default) or torchscript")


def example_inputs(record: dict):
    """A 3-node, 5-entry graph ``(x, crow, col, val)`` of the model's feature width and dtype, to
    trace on (the program's sizes stay dynamic)."""
    dtype = getattr(torch, str(record["dataset"].get("feature_dtype") or "float32"), torch.float32)
    x = torch.zeros(3, int(record["model"]["in_dim"]), dtype=dtype)
    return x, torch.tensor([0, 2, 3, 5]), torch.tensor([0, 1, 1, 0, 2]), torch.ones(5, dtype=dtype)


def run(args) -> int:
    if args.format not in FORMATS:
        raise GnnkitError(f"--format {args.format!r}: known formats: {', '.join(FORMATS)}")
    model, record = model_io.load(args.model)
    from ..model_export import export_model, save_program, script_model

    family = record["model"]["family"]
    if args.format == "torchscript":
        program = script_model(model, family)
    else:
        program = export_model(model, family, example_inputs(record))
    save_program(args.out, program)
    norm = record["normalization"]
    lam = f", diag_lambda {norm['diag_lambda']}" if norm["adj_norm"] == "diag" else ""
    print(f"exported {family} ({args.format}) -> {args.out} (inputs x [N, {record['model']['in_dim']}], "
          f"crow, col, val: the graph's {norm['adj_norm']}-normalized adjacency{lam})")
    return 0
