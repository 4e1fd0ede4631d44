"""Minimal variance sampling (MVS-GNN, Cong et al., KDD 2020), Algorithm 1, with historical embeddings.

Schedule. Steps come in rounds of ``K`` (``refresh``): the first step of a round draws a candidate
set ``C`` of ``m = round(γ n)`` training nodes uniformly (``γ = candidates``), runs an exact no-grad
forward over ``C``'s full ``L``-hop neighborhood that refreshes the stored embeddings
(:class:`~gnnkit.history.HistoryStore`) and the gradient norms ``g_i`` of ``C``, and yields ``C``
itself as one large batch (exact blocks, mean loss over ``C``). The other ``K - 1`` steps draw
mini-batches from ``C`` only.

Mini-batch. Each candidate is kept independently with ``p_i = min(1, g_i / μ)``, ``μ`` solving
``Σ_{i∈C} p_i = B`` (:func:`mvs_probabilities`), so the batch size is random around ``B``. Its
loss is ``Σ_{i∈S} w_i ℓ_i`` with ``w_i = 1 / (m p_i)``: ``E_S[Σ_S ℓ_i / (m p_i)] = (1/m) Σ_C ℓ_i``
and, ``C`` being uniform, ``E_C`` of that is the full-batch mean over the training nodes. Its
forward uses the exact 1-hop block ``Â[S, S ‖ halo]`` of the full graph with the halo's stored
embeddings (:class:`~gnnkit.history.HistoryBlocks`): with fresh history the loss and the head's
gradient are unbiased (Lemma 3.2); the lower layers' gradient misses the paths through the halo
(see :mod:`gnnkit.history`), and stale history biases everything. The halo's rows are computed at
a round's first step, so their error grows with how far the parameters move in the next ``K - 1``
steps, about ``K · lr`` per weight under Adam. On csbm (100k nodes, noisy labels) ``K = 20`` at
Adam 0.01 (the paper's rate) drifts and collapses, while ``K = 20`` at 1e-3 (the authors' code),
``K = 2`` at 0.01, or ``K = 20`` at 0.01 with the halo recomputed every step stay stable near the
full-batch accuracy (BENCHMARKS.md): lower ``K`` or the learning rate when the curves sag.

Gradient norms. ``g_i`` is the norm of node ``i``'s per-example gradient of the head's weight and
bias, ``‖∂ℓ_i/∂z_i‖ · sqrt(‖h_i‖² + 1)`` (:func:`head_gradient_norms`), with ``z_i`` the logits and
``h_i`` the head's input; the Trainer hands each step's outputs to :meth:`MVSSampler.feedback`,
which overwrites the stored norms of the batch's nodes. Candidates' norms are floored at ``1e-6``
of their mean so that no node has probability 0 (which stale norms would turn into bias).

An epoch is ``K · ceil(ceil(n / B) / K)`` steps (at least one pass's worth of mini-batches, whole
rounds), every epoch starts a round, and draws come from a generator seeded from ``(seed,
epoch)``: a resumed run draws the same batches without saving history. Under several processes
every rank draws the same ``C`` and takes its share (equal sizes); μ is solved over the norms of
all ranks (all-gathered) for the total ``B``, and the weights are scaled by ``world``
(DistributedDataParallel averages); the stored
norms and embeddings of a rank cover its own share. ``uniform=True`` keeps every candidate with
``p_i = B / m`` (uniform node sampling with the same historical embeddings, the ablation).
"""
from __future__ import annotations

import logging
import math
from typing import Optional

import torch
from torch import Tensor

from gnnkit.errors import GnnkitError
from gnnkit.history import HISTORY_MODES, HistoryBlocks, HistoryStore, exact_pass, history_allocator
from gnnkit.sparse.blocks import exact_blocks, row_block
from gnnkit.sparse.subgraph import local_id_buffer

from .base import Sampler
from .batch import Batch
from .loader import epoch_generator, seed_nodes, shard

FLOOR = 1e-6
STALE_DRIFT = 0.1  # K · lr above which a warning is logged: 0.1 (K 10, Cora) held, 0.2 (K 20, csbm) drifted
log = logging.getLogger("gnnkit")


def mvs_probabilities(g: Tensor, b: float) -> Tensor:
    """``p = min(1, g / μ)`` with ``Σ p = b`` (all ones when ``b >= len(g)``): water-filling on the
    sorted ``g``. With the ``k`` largest clipped to 1, ``μ_k = (Σ_{j>k} g_(j)) / (b - k)``; the
    answer is the smallest ``k`` whose next value ``g_(k+1) <= μ_k``. ``g`` ``[m]`` → ``[m]``."""
    m = g.numel()
    if b >= m:
        return torch.ones_like(g)
    g = g.clamp_min(0)
    g = g + FLOOR * g.mean() + torch.finfo(g.dtype).tiny
    s = torch.sort(g, descending=True).values
    tail = s.flip(0).cumsum(0).flip(0)  # tail[k] = Σ_{j >= k} s[j]
    kk = torch.arange(int(math.ceil(b)), device=g.device)
    mu = tail[kk] / (b - kk)
    k = int(torch.nonzero(s[kk] <= mu)[0])
    return (g / mu[k]).clamp(max=1.0)


@torch.no_grad()
def head_gradient_norms(logits: Tensor, y: Tensor, emb: Tensor) -> Tensor:
    """``‖∂ℓ_i/∂z_i‖·sqrt(‖h_i‖² + 1)`` ``[n]`` for softmax cross-entropy (``y`` ``[n]`` classes:
    ``∂ℓ/∂z = softmax(z) − onehot(y)``) or mean binary cross-entropy (``y`` ``[n, T]``:
    ``(σ(z) − y) / T``); ``logits`` ``[n, C]``, ``emb`` ``[n, d]`` the head's input."""
    z = logits.detach().float()
    if y.dim() == 2:
        delta = (torch.sigmoid(z) - y.float()) / z.shape[1]
    else:
        delta = torch.softmax(z, dim=1)
        delta[torch.arange(z.shape[0], device=z.device), y] -= 1.0
    return delta.norm(dim=1) * (emb.detach().float().pow(2).sum(1) + 1.0).sqrt()


class MVSSampler(Sampler):
    """MVS-GNN mini-batches (see the module docstring).

    Args:
        batch_size: expected mini-batch size ``B``.
        refresh: ``K``, steps per round (``None``: 10 for graphs up to 50k nodes, else 20).
        candidates: ``γ``, the candidate fraction of the training nodes (``None``: 1.0 up to 50k
            training nodes, else 0.1).
        uniform: keep candidates with equal probability ``B / m`` instead of by gradient norm.
        history_device: where the stored embeddings live (default: the run's device).
        history: ``"auto"`` (default: a stored layer ``[N, d]`` bigger than a quarter of the
            machine's memory lives in a memory-mapped file, a smaller one in memory), ``"memory"``
            or ``"disk"`` (:func:`gnnkit.history.history_allocator`); the numbers are the same.
        history_dir: the folder of the history files (default: the system's temporary folder).
        history_allocate: ``allocate(rows, width, dtype)`` of each stored layer, overriding ``history``
            (see :class:`~gnnkit.history.HistoryStore`).
    """

    name = "mvs"
    wants_feedback = True

    def __init__(self, batch_size: int = 512, refresh: Optional[int] = None, candidates: Optional[float] = None,
                 uniform: bool = False, history_device=None, history: str = "auto", history_dir=None,
                 history_allocate=None):
        if batch_size < 1:
            raise GnnkitError(f"batch_size must be at least 1, got {batch_size}")
        if refresh is not None and refresh < 1:
            raise GnnkitError(f"--mvs-refresh must be at least 1, got {refresh}")
        if candidates is not None and not 0.0 < candidates <= 1.0:
            raise GnnkitError(f"--mvs-candidates must be in (0, 1], got {candidates}")
        if history not in HISTORY_MODES:
            raise GnnkitError(f"--mvs-history must be one of {', '.join(HISTORY_MODES)}, got {history!r}")
        self.batch_size, self.refresh, self.candidates = int(batch_size), refresh, candidates
        self.uniform, self.history_device, self.history_allocate = uniform, history_device, history_allocate
        self.history, self.history_dir = history, history_dir

    def setup(self, ctx, model) -> None:
        from gnnkit.models.pyg import refuse

        refuse(model, "the MVS sampler", "a gnnkit model (layers, head, apply_layer: its historical embeddings are "
                                        "kept per layer)")
        super().setup(ctx, model)
        from .edges import link_edges_of

        if link_edges_of(ctx) is not None:  # its variance weights are per node, from node-loss gradients
            raise GnnkitError("the mvs sampler samples training nodes, not edges (link prediction): "
                              "use the full, neighbor or cluster sampler")
        self.num_layers = getattr(model, "num_layers", None)
        if self.num_layers is None or not hasattr(model, "apply_layer"):
            raise GnnkitError("the mvs sampler needs a gnnkit model (layers, apply_layer, head_input, head)")
        self.train = seed_nodes(ctx.features, who="mvs")
        n = self.train.numel()
        self.K = self.refresh or (10 if ctx.graph.num_nodes <= 50_000 else 20)
        drift = self.K * ctx.lr
        if ctx.optimizer.lower() in ("adam", "adamw") and drift > STALE_DRIFT:
            log.warning("mvs: refresh every K=%d steps at Adam lr=%g moves each weight up to ~%.2f between "
                        "history refreshes; stale embeddings may make training drift (see the sampler's "
                        "docstring): lower --mvs-refresh or --lr if validation sags", self.K, ctx.lr, drift)
        gamma = self.candidates if self.candidates is not None else (1.0 if n <= 50_000 else 0.1)
        self.world, self.rank = ctx.world_size, ctx.rank
        self.m = max(1, round(gamma * n)) // self.world * self.world
        if self.m == 0:
            raise GnnkitError(f"{n} training nodes at γ={gamma} give no candidates for {self.world} ranks")
        self.adj = ctx.graph.adjacency(ctx.adj_norm, ctx.diag_lambda)
        where = self.history_device or ctx.device
        allocate = self.history_allocate or history_allocator(self.history, where, self.history_dir)
        self.store = HistoryStore(ctx.graph.num_nodes, where, allocate=allocate)
        self.lid = local_id_buffer(ctx.graph.num_nodes, self.train.device)
        self.cand = self.g = None

    def __len__(self) -> int:
        steps = -(-(self.train.numel() // self.world) // self.batch_size)
        return self.K * -(-steps // self.K)

    # -- one round ------------------------------------------------------------------------------
    def _exact_batch(self, seeds: Tensor, weight: Optional[Tensor], store: Optional[HistoryStore]) -> Batch:
        """The exact ``L``-hop batch of ``seeds`` (every neighbor, the full graph's weights); with
        ``store``, a no-grad pass at the current parameters refreshes the history and the norms."""
        n_id, blocks = exact_blocks(self.adj, seeds, self.num_layers, self.lid)
        x, y = self.ctx.features.get("x", n_id), self.ctx.features.get("y", seeds)
        if store is not None:
            logits, emb = exact_pass(self.model, x, blocks, n_id, store)
            self.cand, self.g = seeds, head_gradient_norms(logits, y, emb)
        return Batch(x=x, y=y, adj=blocks, n_id=n_id, batch_size=seeds.numel(),
                     loss_index=torch.arange(seeds.numel(), device=seeds.device), loss_weight=weight,
                     num_nodes=n_id.numel(), extra={"refresh": store is not None})

    def refresh_candidates(self, gen: torch.Generator) -> Batch:
        """Draw ``C``, refresh history and norms at the current parameters; the large batch."""
        perm = torch.randperm(self.train.numel(), generator=gen, device=self.train.device)[:self.m]
        cand = shard(self.ctx, self.train[perm])
        weight = torch.full((cand.numel(),), self.world / self.m, device=cand.device)
        return self._exact_batch(cand, weight, self.store)

    def sample_from_nodes(self, seeds: Tensor) -> Batch:
        """The exact ``L``-hop batch of ``seeds`` ``[B]`` (mean loss; history and norms untouched)."""
        return self._exact_batch(seeds, None, None)

    def probabilities(self) -> Tensor:
        """Keep probabilities of this rank's candidates. With several processes μ solves
        ``Σ p_i = B`` over the norms of **all** ranks' candidates (all-gathered), so the batch
        drawn across ranks is the one a single process would draw from the same norms."""
        b = self.batch_size / self.world
        if self.uniform:
            return torch.full_like(self.g, min(1.0, b / self.g.numel()))
        if self.world == 1 or self.ctx.world_size == 1:  # the second: rank 0 working alone
            return mvs_probabilities(self.g, b)
        g_all = self.ctx.gather_rows(self.g.unsqueeze(1), self.m).view(-1)
        share = self.g.numel()
        return mvs_probabilities(g_all, float(self.batch_size))[self.rank * share:(self.rank + 1) * share]

    def sample(self, gen: torch.Generator) -> Batch:
        """One mini-batch from the current candidates, norms and history."""
        if self.cand is None:
            raise GnnkitError("the mvs sampler has no candidates yet: call refresh_candidates first")
        p = self.probabilities()
        keep = torch.rand(p.numel(), generator=gen, device=p.device, dtype=p.dtype) < p
        if not bool(keep.any()):  # probability Π(1 - p_i) <= exp(-B): keep the likeliest node
            keep[p.argmax()] = True
        pos = keep.nonzero().view(-1)
        batch = self.cand[pos]
        block, halo = row_block(self.adj, batch, self.lid)
        n_id = torch.cat([batch, halo])
        adj = HistoryBlocks(block, self.num_layers, batch, halo, self.store)
        return Batch(x=self.ctx.features.get("x", n_id), y=self.ctx.features.get("y", batch), adj=adj, n_id=n_id,
                     batch_size=batch.numel(), loss_index=torch.arange(batch.numel(), device=batch.device),
                     loss_weight=self.world / (self.m * p[pos]), num_nodes=n_id.numel(),
                     extra={"cand_pos": pos, "refresh": False})

    def __iter__(self):
        gen = epoch_generator(self.ctx.seed, self.epoch, self.train.device)
        for t in range(len(self)):
            yield self.refresh_candidates(gen) if t % self.K == 0 else self.sample(gen)

    def feedback(self, batch, outputs: dict) -> None:
        """Overwrite the stored norms of the batch's nodes with the step's own (pre-update) ones."""
        if batch.extra["refresh"] or self.uniform:
            return
        idx = batch.loss_index
        self.g[batch.extra["cand_pos"]] = head_gradient_norms(outputs["logits"][idx], batch.y[idx],
                                                     outputs["embedding"][idx]).to(self.g.dtype)

    # -- command line ---------------------------------------------------------------------------
    @classmethod
    def add_args(cls, parser) -> None:
        from gnnkit.plugins import add_option

        add_option(parser, "--mvs-refresh", type=int, default=None,
                   help="K: steps per MVS round, the first on the whole candidate set (default 10 / 20 on >50k nodes); "
                        "history staleness grows with K x lr")
        add_option(parser, "--mvs-candidates", type=float, default=None,
                   help="γ: fraction of training nodes drawn as candidates each round (default 1 / 0.1 beyond 50k)")
        add_option(parser, "--mvs-history", choices=HISTORY_MODES, default="auto",
                   help="where the historical embeddings live: auto (a memory-mapped file when a layer would take "
                        "over a quarter of memory), memory, disk")
        add_option(parser, "--mvs-history-dir", default=None,
                   help="folder of the memory-mapped history files (default: the temporary folder)")

    @classmethod
    def from_args(cls, args) -> "MVSSampler":
        size = getattr(args, "batch_size", None)
        return cls(batch_size=512 if size is None else size, refresh=args.mvs_refresh, candidates=args.mvs_candidates,
                   history=getattr(args, "mvs_history", "auto"), history_dir=getattr(args, "mvs_history_dir", None))
