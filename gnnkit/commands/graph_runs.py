"""``gnnkit train`` and ``gnnkit info`` on datasets of many graphs (issue 24): TU datasets and ``ogbg-*``.

A run is a graph run when ``--task graph`` is given, the dataset is an ``ogbg-*`` name, or it is a
TU dataset found under the root (``<root>/<NAME>/raw/NAME_A.txt`` and the other required files;
:func:`gnnkit.graphs.tu.missing_files`). The model is GIN (:class:`gnnkit.models.gin.GIN`) or, for
``ogbg-mol*``, MolGIN with OGB's atom and bond encoders, sized by ``--hidden/--layers/--dropout``;
the task and sampler are ``graph``.

Protocols:

* TU datasets: ``--folds K`` (default 10) stratified folds seeded by ``--seed-start``
  (:func:`gnnkit.graphs.stratified_kfold`); fold ``f`` trains with seed ``seed_start + f``.
  ``--cv-protocol errica`` (default): a stratified 10% inner validation split of the training fold
  selects each fold's epoch; ``--cv-protocol gin``: the test fold is the validation curve and the
  epoch of the best mean curve is chosen for all folds. Curves are summarized by
  :func:`gnnkit.graphs.summarize_folds`; ``results.json`` holds ``protocol``, ``folds``,
  ``test_mean`` ± ``test_std`` over folds, each fold's figure and selected epoch.
* ``ogbg-*``: OGB's official split, one run per seed (``--seeds``), mean ± std over seeds, the
  dataset's own metric (``protocol: "ogb"``).
"""
from __future__ import annotations

import os
import time
from typing import Optional

from ..errors import GnnkitError

PROTOCOLS = ("errica", "gin")
DEFAULT_FOLDS = 10
INNER_VAL_FRACTION = 0.1


def _root(root):
    if root is not None:
        return root
    from ..data import default_root

    return default_root()


def graph_kind(dataset, root) -> Optional[str]:
    """``"ogbg"`` for an ``ogbg-*`` name, ``"tu"`` for a TU dataset found under ``root``, else None."""
    name = str(dataset)
    if name.startswith("ogbg-"):
        return "ogbg"
    if not name or "/" in name or os.sep in name or name.startswith(".") or name.endswith(".npz"):
        return None
    from ..graphs.tu import missing_files

    try:
        return "tu" if not missing_files(name, _root(root)) else None
    except (OSError, ValueError):  # a name no file system takes (a NUL byte, too long) is no TU dataset
        return None


def load_collection(dataset, root):
    """The :class:`~gnnkit.graphs.GraphCollection` of a TU or ``ogbg-*`` dataset."""
    from .factory import check_root

    check_root(root)
    name = str(dataset)
    if name.startswith("ogbg-"):
        from ..graphs import load_ogbg

        return load_ogbg(name, _root(root))
    from ..graphs import load_tu

    return load_tu(name, _root(root))


def check_options(args) -> None:
    """The graph run's own option values, before loading."""
    protocol = getattr(args, "cv_protocol", None)
    if protocol is not None and protocol not in PROTOCOLS:
        raise GnnkitError(f"--cv-protocol {protocol!r} is not a graph protocol; use {' or '.join(PROTOCOLS)}")
    if str(args.dataset).startswith("ogbg-") and (args.folds is not None or protocol is not None):
        raise GnnkitError(f"{args.dataset} has OGB's official split; --folds and --cv-protocol apply to TU datasets")
    if args.resume:
        raise GnnkitError("graph runs do not resume; run again with --overwrite")
    for flag, value in (("--checkpoint-dir", args.checkpoint_dir), ("--checkpoint-every-steps",
                        getattr(args, "checkpoint_every_steps", None)), ("--scan-group", getattr(args, "scan_group", 0))):
        if value:  # never accepted and then silently not done
            raise GnnkitError(f"{flag} does not apply to graph runs (each fold or seed trains from the start, in "
                              f"memory); leave out {flag}")
    if args.nproc and args.nproc > 1:
        raise GnnkitError("graph runs train in one process; leave out --nproc")
    if args.split:
        raise GnnkitError("--split applies to the node task; graph runs use --folds (TU) or OGB's split (ogbg-*)")
    if getattr(args, "transform", None):
        raise GnnkitError("--transform applies to the node task's graph; graph runs read their graphs as stored")
    for flag, value, allowed in (("--sampler", args.sampler, (None, "full", "graph")),
                                 ("--strategy", getattr(args, "strategy", None), (None, "backprop")),
                                 ("--escape", getattr(args, "escape", None), (None, "none"))):
        if value not in allowed:  # never train something else than asked without a word
            raise GnnkitError(f"{flag} {value} does not apply to graph runs (whole graphs in block-diagonal "
                              f"batches, trained by backprop); leave out {flag}")


def _build_model(args, coll):
    from gnnkit.models.gin import GIN

    dropout = 0.5 if args.dropout is None else args.dropout
    out = coll.num_classes if coll.task == "multiclass" else coll.num_tasks
    if coll.evaluator_name and str(coll.evaluator_name).startswith("ogbg-mol"):
        from gnnkit.models.mol import MolGIN

        return "mol-gin", MolGIN(out, args.hidden, num_layers=args.layers, dropout=dropout)
    return "gin", GIN(coll.num_features, args.hidden, out, num_layers=args.layers, dropout=dropout)


def _fit(args, coll, seed: int):
    """Train GIN on ``coll`` (a collection with a split) with ``seed``: ``(model_name, task, result)``."""
    from ..graphs import GraphClassification, GraphSampler
    from ..trainer import Trainer, seed_everything

    seed_everything(seed)
    name, model = _build_model(args, coll)
    kwargs = dict(max_epochs=args.epochs, lr=args.lr, weight_decay=args.weight_decay, optimizer=args.optimizer,
                  device=args.device, seed=seed, patience=args.patience, eval_every=args.eval_every,
                  metric=args.metric, progress=not args.no_progress, precision=args.precision,
                  log_dir=os.path.join(args.log_dir, f"seed-{seed}") if args.log_dir else None,
                  num_workers=args._workers[0], prefetch=args.prefetch, metrics=tuple(args.metrics or ()))
    if args.lr_step:
        from ..callbacks import StepLR

        kwargs["callbacks"] = [StepLR(args.lr_step, args.lr_gamma)]
    task = GraphClassification()
    trainer = Trainer(task=task, sampler=GraphSampler(batch_size=args.batch_size or 128), **kwargs)
    return name, task, trainer.fit(model, coll)


def _curve(history, key: str):
    return [float(h[key]) for h in history if key in h]


def _header(args, names, coll, model_name, metric, protocol):
    from .factory import settings

    return {"dataset": str(args.dataset), "model": model_name, "task": "graph", "sampler": "graph",
            "strategy": names.strategy, "metric": metric, "protocol": protocol,
            "graphs": coll.num_graphs, "settings": settings(args, names), "argv": getattr(args, "_argv", None)}


def _write(args, results: dict) -> str:
    from ..fileio import atomic_write_json

    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, "results.json")
    atomic_write_json(path, results)
    return path


def run(args, names) -> int:
    """``gnnkit train`` on a graph dataset (options already checked, outputs checked)."""
    check_options(args)
    import torch

    threads, why = getattr(args, "_threads", None) or (torch.get_num_threads(), "torch's default")
    coll = load_collection(args.dataset, args.root)
    info = coll.describe()
    print(f"training: {coll.name} ({info['graphs']} graphs, {info['avg_nodes']:.1f} nodes and "
          f"{info['avg_edges']:.1f} edges on average, task {coll.task}); hidden {args.hidden}, "
          f"{args.layers} layers; threads {threads} ({why})", flush=True)
    if coll.meta.get("split") is not None:
        return _run_official(args, names, coll)
    return _run_folds(args, names, coll)


def _run_official(args, names, coll) -> int:
    runs, header = [], None
    for seed in range(args.seed_start, args.seed_start + args.seeds):
        model_name, task, result = _fit(args, coll, seed)
        runs.append({"seed": seed, "val": result["val"], "test": result["test"], "epochs": result["epochs"],
                     "best_epoch": result["best_epoch"], "seconds": round(result["seconds"], 3)})
        print(f"seed {seed}: val {result['val']:.4f}  test {result['test']:.4f}", flush=True)
        header = _header(args, names, coll, model_name, task.metric, "ogb")
    results = {**header, **_mean_std(runs), "runs": runs, "complete": True}
    path = _write(args, results)
    print(f"{header['metric']} (OGB split): test {results['test_mean']:.4f} ± {results['test_std']:.4f} "
          f"({len(runs)} seeds) -> {path}")
    return 0


def _mean_std(runs) -> dict:
    import torch

    out = {}
    for key in ("val", "test"):
        t = torch.tensor([r[key] for r in runs], dtype=torch.float64)
        out[f"{key}_mean"], out[f"{key}_std"] = float(t.mean()), float(t.std(unbiased=False))
    return out


def _run_folds(args, names, coll) -> int:
    import torch

    from ..graphs import inner_split, stratified_kfold, summarize_folds

    protocol, k = args.cv_protocol or "errica", args.folds or DEFAULT_FOLDS
    if args.seeds != 1:
        raise GnnkitError(f"cross validation runs one seed per fold (folds seeded by --seed-start); "
                          f"got --seeds {args.seeds}")
    base = args.seed_start
    folds = stratified_kfold(coll.y, k, seed=base)
    vals, tests, runs, model_name, metric = [], [], [], None, None
    t0 = time.perf_counter()
    for f, (train, test) in enumerate(folds):
        seed = base + f
        if protocol == "errica":
            train, val = inner_split(coll.y, train, INNER_VAL_FRACTION, seed=seed)
        else:
            val = test  # Xu et al.: the test fold's curve, the epoch chosen on the mean over folds
        model_name, task, result = _fit(args, coll.with_split(train, val, test), seed)
        metric = task.metric
        v, t = _curve(result["history"], f"val_{metric}"), _curve(result["history"], f"test_{metric}")
        vals.append(v)
        tests.append(t)
        runs.append({"fold": f, "seed": seed, "train_graphs": int(train.numel()), "val_graphs": int(val.numel()),
                     "test_graphs": int(test.numel()), "epochs": result["epochs"],
                     "seconds": round(result["seconds"], 3)})
        print(f"fold {f}: best val {max(v):.4f}  last test {t[-1]:.4f}  {result['seconds']:.1f}s", flush=True)
    e = min(len(c) for c in tests)  # equal lengths unless --patience stopped a fold early
    summary = summarize_folds(torch.tensor([c[:e] for c in tests]), torch.tensor([c[:e] for c in vals]), protocol)
    for r, test_fig, epoch, v in zip(runs, summary["per_fold"], summary["epochs"], vals):
        r.update(test=test_fig, val=v[epoch], selected_epoch=epoch)
    results = {**_header(args, names, coll, model_name, metric, protocol), "folds": k, "fold_seed": base,
               "inner_val_fraction": INNER_VAL_FRACTION if protocol == "errica" else None,
               "test_mean": summary["mean"], "test_std": summary["std"], **{
                   f"val_{s}": m for s, m in zip(("mean", "std"), _pop_stats([r["val"] for r in runs]))},
               "per_fold": summary["per_fold"], "selected_epochs": summary["epochs"], "runs": runs,
               "seconds": round(time.perf_counter() - t0, 3), "complete": True}
    path = _write(args, results)
    print(f"{metric} ({k}-fold, protocol {protocol}): test {summary['mean']:.4f} ± {summary['std']:.4f} -> {path}")
    return 0


def _pop_stats(values):
    import torch

    t = torch.tensor(values, dtype=torch.float64)
    return float(t.mean()), float(t.std(unbiased=False))


# ---------------------------------------------------------------------------------------- info
def describe_graphs(dataset, root) -> dict:
    """``gnnkit info`` of a TU or ``ogbg-*`` dataset: GraphCollection.describe (plus the split sizes)."""
    coll = load_collection(dataset, root)
    info = coll.describe()
    split = coll.meta.get("split")
    if split is not None:
        info["split"] = {k: int(v.numel()) for k, v in split.items()}
    return info


def describe_links(dataset, root) -> dict:
    """``gnnkit info`` of an ``ogbl-*`` dataset: nodes, edges of the training graph, split sizes, and
    the metric OGB's evaluator scores it with."""
    from ..link.metrics import ogbl_metric
    from ..link.ogbl import load_ogbl
    from .factory import check_root

    check_root(root)
    data, split = load_ogbl(str(dataset), _root(root))
    sizes = {}
    for part in ("train", "val", "test"):
        sizes[f"{part}_pos"] = int(split.positives(part).shape[-1])
        if part != "train":
            neg = split.negatives(part)
            sizes[f"{part}_neg"] = int(neg.numel() if neg.dim() == 2 and neg.shape[0] != 2 else neg.shape[-1])
    return {"name": str(dataset), "nodes": int(data.num_nodes), "edges": int(data.edge_index.shape[1]),
            "undirected_edges": int(data.edge_index.shape[1]) // 2,
            "features": 0 if data.x is None else int(data.x.shape[1]), "split": sizes,
            "metric": ogbl_metric(str(dataset))}


def format_info(info: dict) -> str:
    lines = []
    for key, value in info.items():
        if isinstance(value, dict):
            value = ", ".join(f"{k} {v}" for k, v in value.items())
        elif isinstance(value, float):
            value = f"{value:.2f}"
        lines.append(f"{key}: {value}")
    return "\n".join(lines)


def info_kind(dataset, root) -> Optional[str]:
    """``"graphs"``, ``"links"`` or None (a single graph for :mod:`gnnkit.data.info`)."""
    if str(dataset).startswith("ogbl-"):
        return "links"
    return "graphs" if graph_kind(dataset, root) else None


__all__ = ["graph_kind", "load_collection", "run", "describe_graphs", "describe_links", "format_info",
           "info_kind"]
