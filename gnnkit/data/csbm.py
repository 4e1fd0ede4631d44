"""A seeded contextual stochastic block model (CSBM): :func:`csbm`.

Graph. ``N`` nodes in ``C`` classes of equal size (sizes differ by at most one). ``M =
round(N * avg_degree / 2)`` undirected edges are drawn independently: the first endpoint ``u``
with probability ``θ_u / Σθ``; with probability ``homophily`` the second endpoint is in ``u``'s
class, otherwise in one of the other ``C - 1`` classes chosen uniformly; within that class it is
``v`` with probability ``∝ θ_v``. So the expected edge homophily (fraction of edges joining equal
classes) is ``homophily`` and the expected degree of node ``i`` is ``avg_degree * θ_i``.
Without degree correction ``θ ≡ 1`` (Poisson degrees). With ``degree_exponent = γ > 2``,
``θ_i`` is Pareto: ``P(θ > t) = t^{-(γ-1)}`` (degree distribution ``P(k) ∝ k^{-γ}``), capped at an
expected degree of ``sqrt(avg_degree * N)`` (the structural cutoff) and rescaled to mean 1 in
each class, so all classes have the same volume.

Edges come back symmetric (both directions present), without self-loops and without duplicates
(self-loops and repeated draws are removed, so ``E`` is slightly below ``2M``: at ogbn-products
scale by 0.02% without degree correction and 0.8% with ``γ = 2.5``), sorted by ``(row, col)``:
``edge_index`` int64 ``[2, E]``.

Features. ``x_i = μ_{y_i} + ε_i`` with ``ε_i ~ N(0, I_F)`` and ``‖μ_c‖ = feature_snr``; the class
means are orthonormal directions scaled by ``feature_snr`` when ``C <= F`` (then two class means
lie ``feature_snr·√2`` apart and features alone separate two classes with error
``Φ(-feature_snr/√2)``), random unit directions otherwise. ``x`` float32 ``[N, F]``.

Labels. ``y`` int64 ``[N]``, then ``label_noise`` (a fraction of the nodes) get a label drawn
uniformly from the ``C`` classes *after* edges and features are drawn (so it keeps its old label
with chance ``1/C``): neither structure nor features predict them, so a model that recovers the
classes scores about ``1 - label_noise·(C-1)/C`` on the noisy labels, training ones included,
unless it memorizes. The split is drawn on the noisy labels: a random
60/20/20 split by default (``split="planetoid"`` for 20 per class / 500 / 1000).

Everything is tensor operations, in chunks of edges and rows to bound memory; the same
``seed`` gives the same graph. 2.4M nodes / 62M directed edges / 100 features take 21 s of CPU
time (31 s with ``degree_exponent=2.5``) and 3.4 GiB peak on 2 cores (see BENCHMARKS.md).
"""
from __future__ import annotations

import math
from typing import Any, Dict, Iterator, List, NamedTuple, Optional, Tuple

import numpy as np
import torch
from torch import Tensor
from torch_geometric.data import Data

from gnnkit.errors import GnnkitError

from .limits import check_allocation
from .split import make_split

_CHUNK = 1 << 22  # edges (or feature rows) generated at a time


class Option(NamedTuple):
    name: str
    type: Any
    default: Any
    help: str

    @property
    def flag(self) -> str:
        """The command-line flag: ``--num-nodes`` ...; ``seed`` is ``--graph-seed`` and ``split``
        ``--csbm-split`` (the training seed and the node task's ``--split`` own the plain names)."""
        special = {"seed": "--graph-seed", "split": "--csbm-split"}
        return special.get(self.name, "--" + self.name.replace("_", "-"))


def _opt_float(text: str) -> Optional[float]:
    return None if str(text).lower() in ("none", "") else float(text)


def _count(text: str) -> int:
    """An int, also written as ``1e6`` or ``1_000_000`` (a whole number in any of these forms)."""
    try:
        return int(str(text).replace("_", ""))
    except ValueError:
        value = float(text)
        if not math.isfinite(value) or value != int(value):
            raise ValueError(f"not a whole number: {text!r}") from None
        return int(value)


_count.__name__ = "int"  # argparse and parse_csbm_spec name the type in their messages

_OPTIONS = [
    Option("num_nodes", _count, 10_000, "number of nodes N"),
    Option("num_classes", _count, 10, "number of classes C"),
    Option("avg_degree", float, 10.0, "average number of directed edges per node (E ≈ N·avg_degree)"),
    Option("num_features", _count, 100, "feature dimension F"),
    Option("homophily", float, 0.8, "expected fraction of edges joining nodes of one class"),
    Option("feature_snr", float, 1.0, "norm of each class mean; feature noise is N(0, I)"),
    Option("degree_exponent", _opt_float, None, "power-law degree exponent γ > 2 (none: Poisson degrees)"),
    Option("label_noise", float, 0.0, "fraction of nodes relabeled uniformly at random after generation"),
    Option("seed", _count, 0, "random seed of the graph"),
    Option("split", str, "random", "split of the labeled nodes: random or planetoid"),
    Option("train_frac", float, 0.6, "training fraction (split=random)"),
    Option("val_frac", float, 0.2, "validation fraction (split=random)"),
]


def csbm_options() -> List[Option]:
    """The options of :func:`csbm` (name, type, default, help, command-line flag)."""
    return list(_OPTIONS)


def csbm_arguments() -> List[Tuple[str, Dict[str, Any]]]:
    """The command-line options as plain data: ``(flag, argparse keyword arguments)`` pairs, each
    defaulting to None (= csbm's default) and stored as ``args.csbm_<name>``."""
    return [(o.flag, dict(dest=f"csbm_{o.name}", type=o.type, default=None, metavar=o.name.split("_")[-1].upper(),
                          help=f"{o.help} (default: {o.default})")) for o in _OPTIONS]


def add_csbm_arguments(parser) -> None:
    """Add :func:`csbm_arguments` with plain ``add_argument`` calls: to a new argument group when
    ``parser`` is an ``ArgumentParser``, else to ``parser`` itself (a group)."""
    import argparse

    group = parser.add_argument_group("csbm options (synthetic graph)") \
        if isinstance(parser, argparse.ArgumentParser) else parser
    for flag, kwargs in csbm_arguments():
        group.add_argument(flag, **kwargs)


def csbm_kwargs_from_args(args) -> Dict[str, Any]:
    """The csbm options given on the command line, as keyword arguments of :func:`csbm`."""
    return {o.name: getattr(args, f"csbm_{o.name}") for o in _OPTIONS
            if getattr(args, f"csbm_{o.name}", None) is not None}


def parse_csbm_spec(spec: str) -> Dict[str, Any]:
    """``"csbm:num_nodes=1000,avg_degree=5"`` -> ``{"num_nodes": 1000, "avg_degree": 5.0}``."""
    types = {o.name: o.type for o in _OPTIONS}
    out: Dict[str, Any] = {}
    body = spec.split(":", 1)[1] if ":" in spec else ""
    for item in filter(None, (s.strip() for s in body.split(","))):
        key, sep, value = item.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or key not in types:
            raise GnnkitError(f"bad csbm option {item!r}; expected name=value with name one of {', '.join(types)}")
        try:
            out[key] = types[key](value.strip())
        except (ValueError, OverflowError):
            raise GnnkitError(f"csbm option {key}: cannot read {value.strip()!r} as {types[key].__name__}") from None
    return out


def _check(num_nodes, num_classes, avg_degree, num_features, homophily, feature_snr, degree_exponent,
           label_noise) -> None:
    problems = [(num_nodes >= 2, f"num_nodes must be >= 2, got {num_nodes}"),
                (1 <= num_classes <= num_nodes, f"num_classes must be in [1, num_nodes], got {num_classes}"),
                (0 <= avg_degree < num_nodes, f"avg_degree must be in [0, num_nodes), got {avg_degree}"),
                (num_features >= 1, f"num_features must be >= 1, got {num_features}"),
                (0 <= homophily <= 1, f"homophily must be in [0, 1], got {homophily}"),
                (num_classes > 1 or homophily == 1 or avg_degree == 0,
                 f"homophily {homophily} < 1 needs num_classes >= 2"),
                (feature_snr >= 0, f"feature_snr must be >= 0, got {feature_snr}"),
                (degree_exponent is None or degree_exponent > 2,
                 f"degree_exponent must be > 2 (or None), got {degree_exponent}"),
                (0 <= label_noise <= 1, f"label_noise must be in [0, 1], got {label_noise}"),
                (math.isfinite(feature_snr), f"feature_snr must be finite, got {feature_snr}")]
    for ok, message in problems:
        if not ok:
            raise GnnkitError(f"csbm: {message}")


def check_size(num_nodes: int, num_features: int, avg_degree: float) -> None:
    """Refuse (GnnkitError naming the figure) a graph whose in-memory generation needs more than
    the machine has: features float32 ``[N, F]``, ~6 int64/float64 vectors per node, and per
    undirected edge two int64 keys plus the int64 ``edge_index`` columns (48 bytes)."""
    need = 4.0 * num_nodes * num_features + 48.0 * num_nodes + 48.0 * num_nodes * avg_degree / 2
    check_allocation(need, f"csbm graph (num_nodes={num_nodes}, num_features={num_features}, "
                           f"avg_degree={avg_degree:g})")


def _weights(cls: Tensor, num_classes: int, avg_degree: float, exponent: Optional[float], gen) -> Optional[Tensor]:
    """Degree weights θ float64 ``[N]`` (class-sorted order), mean 1 per class; None for θ ≡ 1."""
    if exponent is None:
        return None
    n = cls.numel()
    theta = (1 - torch.rand(n, generator=gen, dtype=torch.float64)).pow(-1.0 / (exponent - 1))
    theta.clamp_(max=math.sqrt(max(avg_degree, 1.0) * n) / max(avg_degree, 1.0))
    mean = torch.bincount(cls, weights=theta, minlength=num_classes) / torch.bincount(cls, minlength=num_classes)
    return theta / mean[cls]


class _InverseCdf:
    """Draws ``i`` with probability ``θ_i / Σθ`` by inverting ``cum = cumsum(θ)`` (float64 ``[N]``).

    A guide table splits ``[0, Σθ)`` into ``4N`` equal slices and holds, for each, the first node
    whose cumulative weight reaches the slice's start; a draw ``u`` starts there and steps forward
    while ``cum[i] < u`` (rarely more than one step, as θ_i >= min θ). Three random reads per draw
    instead of a binary search's ``log2 N``: about twice as fast as ``torch.searchsorted``.
    """

    def __init__(self, cum: Tensor):
        self.cum = cum
        self.slices = 4 * cum.numel()
        self.step = float(cum[-1]) / self.slices
        self.guide = torch.searchsorted(cum, torch.arange(self.slices, dtype=torch.float64) * self.step,
                                        out_int32=True)

    def __call__(self, u: Tensor) -> Tensor:
        last = self.cum.numel() - 1
        idx = self.guide[(u / self.step).long().clamp_(0, self.slices - 1)].long().clamp_(max=last)
        while True:
            behind = (self.cum[idx] < u) & (idx < last)
            if not bool(behind.any()):
                return idx
            idx += behind


class _Classes:
    """Classes of the class-sorted ids: class ``c`` holds ``[start_c, start_{c+1})``, ``C`` small tables."""

    def __init__(self, num_nodes: int, num_classes: int, sampler: Optional[_InverseCdf]):
        self.n, self.c = num_nodes, num_classes
        starts = (torch.arange(num_classes + 1) * num_nodes + num_classes - 1) // num_classes
        self.lo, self.hi = starts[:-1], starts[1:]
        if sampler is not None:
            cum = sampler.cum
            self.base = torch.where(self.lo > 0, cum[(self.lo - 1).clamp(min=0)], torch.zeros(num_classes,
                                                                                            dtype=cum.dtype))
            self.volume = cum[self.hi - 1] - self.base

    def of(self, node: Tensor) -> Tensor:
        return node * self.c // self.n

    def draw(self, cls: Tensor, sampler: Optional[_InverseCdf], gen) -> Tensor:
        """One node per entry of ``cls``, inside that class: uniform, or ``∝ θ`` with ``sampler``."""
        lo, hi = self.lo[cls], self.hi[cls]
        r = torch.rand(cls.numel(), generator=gen, dtype=torch.float64)
        if sampler is None:
            node = lo + (r * (hi - lo)).long()
        else:
            node = sampler(self.base[cls] + r * self.volume[cls]).clamp_(min=lo)
        return torch.minimum(node, hi - 1)


def edge_pair_chunks(num_nodes, num_classes, avg_degree, homophily, theta, perm,
                     gen) -> Iterator[Tuple[Tensor, Tensor]]:
    """The ``M = round(N·avg_degree/2)`` undirected draws in chunks of ``_CHUNK``: ``(src, dst)``
    int ``[k]`` each (node ids after ``perm``, self-loops dropped, duplicates not yet removed).
    ``theta`` from ``_weights`` (None: uniform); consumes ``gen`` exactly as :func:`csbm` does."""
    n, m = num_nodes, int(round(num_nodes * avg_degree / 2))
    sampler = None if theta is None else _InverseCdf(torch.cumsum(theta, 0))
    classes = _Classes(n, num_classes, sampler)
    for begin in range(0, m, _CHUNK):
        size = min(_CHUNK, m - begin)
        if sampler is None:
            src = torch.randint(0, n, (size,), generator=gen)
        else:
            src = sampler(torch.rand(size, generator=gen, dtype=torch.float64) * sampler.cum[-1])
        a = classes.of(src)
        other = (a + torch.randint(1, max(num_classes, 2), (size,), generator=gen)) % num_classes
        b = torch.where(torch.rand(size, generator=gen) < homophily, a, other)
        dst = classes.draw(b, sampler, gen)
        src, dst = perm[src], perm[dst]
        keep = src != dst
        yield src[keep], dst[keep]


def _edges(num_nodes, num_classes, avg_degree, homophily, theta, perm, gen) -> Tensor:
    """Symmetric, deduplicated, loop-free ``edge_index`` int64 ``[2, E]`` sorted by ``(row, col)``."""
    n, m = num_nodes, int(round(num_nodes * avg_degree / 2))
    keys = np.empty(2 * m, dtype=np.int64)
    keys_t = torch.from_numpy(keys)  # shares memory: written in place, chunk by chunk
    filled = 0
    for src, dst in edge_pair_chunks(num_nodes, num_classes, avg_degree, homophily, theta, perm, gen):
        k = src.numel()
        keys_t[filled:filled + k].copy_(src).mul_(n).add_(dst)
        keys_t[filled + k:filled + 2 * k].copy_(dst).mul_(n).add_(src)
        filled += 2 * k
    del keys_t
    keys = keys[:filled]
    keys.sort()
    if filled:
        first = np.empty(filled, dtype=bool)
        first[0] = True
        np.not_equal(keys[1:], keys[:-1], out=first[1:])
        keys = keys[first]
    edge_index = torch.empty(2, keys.size, dtype=torch.long)
    np.floor_divide(keys, n, out=edge_index[0].numpy())
    np.remainder(keys, n, out=edge_index[1].numpy())
    return edge_index


def class_means(num_classes: int, num_features: int, snr: float, gen) -> Tensor:
    """``μ`` float32 ``[C, F]``: orthonormal rows scaled by ``snr`` when ``C <= F``, else random
    unit directions scaled by ``snr`` (consumes ``gen`` as :func:`csbm` does)."""
    g = torch.randn(num_features, num_classes, generator=gen)
    if num_classes <= num_features:
        mu = torch.linalg.qr(g).Q.T  # orthonormal rows
    else:
        mu = (g / g.norm(dim=0, keepdim=True)).T
    return (mu * snr).contiguous()


def feature_chunks(y: Tensor, mu: Tensor, gen, out: Optional[Tensor] = None) -> Iterator[Tuple[int, Tensor]]:
    """``(begin, rows)``: ``rows = μ[y[begin:begin+R]] + N(0, I)`` float32 ``[R, F]`` for chunks of
    ``R = _CHUNK // 4`` rows, written into ``out[begin:begin+R]`` when ``out`` is given."""
    step = _CHUNK // 4
    for begin in range(0, y.numel(), step):
        count = min(step, y.numel() - begin)
        rows = out[begin:begin + count] if out is not None else torch.empty(count, mu.size(1))
        torch.randn(rows.shape, generator=gen, out=rows)
        rows.add_(mu[y[begin:begin + count]])
        yield begin, rows


def _features(y: Tensor, num_classes: int, num_features: int, snr: float, gen) -> Tensor:
    """``x = μ[y] + N(0, I)`` float32 ``[N, F]``, rows generated in chunks."""
    mu = class_means(num_classes, num_features, snr, gen)
    x = torch.empty(y.numel(), num_features)
    for _ in feature_chunks(y, mu, gen, out=x):
        pass
    return x


def csbm(num_nodes: int = 10_000, num_classes: int = 10, avg_degree: float = 10.0, num_features: int = 100,
         homophily: float = 0.8, feature_snr: float = 1.0, degree_exponent: Optional[float] = None,
         label_noise: float = 0.0, seed: int = 0, split: str = "random", train_frac: float = 0.6,
         val_frac: float = 0.2, per_class: int = 20, num_val: int = 500, num_test: int = 1000,
         split_seed: Optional[int] = None) -> Data:
    """Generate a CSBM graph (see the module docstring); the split is seeded with ``split_seed``
    (default ``seed``). ``data.name`` records the options, e.g. ``"csbm(num_nodes=1000, ...)"``."""
    _check(num_nodes, num_classes, avg_degree, num_features, homophily, feature_snr, degree_exponent,
           label_noise)
    check_size(num_nodes, num_features, avg_degree)
    if not 0 <= int(seed) < 2 ** 63:
        raise GnnkitError(f"csbm: seed must be in [0, 2^63), got {seed}")
    gen = torch.Generator().manual_seed(int(seed))
    cls = torch.arange(num_nodes) * num_classes // num_nodes  # class of each class-sorted node
    perm = torch.randperm(num_nodes, generator=gen)  # class-sorted id -> node id
    theta = _weights(cls, num_classes, avg_degree, degree_exponent, gen)
    edge_index = _edges(num_nodes, num_classes, avg_degree, homophily, theta, perm.int(), gen)
    y = torch.empty(num_nodes, dtype=torch.long)
    y[perm] = cls
    x = _features(y, num_classes, num_features, feature_snr, gen)
    n_noisy = int(round(label_noise * num_nodes))
    if n_noisy:
        noisy = torch.randperm(num_nodes, generator=gen)[:n_noisy]
        y[noisy] = torch.randint(0, num_classes, (n_noisy,), generator=gen)
    data = Data(x=x, y=y, edge_index=edge_index)
    data.num_classes = int(num_classes)
    data.train_mask, data.val_mask, data.test_mask = make_split(
        y, num_classes, split, per_class=per_class, num_val=num_val, num_test=num_test, train_frac=train_frac,
        val_frac=val_frac, split_seed=seed if split_seed is None else split_seed)
    data.is_symmetric = True  # both directions of every edge: the adjacency needs no transpose
    data.name = (f"csbm(num_nodes={num_nodes}, num_classes={num_classes}, avg_degree={avg_degree}, "
                 f"homophily={homophily}, seed={seed})")
    return data
