"""Link prediction as a Task: an encoder (any gnnkit model, its output = node embeddings ``z``
``[N, d]``) and a decoder scoring edges, trained with BCE on positives against sampled negatives.

* ``prepare_data(data, seed)``: the split. ``data.link_split`` (an OGB split from
  :func:`gnnkit.link.ogbl.load_ogbl`) when present, else the seeded GAE split
  (:func:`gnnkit.link.random_link_split`, ``val_frac``/``test_frac``, drawn with the run's seed).
  The returned graph's ``edge_index`` is the *training* message-passing graph, so the run's graph
  store never holds a validation or test edge; ``y`` is a placeholder and every node is a
  "training node" of the full-batch sampler (the loss is on edges, not nodes).
* ``training_step``: on a whole-graph batch (sampler ``full``) ``z = model(x, adj)``, positives =
  the training edges in both directions, ``num_negatives`` negatives per positive
  (:class:`gnnkit.link.NegativeSampler`, ``uniform`` or ``degree``, seeded from the run's seed),
  loss = :func:`gnnkit.link.link_loss`. On an edge batch (``neighbor``, ``cluster``: the prepared
  data carries ``link_edges``, :class:`samplers.edges.LinkEdges`, so those samplers walk batches of
  training edges with their negatives, :mod:`samplers.edges`) ``z`` are the embeddings of the
  batch's output rows from its blocks and the loss is the same BCE on ``batch.edge_label_index``
  (local rows) against ``batch.edge_label``.
* Edge weights (``data.edge_weight``): every undirected edge keeps its weight into its split and
  the message-passing graph carries the training edges' weights (``out.edge_weight``), so every
  sampler and the whole-graph operator propagate with them as for node classification.
* ``evaluate``: ``z`` from the loop's ``predict()``; per split AUC and AP against the fixed
  negatives (``metric="auc"``), or the ``ogbl-*`` dataset's own metric through OGB's Evaluator
  (``hits@50``, ``mrr``, ...); ``<split>_loss`` = BCE on the same edges. The ``train`` figures use
  a fixed, seeded set of negatives drawn in ``setup``. With ogbl-collab's rule the test split is
  scored with ``z`` computed on the training + validation graph.

The decoder is the model's own ``decoder`` submodule when it has one (:class:`gnnkit.link.model.LinkModel`
wraps an encoder and e.g. the Hadamard-MLP decoder, so the loop optimizes both), else the dot product.
"""
from __future__ import annotations

from typing import Optional, Sequence

import torch
from torch import nn
from torch_geometric.data import Data

from ..errors import GnnkitError
from ..link import DotDecoder, NegativeSampler, auc_ap, link_loss, ogbl_metric, ogbl_score, random_link_split
from ..link.negatives import METHODS as NEGATIVE_METHODS
from ..samplers.edges import LinkEdges
from ..stores.memory import edge_weights_of
from .base import SPLITS, Task


class LinkPrediction(Task):
    name = "link"
    metric = "auc"
    higher_is_better = True

    def __init__(self, negatives: str = "uniform", num_negatives: int = 1, val_frac: float = 0.05,
                 test_frac: float = 0.10, metrics=()) -> None:
        """``metrics``: user metrics (:mod:`gnnkit.metrics`), given the logits of each split's scored
        pairs and their labels (1 positive, 0 negative)."""
        if num_negatives < 1:
            raise GnnkitError(f"num_negatives must be >= 1, got {num_negatives}")
        if negatives not in NEGATIVE_METHODS:
            raise GnnkitError(f"unknown negative sampling method {negatives!r}; known: {', '.join(NEGATIVE_METHODS)}")
        self.negatives, self.num_negatives = negatives, int(num_negatives)
        self.val_frac, self.test_frac = val_frac, test_frac
        self.split = self.evaluator_name = self.sampler = self.gen = self.train_neg = None
        self.positives = self.positives_cpu = None
        self.decoder = DotDecoder()
        self.add_metrics(metrics)

    def own_figures(self) -> dict:
        """Loss (lower is better); AUC, AP and the OGB metric (hits@K / mrr) (higher is better)."""
        return {"loss": False, "auc": True, "ap": True, self.metric: True}

    def prepare_data(self, data, seed: int):
        for key in ("x", "edge_index"):
            if getattr(data, key, None) is None:
                raise GnnkitError(f"link prediction needs data.{key}")
        n = int(data.num_nodes)
        split = getattr(data, "link_split", None)
        weight = getattr(data, "edge_weight", None)
        if split is None:
            weight = None if weight is None else edge_weights_of(data)
            split = random_link_split(data.edge_index.cpu(), n, val_frac=self.val_frac, test_frac=self.test_frac,
                                      seed=seed, name=getattr(data, "name", "link-split"), edge_weight=weight)
        elif weight is not None and split.train_weight is None:  # never train on a silently unweighted graph
            raise GnnkitError("the graph has edge_weight but its link split carries no weights")
        name = getattr(data, "evaluator_name", None)
        self.evaluator_name = name if isinstance(name, str) and name.startswith("ogbl-") else None
        self.metric = ogbl_metric(self.evaluator_name) if self.evaluator_name else "auc"
        self.split = split
        out = Data(x=data.x.float(), edge_index=split.message_edges("train"), num_nodes=n,
                   y=torch.zeros(n, dtype=torch.long), train_mask=torch.ones(n, dtype=torch.bool),
                   val_mask=torch.zeros(n, dtype=torch.bool), test_mask=torch.zeros(n, dtype=torch.bool))
        w = split.message_weights("train")
        if w is not None:
            out.edge_weight = w
        out.name = getattr(data, "name", "link")
        mp = split.message_edges("train")
        self.sampler = NegativeSampler(n, mp, method=self.negatives)
        out.link_edges = LinkEdges(mp, self.sampler, self.num_negatives)  # edge batches (samplers.edges)
        return out

    def setup(self, ctx, model) -> None:
        if self.split is None:
            raise GnnkitError("link task: prepare_data was not called")
        mp = self.split.message_edges("train")
        decoder = getattr(model, "decoder", None)
        self.decoder = decoder if isinstance(decoder, nn.Module) else DotDecoder()
        self.gen = torch.Generator().manual_seed(int(ctx.seed))
        self.train_neg = self.sampler.sample(mp, 1, torch.Generator().manual_seed(int(ctx.seed) + 1))
        self.positives, self.positives_cpu = mp.to(ctx.device), mp

    def training_step(self, model, batch):
        if batch.n_id is not None:  # an edge batch: its endpoints' embeddings from the sampled blocks
            if batch.edge_label_index is None:
                raise GnnkitError("the link task got a node batch: the sampler does not walk edges "
                                  "(use full, neighbor or cluster)")
            z = model(batch.x, batch.adj)
            logits = self.decoder(z, batch.edge_label_index)
            positive = batch.edge_label > 0.5
            return link_loss(logits[positive], logits[~positive]), {"embedding": z}
        z = model(batch.x, batch.adj)
        neg = self.sampler.sample(self.positives_cpu, self.num_negatives, self.gen).to(z.device)
        loss = link_loss(self.decoder(z, self.positives), self.decoder(z, neg))
        return loss, {"embedding": z}

    def _edges(self, split: str):
        if split == "train":
            return self.positives, self.train_neg
        return self.split.positives(split), self.split.negatives(split)

    def _figures(self, z, split: str) -> dict:
        pos_e, neg_e = self._edges(split)
        pos = self.decoder(z, pos_e.to(z.device))
        if self.split.neg_per_source and split != "train":  # destinations per source (citation2): [E, K]
            src = pos_e[0].to(z.device).view(-1, 1).expand_as(neg_e)
            neg = self.decoder(z, torch.stack([src.reshape(-1), neg_e.to(z.device).reshape(-1)])).view(neg_e.shape)
        else:
            neg = self.decoder(z, neg_e.to(z.device))
        out = {f"{split}_loss": float(link_loss(pos, neg))}
        if self.evaluator_name and split != "train":
            out.update({f"{split}_{k}": v for k, v in ogbl_score(self.evaluator_name, pos, neg).items()})
        else:
            figs = auc_ap(pos, neg.reshape(-1))
            out.update({f"{split}_auc": figs["auc"], f"{split}_ap": figs["ap"]})
        scores = torch.cat([pos.view(-1), neg.reshape(-1)])
        labels = torch.cat([torch.ones(pos.numel()), torch.zeros(neg.numel())]).to(scores.device)
        self.user_figures(split, scores, labels, out)
        return out

    def score(self, ctx, predictions, splits: Sequence[str] = SPLITS) -> dict:
        """Figures of the embeddings ``predictions`` ``[N, d]`` on ``splits`` (module docstring)."""
        out = {}
        for s in splits:
            if s not in SPLITS:
                raise GnnkitError(f"unknown split {s!r}; known: {', '.join(SPLITS)}")
            out.update(self._figures(predictions, s))
        return out

    def evaluate(self, ctx, model, predict, splits: Sequence[str] = SPLITS) -> dict:
        z = predict()
        out = self.score(ctx, z, [s for s in splits if not (s == "test" and self.split.val_in_test_graph)])
        if "test" in splits and self.split.val_in_test_graph:
            out.update(self.score(ctx, self._test_embeddings(ctx, model), ["test"]))
        return out

    def _test_embeddings(self, ctx, model) -> torch.Tensor:
        """``z`` on the training + validation graph (ogbl-collab's rule), whole graph at once."""
        from ..sparse import Adjacency

        w = self.split.message_weights("test")
        adj = Adjacency.from_edge_index(self.split.message_edges("test").to(ctx.device), self.split.num_nodes,
                                        norm=ctx.adj_norm, diag_lambda=ctx.diag_lambda,
                                        edge_weight=None if w is None else w.to(ctx.device))
        return model(ctx.features.get("x"), adj)

    # -- command line -------------------------------------------------------------------------------
    @classmethod
    def add_args(cls, parser) -> None:
        from ..plugins import add_option

        add_option(parser, "--negatives", default="uniform", help="training negatives: uniform or degree")
        add_option(parser, "--num-negatives", type=int, default=1, help="negatives per positive edge (default 1)")

    @classmethod
    def from_args(cls, args) -> "LinkPrediction":
        return cls(negatives=args.negatives, num_negatives=args.num_negatives)

    def state_dict(self) -> dict:
        return {"gen": self.gen.get_state()} if self.gen is not None else {}

    def load_state_dict(self, state: dict) -> None:
        if state.get("gen") is not None and self.gen is not None:
            self.gen.set_state(state["gen"])
