"""``gnnkit predict MODEL``: class predictions of a saved model for the nodes of a graph.

The graph is ``--dataset`` (default: the one the model was trained on): the same graph or a new one
of the same schema (feature width and dtype; inductive use, the fingerprint may differ). Logits
are the model's full-graph output ``[N, C]`` over the graph's adjacency with the model's
normalization; ``--nodes`` keeps some rows (``0,5,10-19`` or a file of ids). ``--out``:

- ``.csv``: ``node,class,prob_0..prob_{C-1},logit_0..logit_{C-1}`` (probabilities = softmax);
- ``.pt``: ``{"format": "gnnkit-predictions/1", "nodes" [m], "class" [m], "logits" [m, C],
  "probs" [m, C], "fingerprint"}`` (reads with ``torch.load(weights_only=True)``).
"""
from __future__ import annotations

import argparse
import io
import os

import torch

from ..errors import GnnkitError
from . import model_io

NAME = "predict"
HELP = "predict node classes with a saved model (CSV or .pt)"
ORDER = 40


def add_arguments(p: argparse.ArgumentParser) -> None:
    model_io.add_model_argument(p)
    p.add_argument("--nodes", default=None, help="ids (0,5,10-19) or a file of ids (default: all nodes)")
    p.add_argument("--out", default="predictions.csv", help="a .csv or .pt file (default predictions.csv)")
    model_io.add_inference_argument(p)
    model_io.add_dataset_arguments(p)


def _ids_from_text(text: str, where: str) -> torch.Tensor:
    """Node ids from ``"0,5,10-19"`` (commas or whitespace between items, ``a-b`` inclusive ranges)."""
    ids = []
    for item in text.replace(",", " ").split():
        lo, sep, hi = item.partition("-")
        try:
            a = int(lo)
            b = int(hi) if sep else a
        except ValueError:
            raise GnnkitError(f"--nodes {where}: {item!r} is not a node id or a range a-b") from None
        if b < a:
            raise GnnkitError(f"--nodes {where}: range {item!r} ends before it starts")
        ids.append(torch.arange(a, b + 1))
    if not ids:
        raise GnnkitError(f"--nodes {where}: no node ids")
    return torch.cat(ids)


def parse_nodes(spec, num_nodes: int):
    """The chosen node ids ``[m]`` int64 (``None``: all), each checked to lie in ``[0, num_nodes)``."""
    if spec is None:
        return None
    if os.path.isfile(spec):
        with open(spec) as f:
            text = "\n".join(line.split("#", 1)[0] for line in f)
        ids = _ids_from_text(text, spec)
    else:
        ids = _ids_from_text(spec, repr(spec))
    bad = ids[(ids < 0) | (ids >= num_nodes)]
    if bad.numel():
        raise GnnkitError(f"--nodes: node {int(bad[0])} is not in the graph (ids 0..{num_nodes - 1})")
    return ids


def logits_for(model, data, batch_size=None) -> torch.Tensor:
    """The model's whole-graph logits ``[N, C]`` for ``data`` with the model's operator, computed
    as the Trainer evaluates (rows in chunks of ``batch_size``; ``None``: the Trainer's default,
    all rows up to 2^17 nodes, else 2^16-row chunks)."""
    from ..stores import from_data
    from ..trainer import INFERENCE_ROWS, LARGE_GRAPH

    graph, features = from_data(data)
    adj = graph.adjacency(model.adj_norm, model.diag_lambda)
    if batch_size is None and graph.num_nodes > LARGE_GRAPH:
        batch_size = INFERENCE_ROWS
    with torch.no_grad():
        return model.inference(features.get("x"), adj, batch_size=batch_size)


def _write_csv(path: str, nodes: torch.Tensor, logits: torch.Tensor, probs: torch.Tensor) -> None:
    import numpy as np

    from ..fileio import atomic_write_bytes

    c = logits.shape[1]
    header = ",".join(["node", "class", *(f"prob_{k}" for k in range(c)), *(f"logit_{k}" for k in range(c))])
    ints = torch.stack([nodes, logits.argmax(1)], 1).numpy()
    buf = io.StringIO()
    table = np.concatenate([ints.astype(object), probs.numpy().astype(object), logits.numpy().astype(object)], 1)
    np.savetxt(buf, table, delimiter=",", fmt=["%d", "%d"] + ["%.9g"] * (2 * c), header=header, comments="")
    atomic_write_bytes(path, buf.getvalue().encode())


def write_predictions(path: str, nodes: torch.Tensor, logits: torch.Tensor, fingerprint) -> None:
    """Write the rows ``nodes`` of ``logits`` to ``path`` (.csv or .pt, see the module docstring)."""
    probs = torch.softmax(logits, dim=1)
    if path.endswith(".pt"):
        from ..fileio import atomic_torch_save

        atomic_torch_save(path, {"format": "gnnkit-predictions/1", "nodes": nodes, "class": logits.argmax(1),
                                 "logits": logits, "probs": probs, "fingerprint": fingerprint})
    else:
        _write_csv(path, nodes, logits, probs)


def run(args) -> int:
    if not (args.out.endswith(".csv") or args.out.endswith(".pt")):
        raise GnnkitError(f"--out {args.out}: write a .csv or a .pt file")
    model, record = model_io.load(args.model)
    data = model_io.load_graph(args, record)
    from ..model_file import check_schema, dataset_schema

    model_io.tell(check_schema(record, data))
    nodes = parse_nodes(args.nodes, int(data.num_nodes))
    logits = logits_for(model, data, model_io.inference_batch_size(args, record))
    nodes = torch.arange(logits.shape[0]) if nodes is None else nodes
    write_predictions(args.out, nodes, logits[nodes], dataset_schema(data)["fingerprint"])
    print(f"predicted {nodes.numel()} nodes ({logits.shape[1]} classes) -> {args.out}")
    return 0
