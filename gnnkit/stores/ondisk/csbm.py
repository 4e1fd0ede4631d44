"""csbm written straight into a store, chunk by chunk: :func:`write_csbm`.

The same graph as :func:`gnnkit.data.csbm.csbm` with the same options (the same draws from the
same generator, in the same order), without ever holding its edges or features: edge pairs are
drawn in csbm's chunks (csbm's own generators) twice (the generator's state is saved before the first draw and restored
for the second, see :func:`~gnnkit.stores.ondisk.csr.write_streamed_csr`), and feature rows are
drawn, cast and written in csbm's row chunks. csbm's rows come out sorted and distinct (its
``edge_index`` is sorted by ``(row, col)`` and deduplicated), so the store's CSR equals the
in-memory store's of ``csbm(...)`` bit for bit, and so do ``x`` (in float32), ``y`` and the masks.

Memory: while the edges are drawn, the labels (int64), the permutation (int32), the row offsets
and cursors (int64): 28 bytes per node (+ 32 with ``degree_exponent``: the degree weights, their
running sum and the sampler's guide table), plus one chunk; never ``E`` or ``N x F``.

``labeled_nodes=K`` (not a csbm option) keeps the labels of ``K`` nodes drawn uniformly (a
separately seeded generator) and sets the others to ``-1`` before the split, which then splits
the ``K`` labeled nodes: ogbn-papers100M's shape, 1.5M labeled nodes out of 111M.
"""
from __future__ import annotations

import inspect
import os
import shutil
from typing import Any, Dict, Iterator, Optional, Tuple

import torch
from torch import Tensor

from gnnkit.data import csbm as C
from gnnkit.data.split import make_split
from gnnkit.errors import GnnkitError

from .convert import feature_dtype_of, progress_bars
from .csr import INT32_MAX, write_streamed_csr
from .format import itemsize
from .writer import StoreWriter


def csbm_defaults() -> Dict[str, Any]:
    """csbm's keyword arguments with their defaults (read off :func:`gnnkit.data.csbm.csbm`)."""
    return {k: p.default for k, p in inspect.signature(C.csbm).parameters.items()}


def _edge_pairs(o: Dict[str, Any], theta: Optional[Tensor], perm: Tensor, gen) -> Iterator[Tuple[Tensor, Tensor]]:
    """csbm's edge draws (:func:`gnnkit.data.csbm.edge_pair_chunks`), chunk by chunk, as
    ``(row, col)`` int64 with both directions of every loop-free pair."""
    for src, dst in C.edge_pair_chunks(o["num_nodes"], o["num_classes"], o["avg_degree"], o["homophily"], theta,
                                       perm, gen):
        src, dst = src.long(), dst.long()
        yield torch.cat([src, dst]), torch.cat([dst, src])


def _write_features(writer: StoreWriter, o, y: Tensor, gen, dtype: torch.dtype, tick) -> None:
    """``x = μ[y] + N(0, I)`` drawn in csbm's row chunks (:func:`gnnkit.data.csbm.feature_chunks`),
    cast to ``dtype`` and appended."""
    mu = C.class_means(o["num_classes"], o["num_features"], o["feature_snr"], gen)
    out = writer.array("x", dtype, (o["num_features"],))
    for _, rows in C.feature_chunks(y, mu, gen):
        out.append(rows)
        tick(rows.shape[0])


def _labels(o: Dict[str, Any], y: Tensor, gen, labeled_nodes: Optional[int]) -> Tensor:
    """csbm's label noise, then (``labeled_nodes``) all but that many labels set to -1."""
    n = y.numel()
    n_noisy = int(round(o["label_noise"] * n))
    if n_noisy:
        noisy = torch.randperm(n, generator=gen)[:n_noisy]
        y[noisy] = torch.randint(0, o["num_classes"], (n_noisy,), generator=gen)
    if labeled_nodes is not None:
        if not 0 < labeled_nodes <= n:
            raise GnnkitError(f"labeled_nodes must be in [1, num_nodes={n}], got {labeled_nodes}")
        lab_gen = torch.Generator().manual_seed(int(o["seed"]) * 1_000_003 + 0x1AB)
        y[torch.randperm(n, generator=lab_gen)[labeled_nodes:]] = -1
    return y


def _options(options: Dict[str, Any]) -> Dict[str, Any]:
    defaults = csbm_defaults()
    unknown = sorted(set(options) - set(defaults))
    if unknown:
        raise GnnkitError(f"unknown csbm option(s) {', '.join(unknown)}; known: {', '.join(defaults)}")
    o = {**defaults, **options}
    C._check(o["num_nodes"], o["num_classes"], o["avg_degree"], o["num_features"], o["homophily"],
             o["feature_snr"], o["degree_exponent"], o["label_noise"])
    if not 0 <= int(o["seed"]) < 2 ** 63:
        raise GnnkitError(f"csbm: seed must be in [0, 2^63), got {o['seed']}")
    return o


def check_disk(path, o: Dict[str, Any], dtype: torch.dtype) -> None:
    """Refuse (before writing) when the folder of ``path`` has less free space than the store needs
    at its peak: the CSR twice (the scratch copy of pass 2 and the final one, int32 or int64 per
    entry, ``N·avg_degree`` entries), ``indptr``, ``x`` and the ``[N]`` label and mask arrays."""
    n, entries = o["num_nodes"], o["num_nodes"] * o["avg_degree"]
    idx = 4 if n <= INT32_MAX else 8
    need = 2 * idx * entries + 8 * (n + 1) + n * o["num_features"] * itemsize(dtype) + 11 * n
    parent = os.path.dirname(os.path.abspath(os.fspath(path)))
    free = shutil.disk_usage(parent if os.path.isdir(parent) else ".").free
    if need > free:
        raise GnnkitError(f"csbm store of {n} nodes needs about {need / 2**30:.1f} GiB of disk at its peak; "
                          f"{parent} has {free / 2**30:.1f} GiB free")


def write_csbm(path, *, feature_dtype: str = "float32", overwrite: bool = False, progress: bool = False,
               labeled_nodes: Optional[int] = None, **options) -> str:
    """Write ``csbm(**options)`` as a store at ``path`` without holding its edges or features (see
    the module docstring); returns the store's path."""
    o, fdt = _options(options), feature_dtype_of(feature_dtype)
    check_disk(path, o, fdt)
    n, nc = o["num_nodes"], o["num_classes"]
    stage = progress_bars(progress)
    gen = torch.Generator().manual_seed(int(o["seed"]))
    cls = torch.arange(n) * nc // n
    perm = torch.randperm(n, generator=gen)
    theta = C._weights(cls, nc, o["avg_degree"], o["degree_exponent"], gen)
    before_edges = gen.get_state()
    y = torch.empty(n, dtype=torch.long)  # csbm sets it after the edges; it draws nothing
    y[perm] = cls
    perm32 = perm.int()
    del cls, perm

    def chunks():
        gen.set_state(before_edges)
        return _edge_pairs(o, theta, perm32, gen)

    with StoreWriter(path, overwrite=overwrite) as writer:
        e = write_streamed_csr(writer, chunks, n, stage)
        del theta, perm32
        _write_features(writer, o, y, gen, fdt, stage("features", n))
        y = _labels(o, y, gen, labeled_nodes)
        masks = make_split(y, nc, o["split"], per_class=o["per_class"], num_val=o["num_val"], num_test=o["num_test"],
                           train_frac=o["train_frac"], val_frac=o["val_frac"],
                           split_seed=o["seed"] if o["split_seed"] is None else o["split_seed"])
        for name, t in zip(("train_mask", "val_mask", "test_mask"), masks):
            writer.write(name, t)
        writer.write("y", y)
        stage(None, 0)
        name = (f"csbm(num_nodes={n}, num_classes={nc}, avg_degree={o['avg_degree']}, "
                f"homophily={o['homophily']}, seed={o['seed']})")
        facts = {"num_classes": nc, "name": name, "is_symmetric": True}  # csbm()'s attributes
        return writer.commit(name=name, num_nodes=n, num_edges=e, is_symmetric=True, meta=facts,
                             attributes=facts)
