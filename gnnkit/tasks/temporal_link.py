"""Temporal link prediction with TGN's memory protocol (``--task temporal-link --sampler temporal``).

Data: an :class:`~gnnkit.temporal.events.EventStream` (``--dataset PATH`` to a whitespace
``src dst t`` file or a JODIE CSV), split chronologically at the 70% / 85% time quantiles with the
authors' inductive protocol (:func:`~gnnkit.temporal.split.temporal_split`, new nodes drawn with
the run's seed). Model: :class:`~gnnkit.temporal.model.TGN`, by default with the ``transformer``
embedding layer (PyG's example; on CollegeMsg 82.5 test AP against 72.4 for the authors' TGN-attn
layer, at 3.7x its speed: BENCHMARKS.md "TGN"); ``--temporal-embedding attention`` selects the latter.

Protocol (Rossi et al., 2020; twitter-research/tgn):

* training: the memory, message store and neighbor buffers are reset at each epoch start; every
  batch updates its nodes' memory from earlier batches' messages inside autograd, scores its
  positive pairs and one random negative destination per positive with that memory
  (loss = BCE(pos, 1) + BCE(neg, 0)), keeps the update for the positive pairs' nodes, stores its
  own raw messages and links (``TGN.commit``; the kept memory is detached);
* evaluation (``evaluate``): validation continues from the training-end state over all
  validation events, test continues from the state after validation; the inductive figures
  (``*_new_*``: events with a node unseen in training) start from backups (validation from the
  training-end state, test from the post-validation state) so the passes do not leak into each
  other. Negatives are seeded per split. AP and ROC AUC are averaged over batches of
  ``eval_batch_size`` (200) events. After evaluation the training-end state is put back;
  ``val_ap`` selects the model, and the best epoch's training-end state is kept with it, so the
  final evaluation (best weights) starts from the memory those weights produced.

TGB protocol (``protocol="tgb"``, ``--protocol tgb``; Huang et al., 2023): TGB's chronological
70/15/15 split with no held-out nodes (:func:`gnnkit.link.tgb_protocol.tgb_split`); each validation
and test event is ranked against its fixed ``hist_rnd`` negatives (``num_negatives`` per event,
:func:`gnnkit.link.tgb_protocol.split_negatives`, seed ``negative_seed``, the same for every run),
filtered MRR and Hits@10 (:mod:`gnnkit.link.ranking`), ``val_mrr`` selects the model. Validation
continues from the training-end state, test from the post-validation state; each event batch is
scored (its positives and all their negatives, with the state before the batch) and then committed,
as in the AP protocol. EdgeBank on the same negatives is reported beside TGN: unlimited memory
(``val_edgebank_mrr``, ``test_edgebank_mrr``; ``edgebank_mrr`` in the run summary) and TGB's time
window (``*_edgebank_window_mrr``). Training is the same as under the AP protocol.

Model: any :class:`~gnnkit.temporal.interface.TemporalModule` (message, memory, embedding and
predictor parts; gnnkit's TGN is one, ``examples/custom_temporal.py`` another); the task owns the
memory state and the neighbor buffers. Sampler: ``temporal`` (any other is refused in one line).
User metrics (``TemporalLinkPrediction(metrics=[...])``, :mod:`gnnkit.metrics`) receive the link
logits ``[P]`` of a split's scored pairs and labels ``[P]`` (1: the event, 0: a negative); under the
AP protocol they are reported for the inductive sets too (``val_new_<name>``).
Prediction: ``Trainer.predict((src, dst, t))`` (or :meth:`TemporalLinkPrediction.predict_queries`)
gives the link probabilities of chosen queries after training: from the state evaluation starts
from (the selected model's training-end state), the validation and test events are replayed in
order and each query is scored with the state just before the first replayed batch holding an
event at or after its time (:func:`~gnnkit.temporal.interface.score_queries`); the state is put
back afterwards. A query earlier than the end of training sees the whole training stream.

Precision (``Trainer(precision=)``): under ``bf16-mixed`` / ``16-mixed`` the training steps run under
the run's autocast, where TGN computes its dense products in the half type and everything else,
the memory state included, in float32 (:mod:`gnnkit.temporal.mixed`); evaluation and prediction run
in float32. On CPU the task keeps freed memory in the process heap between steps
(:mod:`gnnkit.temporal.heap`; ``GNNKIT_KEEP_HEAP=0`` to opt out).

Memory, message store and neighbor buffers (live and best) are in :meth:`state_dict` (tensors).
TGN's usual optimizer settings are ``--lr 1e-4 --weight-decay 0`` (gnnkit's defaults are for GCNs).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..errors import GnnkitError
from ..link.ranking import rank_metrics
from ..link.tgb_protocol import evaluate_edgebank, split_negatives, tgb_split
from ..plugins import add_option
from ..temporal.events import EventBatch, EventStream, load_events
from ..temporal.heap import keep_freed_memory
from ..temporal.memory import TemporalMemory
from ..temporal.metrics import average_precision, roc_auc
from ..temporal.interface import TemporalModule, check_queries, score_queries
from ..temporal.neighbors import LastNeighbors
from ..temporal.split import MASKS, evaluation_sets, temporal_split
from .base import SPLITS, Task

STREAMED = ("temporal link prediction scores events as they stream in; use trainer.evaluate('val') / "
            "trainer.test() for its figures and trainer.predict((src, dst, t)) to score chosen links")
PROTOCOLS = ("ap", "tgb")
TGB_PAIRS = 4096  # (source, negative) pairs per TGN call when ranking under the TGB protocol


class TemporalLinkPrediction(Task):
    name = "temporal-link"
    metric = "ap"
    higher_is_better = True
    default_sampler = "temporal"
    input = "events"
    resumes_mid_epoch = False  # the memory and neighbor lists change with each step; checkpoints hold neither

    """Args: num_neighbors: most recent neighbors each node attends to; new_node_fraction: share of
    nodes held out for the inductive test split; eval_batch_size: events per scored batch;
    sort_events: sort unsorted event times when given a file; protocol: ``"ap"`` (the authors')
    or ``"tgb"`` (module docstring), with num_negatives negatives per event drawn with negative_seed
    and stored under negatives_dir when given. The model's sizes (memory_dim,
    time_dim, embedding_dim, heads, dropout, aggregator, message, embedding) are accepted for
    compatibility and unused: the model is built by its caller (``gnnkit.commands.factory``)."""

    def __init__(self, memory_dim: int = 100, time_dim: int = 100, embedding_dim: int = 100,
                 num_neighbors: int = 10, heads: int = 2, dropout: float = 0.1, aggregator: str = "last",
                 message: str = "identity", embedding: str = "transformer", new_node_fraction: float = 0.1,
                 eval_batch_size: int = 200, sort_events: bool = False, protocol: str = "ap",
                 num_negatives: int = 100, negative_seed: int = 0, negatives_dir: str | None = None,
                 metrics=()):
        if eval_batch_size < 1:
            raise GnnkitError(f"eval batch size must be >= 1, got {eval_batch_size}")
        if protocol not in PROTOCOLS:
            raise GnnkitError(f"unknown temporal-link protocol {protocol!r}; known: {', '.join(PROTOCOLS)}")
        if num_negatives < 1:
            raise GnnkitError(f"num_negatives must be >= 1, got {num_negatives}")
        self.protocol, self.num_negatives, self.negative_seed = protocol, num_negatives, negative_seed
        self.negatives_dir = negatives_dir
        if protocol == "tgb":
            self.metric = "mrr"
        self.num_neighbors, self.new_node_fraction = num_neighbors, new_node_fraction
        self.eval_batch_size, self.sort_events = eval_batch_size, sort_events
        self.memory = self.neighbors = None
        self._best, self._fresh, self._eval_state = None, False, None
        self.add_metrics(metrics)

    def own_figures(self) -> dict:
        """Every figure is higher-is-better: AP/AUC and their inductive ``new_*`` parts, or under the TGB
        protocol MRR and Hits@10 of TGN and of both EdgeBanks."""
        if self.protocol == "tgb":
            names = [f"{who}{k}" for who in ("", "edgebank_", "edgebank_window_") for k in ("mrr", "hits@10")]
        else:
            names = ["ap", "auc", "new_ap", "new_auc"]
        return dict.fromkeys(names, True)

    def figures(self) -> dict:
        """Also the user metrics on the inductive sets (``new_<name>``) under the AP protocol."""
        extra = {} if self.protocol == "tgb" else {f"new_{m.name}": m.higher_is_better for m in self.metrics}
        return {**super().figures(), **extra}

    def check_sampler(self, sampler) -> None:
        """Only a sampler of event batches in time order (``temporal``) can feed this task."""
        if getattr(sampler, "input", None) != "events":
            name = getattr(sampler, "name", None) or type(sampler).__name__
            raise GnnkitError(f"the temporal-link task trains on an event stream in time order; sampler {name!r} "
                              "does not sample one: use sampler='temporal' (the task's default)")

    # -- command line (the model's sizes and --sort-events are the command layer's) -----------------
    @classmethod
    def add_args(cls, parser) -> None:
        add_option(parser, "--num-neighbors", type=int, default=10, help="temporal-link: attended neighbors (default 10)")
        add_option(parser, "--new-node-fraction", type=float, default=0.1,
                   help="temporal-link: share of nodes held out for the inductive test (default 0.1)")
        add_option(parser, "--protocol", choices=PROTOCOLS, default="ap",
                   help="temporal-link: 'ap' (TGN authors': AP/AUC, one negative per event; default) or "
                        "'tgb' (TGB: filtered MRR against 100 fixed hist_rnd negatives, EdgeBank beside it)")

    @classmethod
    def from_args(cls, args) -> "TemporalLinkPrediction":
        return cls(num_neighbors=args.num_neighbors, new_node_fraction=args.new_node_fraction,
                   protocol=getattr(args, "protocol", "ap"))

    def run_summary(self, result: dict) -> dict:
        m = result.get("metrics", {})
        if self.protocol == "tgb":
            return {"protocol": "tgb", "hits@10": m.get("test_hits@10"), "edgebank_mrr": m.get("test_edgebank_mrr"),
                    "val_edgebank_mrr": m.get("val_edgebank_mrr"),
                    "edgebank_window_mrr": m.get("test_edgebank_window_mrr"),
                    "val_edgebank_window_mrr": m.get("val_edgebank_window_mrr"), "num_negatives": self.num_negatives}
        return {"auc": m.get("test_auc"), "val_auc": m.get("val_auc"),
                "inductive_ap": m.get("test_new_ap"), "inductive_auc": m.get("test_new_auc"),
                "val_inductive_ap": m.get("val_new_ap"), "val_inductive_auc": m.get("val_new_auc")}

    # -- the loop's hooks -----------------------------------------------------------------------
    def prepare_data(self, data, seed: int) -> EventStream:
        data = load_events(data, sort=self.sort_events)
        if self.protocol == "tgb":
            return tgb_split(data) if data.train_mask is None else data
        if data.train_mask is None:
            data = temporal_split(data, new_node_fraction=self.new_node_fraction, seed=seed)
        return data

    def setup(self, ctx, model) -> None:
        if ctx.world_size > 1:
            raise GnnkitError(f"task {self.name!r} cannot run on {ctx.world_size} processes: TGN processes "
                              "the event stream in order in one process")
        data = ctx.data
        if not isinstance(model, TemporalModule):
            raise GnnkitError(f"the temporal-link task trains a gnnkit.temporal.interface.TemporalModule (message, "
                              f"memory, embedding and predictor parts), got {type(model).__name__}")
        if model.msg_dim != data.msg_dim:
            raise GnnkitError(f"the model expects {model.msg_dim}-wide messages, {data.name} has {data.msg_dim}")
        self.data = data
        if torch.device(ctx.device).type == "cpu":
            keep_freed_memory()  # no page faults for each step's working set (gnnkit.temporal.heap)
        self.memory = TemporalMemory(data.num_nodes, model.memory_dim, data.msg_dim, device=ctx.device)
        self.neighbors = LastNeighbors(data.num_nodes, self.num_neighbors, device=ctx.device)
        self._best, self._fresh, self._eval_state = None, False, None
        if self.protocol == "tgb":
            self._setup_tgb(data)
        else:
            self.eval_sets = evaluation_sets(data)

    def _setup_tgb(self, data: EventStream) -> None:
        """The fixed negatives of the validation and test events and EdgeBank's figures on them."""
        settings = dict(num_negatives=self.num_negatives, seed=self.negative_seed)
        self.tgb_sets = {}
        for split in ("val", "test"):
            e_id = getattr(data, MASKS[split]).nonzero().view(-1)
            neg = split_negatives(data, split, self.negatives_dir, **settings)
            self.tgb_sets[split] = (e_id, neg.to(data.dst.device))
        self.edgebank = {}
        for memory, name in (("unlimited", "edgebank"), ("window", "edgebank_window")):
            bank = evaluate_edgebank(data, memory=memory, batch_size=self.eval_batch_size,
                                     negatives_dir=self.negatives_dir, **settings)
            self.edgebank.update({f"{s}_{name}_{k}": bank[f"{s}_{k}"]
                                  for s in ("val", "test") for k in ("mrr", "hits@10")})

    def on_epoch_start(self, ctx, epoch: int) -> None:
        self.memory.reset()
        self.neighbors.reset()
        self._fresh = True

    def training_step(self, model, batch: EventBatch):
        tgn = getattr(model, "module", model)
        pos, neg, state = tgn.score(self.memory, self.neighbors, self.data, batch)
        loss = (F.binary_cross_entropy_with_logits(pos, torch.ones_like(pos))
                + F.binary_cross_entropy_with_logits(neg, torch.zeros_like(neg)))
        tgn.commit(self.memory, self.neighbors, batch, state)
        return loss, {"pos_logit": pos.detach(), "neg_logit": neg.detach()}

    def on_validation_end(self, ctx, metrics: dict, selected: bool) -> None:
        if selected and self._eval_state is not None:
            self._best = self._eval_state
        self._fresh = False

    # -- evaluation -----------------------------------------------------------------------------
    def snapshot(self) -> dict:
        return {"memory": self.memory.snapshot(), "neighbors": self.neighbors.snapshot()}

    def restore(self, state: dict) -> None:
        self.memory.restore(state["memory"])
        self.neighbors.restore(state["neighbors"])

    @torch.no_grad()
    def _pass(self, model: TemporalModule, split: str) -> dict:
        """Score one evaluation set in order, continuing the live state: mean AP and AUC per batch, and
        the user metrics on all the set's logits."""
        e_id, neg = self.eval_sets[split]
        d, aps, aucs, logits = self.data, [], [], []
        for lo in range(0, e_id.numel(), self.eval_batch_size):
            e, n = e_id[lo: lo + self.eval_batch_size], neg[lo: lo + self.eval_batch_size]
            batch = EventBatch(e_id=e, src=d.src[e], dst=d.dst[e], t=d.t[e], msg=d.msg[e], neg_dst=n)
            pos, negl, state = model.score(self.memory, self.neighbors, d, batch)
            score = torch.cat([pos, negl]).sigmoid()
            label = torch.cat([torch.ones_like(pos), torch.zeros_like(negl)])
            aps.append(average_precision(score, label))
            aucs.append(roc_auc(score, label))
            logits.append(torch.cat([pos, negl]))
            model.commit(self.memory, self.neighbors, batch, state)
        out = {f"{split}_ap": sum(aps) / len(aps) if aps else math.nan,
               f"{split}_auc": sum(aucs) / len(aucs) if aucs else math.nan}
        return self._user(split, logits, out)

    def _user(self, split: str, logits: list, out: dict) -> dict:
        """``out`` with the user metrics of the logits ``[2b]`` (positives then negatives) of each batch."""
        if self.metrics:
            labels = [torch.cat([torch.ones(len(x) // 2), torch.zeros(len(x) - len(x) // 2)]) for x in logits]
            flat = torch.cat(logits) if logits else torch.zeros(0)
            self.user_figures(split, flat, torch.cat(labels).to(flat.device) if labels else torch.zeros(0), out)
        return out

    @torch.no_grad()
    def _tgb_pass(self, model: TemporalModule, split: str) -> dict:
        """MRR and Hits@10 of one split's events against their fixed negatives, continuing the live
        state: per batch, the positives and every (source, negative) pair are scored with the state
        before the batch, then the batch is committed."""
        e_id, neg = self.tgb_sets[split]
        if e_id.numel() == 0:
            return {f"{split}_mrr": math.nan, f"{split}_hits@10": math.nan}
        d, pos_all, neg_all = self.data, [], []
        k = neg.shape[1]
        for lo in range(0, e_id.numel(), self.eval_batch_size):
            e, n = e_id[lo: lo + self.eval_batch_size], neg[lo: lo + self.eval_batch_size]
            src, dst, t, msg = d.src[e], d.dst[e], d.t[e], d.msg[e]
            cand = torch.where(n >= 0, n, dst.unsqueeze(1)).reshape(-1)  # padding: scored, then masked
            rows = torch.arange(e.numel(), device=e.device).repeat_interleave(k)
            scores = []
            for c in range(0, cand.numel(), TGB_PAIRS):
                r, m = rows[c: c + TGB_PAIRS], cand[c: c + TGB_PAIRS]
                pair = EventBatch(e_id=e[r], src=src[r], dst=m, t=t[r], msg=msg[r], neg_dst=m)
                scores.append(model.score(self.memory, self.neighbors, d, pair)[1])
            batch = EventBatch(e_id=e, src=src, dst=dst, t=t, msg=msg, neg_dst=dst)
            pos, _, state = model.score(self.memory, self.neighbors, d, batch)
            model.commit(self.memory, self.neighbors, batch, state)
            pos_all.append(pos.cpu())
            neg_all.append(torch.cat(scores).view(-1, k).cpu())
        pos, neg_s, valid = torch.cat(pos_all), torch.cat(neg_all), (neg >= 0).cpu()
        figures = rank_metrics(pos, neg_s, valid, k=10)
        out = {f"{split}_{key}": v for key, v in figures.items()}
        if self.metrics:
            negs = neg_s[valid]
            self.user_figures(split, torch.cat([pos, negs]),
                              torch.cat([torch.ones(pos.numel()), torch.zeros(negs.numel())]), out)
        return out

    def _evaluate_tgb(self, model: TemporalModule, splits) -> dict:
        start = self.snapshot()
        out = self._tgb_pass(model, "val")
        if "test" in splits:
            out.update(self._tgb_pass(model, "test"))
        self.restore(start)
        self._eval_state = start
        out.update(self.edgebank)
        return {k: v for k, v in out.items() if k.split("_")[0] in splits}

    def predict(self, ctx, model, predict, queries=None):
        """``Trainer.predict((src, dst, t))``: :meth:`predict_queries`; without queries, refused."""
        if queries is None:
            raise GnnkitError(STREAMED)
        return self.predict_queries(model, queries)

    def predict_queries(self, model, queries) -> torch.Tensor:
        """Link probabilities ``[Q]`` of ``queries`` (``(src, dst, t)`` 1-d arrays, or a dict with those
        keys) after training, in their order (module docstring); the task's state is unchanged."""
        if self.memory is None:
            raise GnnkitError("the temporal-link task predicts after Trainer.fit (it has no state yet)")
        src, dst, t = check_queries(queries, self.data.num_nodes, self.data.src.device)
        module = getattr(model, "module", model)
        was_training, start = module.training, self.snapshot()
        module.eval()
        try:
            if not self._fresh and self._best is not None:
                self.restore(self._best)  # the state evaluation starts from
            replay = (self.data.val_mask | self.data.test_mask).nonzero().view(-1)
            return score_queries(module, self.memory, self.neighbors, self.data, (src, dst, t), replay,
                                 self.eval_batch_size)
        finally:
            self.restore(start)
            module.train(was_training)

    def score(self, ctx, predictions, splits=SPLITS) -> dict:
        raise GnnkitError(STREAMED)

    def evaluate(self, ctx, model, predict, splits=SPLITS) -> dict:
        """AP and AUC of the validation/test events (and their inductive parts), streamed in order;
        under the TGB protocol their MRR and Hits@10, with EdgeBank's figures."""
        for s in splits:
            if s not in SPLITS:
                raise GnnkitError(f"unknown split {s!r}; known: {', '.join(SPLITS)}")
        if "val" not in splits and "test" not in splits:
            return {}
        was_training = model.training
        model.eval()
        if not self._fresh and self._best is not None:
            self.restore(self._best)  # after fit: the state the best weights trained into
        if self.protocol == "tgb":
            out = self._evaluate_tgb(model, splits)
            model.train(was_training)
            return out
        start = self.snapshot()
        out = self._pass(model, "val")
        after_val = self.snapshot() if "test" in splits else None
        self.restore(start)
        out.update(self._pass(model, "val_new"))
        if after_val is not None:
            self.restore(after_val)
            out.update(self._pass(model, "test"))
            self.restore(after_val)
            out.update(self._pass(model, "test_new"))
        self.restore(start)
        self._eval_state = start
        model.train(was_training)
        if "val" not in splits:
            out = {k: v for k, v in out.items() if not k.startswith("val")}
        return out

    # -- checkpoints ----------------------------------------------------------------------------
    def state_dict(self) -> dict:
        if self.memory is None:
            return {}
        return {"memory": self.memory.state_dict(), "neighbors": self.neighbors.state_dict(),
                "best": self._best or {}, "fresh": self._fresh}

    def load_state_dict(self, state: dict) -> None:
        if not state:
            return
        if self.memory is None:
            raise GnnkitError("load the temporal-link task state after setup (Trainer.fit does)")
        self.restore(state)
        self._best = state.get("best") or None
        self._fresh = bool(state.get("fresh", False))
