"""The ``graph`` task: graph-level prediction through the Trainer's plug-in protocol.

Data: a :class:`~gnnkit.graphs.GraphCollection` with a split (``with_split(train, val, test)``: a
fold; ``load_ogbg`` gives OGB's; a list of ``Data`` goes through ``GraphCollection.from_data_list``). Loss and figures are :mod:`gnnkit.graphs.metrics`: cross-entropy / masked BCE; the metric
is ``accuracy`` for single-label classes, OGB's own (``rocauc``, ``ap``) for ``ogbg-*``, and
``roc_auc`` for other binary targets. A model maps ``(x, adj, ptr, edge_index=, edge_attr=)`` to
``[B, C]`` graph logits. Evaluation predicts every graph in chunks of ``eval_graphs`` graphs
(block-diagonal batches of :class:`~gnnkit.graphs.GraphBatcher`, in the model's operator) and
scores the split's rows: ``[G, C]`` predictions, one row per graph. User metrics
(``GraphClassification(metrics=[...])``, :mod:`gnnkit.metrics`) receive a split's logits ``[g, C]``
and targets (``[g]`` class ids, or ``[g, T]`` with NaN where missing). ``Trainer.predict()`` gives the
``[G, C]`` logits of every graph.
"""
from __future__ import annotations

from typing import Sequence

import torch

from gnnkit.errors import GnnkitError
from gnnkit.tasks.base import SPLITS, Task
from gnnkit.precision import half_dtype

from .batching import GraphBatcher
from .collection import GraphCollection
from .metrics import graph_loss, score


def model_logits(model, batch) -> torch.Tensor:
    """``model(x, adj, ptr, edge_index=, edge_attr=)`` on a :class:`GraphBatch`: ``[B, C]``."""
    return model(batch.x, batch.adj, batch.ptr, edge_index=batch.edge_index, edge_attr=batch.edge_attr)


class GraphClassification(Task):
    """Graph-level classification (multi-class, binary / multi-label with missing labels)."""

    name = "graph"
    input = "graphs"
    default_sampler = "graph"

    def __init__(self, eval_graphs: int = 2048, metrics=()):
        if eval_graphs < 1:
            raise GnnkitError(f"eval_graphs must be at least 1, got {eval_graphs}")
        self.eval_graphs = int(eval_graphs)
        self.kind, self.evaluator_name, self._batcher = "multiclass", None, None
        self.add_metrics(metrics)

    def own_figures(self) -> dict:
        """Loss (lower is better); accuracy, ROC-AUC, AP and OGB's own names (higher is better)."""
        return {"loss": False, **dict.fromkeys(("accuracy", "roc_auc", "ap", "rocauc", "acc", self.metric), True)}

    def prepare_data(self, data, seed: int):
        """Checks that ``data`` is a :class:`GraphCollection` with a split; picks the metric."""
        if not isinstance(data, GraphCollection):
            raise GnnkitError(f"the graph task trains on a GraphCollection (gnnkit.graphs), got {type(data).__name__}")
        for s in SPLITS:
            data.split_ids(s)  # raises when absent
        self.kind, self.evaluator_name = data.task, data.evaluator_name
        if data.evaluator_name:
            self.metric = {"rocauc": "rocauc", "ap": "ap", "acc": "accuracy"}.get(data.meta.get("eval_metric"), "accuracy")
        else:
            self.metric = "accuracy" if data.task == "multiclass" else "roc_auc"
        self.higher_is_better = True
        return data

    def setup(self, ctx, model) -> None:
        self._batcher = None  # built at the first evaluation, in the model's operator

    def training_step(self, model, batch):
        logits = model_logits(model, batch)
        return graph_loss(logits, batch.y, self.kind), {"logits": logits}

    def predictions(self, ctx, model) -> torch.Tensor:
        """``[G, C]`` logits of every graph (eval mode, no gradient: the loop's evaluation)."""
        coll = ctx.data
        if self._batcher is None:
            self._batcher = GraphBatcher(coll, getattr(model, "adj_norm", "sum"),
                                         edges=getattr(model, "needs_edges", False), device=ctx.device,
                                         dtype=half_dtype(ctx.precision))
        ids = torch.arange(coll.num_graphs, device=ctx.device)
        return torch.cat([model_logits(model, self._batcher(ids[s:s + self.eval_graphs]))
                          for s in range(0, coll.num_graphs, self.eval_graphs)])

    def predict(self, ctx, model, predict, queries=None) -> torch.Tensor:
        """``Trainer.predict()``: the ``[G, C]`` logits of every graph (no queries)."""
        if queries is not None:
            raise GnnkitError("the graph task predicts every graph; it takes no queries")
        return self.predictions(ctx, model)

    def evaluate(self, ctx, model, predict, splits: Sequence[str] = SPLITS) -> dict:
        """Scores this task's own predictions (graph rows), not the strategy's node output."""
        return self.score(ctx, self.predictions(ctx, model), splits)

    def score(self, ctx, predictions: torch.Tensor, splits: Sequence[str] = SPLITS) -> dict:
        """``{split}_{figure}`` of ``predictions`` ``[G, C]`` on each split's graphs."""
        out = {}
        for s in splits:
            if s not in SPLITS:
                raise GnnkitError(f"unknown split {s!r}; known: {', '.join(SPLITS)}")
            ids = ctx.data.split_ids(s)
            if ids.numel() == 0:
                out.update({f"{s}_{self.metric}": float("nan"), f"{s}_loss": float("nan")})
                self.user_figures(s, predictions[ids], ctx.data.y[ids], out)
                continue
            out.update(score(predictions[ids], ctx.data.y[ids], self.kind, self.evaluator_name, prefix=f"{s}_"))
            self.user_figures(s, predictions[ids], ctx.data.y[ids], out)
        return out

    def run_summary(self, result: dict) -> dict:
        return {"graph_task": self.kind, "metric": self.metric}

