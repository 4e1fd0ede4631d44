"""Options -> parts: the one place that turns ``gnnkit train``'s parsed options into a run's pieces.

- :func:`plugin_names` resolves the four axes (a sampler the user did not name is the task's
  ``default_sampler``; no option is rewritten);
- :func:`load_dataset` loads the graph (``gnnkit.data.load`` with the csbm options) or, for a task
  whose input is an event stream, the events;
- :func:`seed_data` draws the run's random split (``--split random:TRAIN,VAL``, seeded per run);
- :func:`build_model` builds the model sized for the data (gnnkit's GNNs, or TGN for event streams),
  with the operator the sampler needs fixed at build time (``--sampler cluster --diag-lambda λ``);
- :func:`build_plugins` builds task, strategy, sampler and escape from their options;
- :func:`settings` / :func:`run_info` say what a run is (results and checkpoints record them).

The bench uses the same public functions (it imports nothing private of ``commands/train.py``).
"""
from __future__ import annotations

import errno
import inspect
import os
from dataclasses import dataclass
from typing import Any, Dict, Optional

from ..errors import GnnkitError
from .options import _axes, parse_split

#: options that do not change what a run computes (left out of ``run_info``, so a resumed run may
#: change them): how long, where, how shown, on what hardware.
NOT_WEIGHT_SHAPING = {"epochs", "patience", "eval_every", "seeds", "seed_start", "out", "log_dir",
                      "checkpoint_dir", "resume", "overwrite", "no_progress", "device", "nproc", "backend",
                      "inference_batch_size", "root", "dataset", "debug", "command", "threads",
                      "num_workers", "prefetch", "config", "checkpoint_every_steps"}


@dataclass(frozen=True)
class PluginNames:
    task: str
    sampler: str
    strategy: str
    escape: Optional[str]


def _task_class(name: str):
    Task = _axes()[0]
    return Task.lookup(name)


def takes_events(task_name: str) -> bool:
    """Whether the task trains on an event stream (else on a graph)."""
    cls = _task_class(task_name)
    return getattr(cls, "input", "events" if cls.name == "temporal-link" else "graph") == "events"


def learns_links(task_name: str) -> bool:
    """Whether the task scores edges from node embeddings (the model's output is an embedding)."""
    return task_name == "link" or getattr(_task_class(task_name), "output", None) == "embeddings"


def plugin_names(args) -> PluginNames:
    """The four axes' names, each checked (an unknown name fails before any loading). Without
    ``--task``: ``link`` for an ``ogbl-*`` dataset, ``graph`` for ``ogbg-*`` or a TU dataset found under
    the root, else ``node``."""
    Task, Sampler, Strategy, Escape = _axes()
    task = Task.lookup(args.task or _default_task(args))
    default = getattr(task, "default_sampler", "temporal" if task.name == "temporal-link" else "full")
    sampler = args.sampler or default
    Sampler.lookup(sampler), Strategy.lookup(args.strategy)
    escape = args.escape if args.escape and args.escape != "none" else None
    if escape:
        Escape.lookup(escape)
    return PluginNames(task.name, sampler, args.strategy, escape)


def _default_task(args) -> str:
    """``link`` for ``ogbl-*``, ``graph`` for ``ogbg-*`` or a TU dataset under the root, else ``node``."""
    if str(args.dataset).startswith("ogbl-"):
        return "link"
    from .graph_runs import graph_kind

    return "graph" if graph_kind(args.dataset, getattr(args, "root", None)) else "node"


def describe(data, names: PluginNames, args, device) -> str:
    """The one-line header printed before training: what is trained on what, where."""
    import torch

    if takes_events(names.task):
        what = f"{data.num_events} events on {data.num_nodes} nodes"
        model = "tgn"
    else:
        size = sizes(data)
        classes = size["num_classes"]
        what = (f"{size['num_nodes']} nodes, {size['num_edges']} edges, {size['num_features']} features"
                + (f", {int(classes)} classes" if classes is not None and not learns_links(names.task) else "")
                + (", memory-mapped store" if is_store_pair(data) else ""))
        model = f"{args.model} (hidden {args.hidden}, {args.layers} layers)"
    split = getattr(data, "split_info", None)
    if getattr(data, "edge_weight", None) is not None:
        what += ", weighted edges"
    if getattr(args, "drop_edge_attr", False):
        what += ", edge_attr dropped"
    if getattr(args, "transform", None):
        what += f", transform {args.transform}"
    return (f"{getattr(data, 'name', None) or args.dataset} ({what}{'; split: ' + split if split else ''}); "
            f"model {model}; sampler {names.sampler}; strategy {names.strategy}; escape {names.escape or 'none'}; "
            f"device {device}; threads {torch.get_num_threads()}{_threads_reason(args)}{_workers_text(args)}")


def _workers_text(args) -> str:
    chosen = getattr(args, "_workers", None)
    return f"; sampling workers {chosen[0]} ({chosen[1]})" if chosen else ""


def _threads_reason(args) -> str:
    chosen = getattr(args, "_threads", None)
    return f" ({chosen[1]})" if chosen and chosen[0] == __import__("torch").get_num_threads() else ""


def csbm_options(args) -> Dict[str, Any]:
    """The csbm options given on the command line (``{}`` when none)."""
    from ..data.csbm import csbm_kwargs_from_args

    return csbm_kwargs_from_args(args)


def check_root(root) -> None:
    """Refuse a ``--root`` that cannot be looked at (a symlink loop, a file)."""
    if root is None:
        return
    try:
        os.stat(root)
    except FileNotFoundError:
        return  # loaders name the files they miss
    except OSError as exc:
        loop = " (a symlink loop)" if exc.errno == errno.ELOOP else ""
        raise GnnkitError(f"--root {root}: {exc.strerror}{loop}") from None
    if not os.path.isdir(root):
        raise GnnkitError(f"--root {root}: not a folder")


def load_graph(dataset: str, args, **load_options):
    """A validated graph (``gnnkit.data.load``) from a name or path and the csbm options in ``args``."""
    options = csbm_options(args)
    is_csbm = dataset == "csbm" or str(dataset).startswith("csbm:")
    if options and not is_csbm:
        from ..data.csbm import csbm_options as all_options

        flags = ", ".join(o.flag for o in all_options() if o.name in options)
        raise GnnkitError(f"{flags}: csbm options, but the dataset is {dataset!r}")
    check_root(args.root)
    from ..data import load

    return load(dataset, root=args.root, **options, **load_options)


def load_dataset(args, names: PluginNames):
    """The run's dataset: a validated graph (:func:`load_graph`) or an event stream."""
    if takes_events(names.task):
        if args.dataset == "csbm" or str(args.dataset).startswith("csbm:") or csbm_options(args):
            raise GnnkitError(f"--task {names.task} needs --dataset PATH to an event file "
                              "(whitespace 'src dst t' lines or a JODIE .csv)")
        if getattr(args, "transform", None):
            raise GnnkitError(f"--transform applies to graphs; --task {names.task} trains on an event stream")
        from ..temporal.events import load_events

        return load_events(args.dataset, sort=args.sort_events)
    from ..partitioned import is_partition
    from ..stores.ondisk import is_store

    if is_partition(args.dataset):  # issue 22: this rank's part only; rows owned elsewhere come from their owners
        from ..partitioned.sampler import open_dataset

        return open_dataset(args.dataset)
    if is_store(args.dataset) and not csbm_options(args):  # memory-mapped: never loaded whole
        if args.split or args.drop_edge_attr or getattr(args, "transform", None):
            raise GnnkitError(f"--split / --drop-edge-attr / --transform apply to in-memory graphs; {args.dataset} "
                              f"is a store (convert it again with the split and features you want)")
        from ..stores.ondisk import open_store

        return open_store(args.dataset)
    if str(args.dataset).startswith("ogbl-"):
        from ..link.ogbl import load_ogbl

        if getattr(args, "transform", None):
            raise GnnkitError(f"--transform does not apply to {args.dataset} (its link split is OGB's own)")
        check_root(args.root)
        data, data.link_split = load_ogbl(args.dataset, args.root if args.root is not None else _default_root())
        return data
    options = {"drop_edge_attr": True} if args.drop_edge_attr else {}
    if getattr(args, "transform", None):
        options["transform"] = args.transform
    return load_graph(args.dataset, args, **options)


def _default_root():
    from ..data import default_root

    return default_root()


def is_store_pair(data) -> bool:
    return isinstance(data, tuple) and len(data) == 2


def sizes(data) -> Dict[str, Any]:
    """``{"num_nodes", "num_edges", "num_features", "num_classes", "label_dim"}`` of a graph or a store pair."""
    if is_store_pair(data):
        graph, features = data
        y = features.shape("y")
        return {"num_nodes": graph.num_nodes, "num_edges": graph.num_edges, "num_features": features.shape("x")[1],
                "num_classes": features.meta.get("num_classes"), "label_dim": y[1] if len(y) == 2 else None}
    return {"num_nodes": int(data.num_nodes), "num_edges": int(data.num_edges), "num_features": int(data.num_features),
            "num_classes": getattr(data, "num_classes", None),
            "label_dim": data.y.shape[1] if getattr(data, "y", None) is not None and data.y.dim() == 2 else None}


def fingerprint(data, args=None) -> Optional[str]:
    """The dataset's content fingerprint (``gnnkit.data.fingerprint``; a store's records its own)."""
    if is_store_pair(data):
        if "fingerprint" in data[1].meta:  # a partition's (issue 22): the whole graph's
            return data[1].meta["fingerprint"]
        from ..stores.ondisk import read_metadata

        return read_metadata(args.dataset)["fingerprint"]
    from ..data.fingerprint import fingerprint as fp

    return fp(data)


def seed_data(args, data, seed: int):
    """The data of one seed's run: a fresh random split when ``--split random:TRAIN,VAL``."""
    fractions = parse_split(args.split)
    if fractions is None:
        return data
    if not hasattr(data, "train_mask"):
        raise GnnkitError("--split applies to in-memory graphs, not to event streams or stores")
    from ..data.split import random_split

    data = data.clone()
    data.train_mask, data.val_mask, data.test_mask = random_split(data.y, *fractions, seed=seed)
    return data


def check_model_size(args, in_dim: int, out_dim: int, num_nodes: int, whole_graph: bool = True) -> None:
    """Refuse a model that cannot fit in memory before building it: 16 bytes per parameter (weights,
    gradients, two optimizer moments) plus, when training on the whole graph at once
    (``whole_graph``: the full sampler), the ``[N, hidden]`` float32 activations of each layer. A
    mini-batch sampler's activations are the batch's, and a graph too big for whole-graph inference
    is evaluated on sampled neighborhoods (:func:`gnnkit.strategies.base.use_sampled_inference`)."""
    from ..data import check_allocation

    h, layers = args.hidden, args.layers
    params = in_dim * h + h * h * max(layers - 2, 0) + h * out_dim
    acts = 4.0 * num_nodes * h * layers if whole_graph else 0.0
    check_allocation(16.0 * params + acts, f"the model (--hidden {h}, --layers {layers}"
                                           f"{', full-batch' if whole_graph else ''})")


def _accepts(fn, name: str) -> bool:
    params = inspect.signature(fn).parameters
    return name in params or any(p.kind is p.VAR_KEYWORD for p in params.values())


def build_model(args, data, names: PluginNames, strategy):
    """The model for ``data``: TGN for an event stream, else ``--model`` sized by the data."""
    if takes_events(names.task):
        from ..temporal.model import TGN

        node_dim = 0 if data.x is None else int(data.x.size(1))
        return TGN(data.msg_dim, node_dim=node_dim, memory_dim=args.memory_dim, time_dim=args.time_dim,
                   embedding_dim=args.embedding_dim, heads=args.attention_heads,
                   dropout=0.1 if args.dropout is None else args.dropout, aggregator=args.aggregator,
                   message=args.message_function, embedding=args.temporal_embedding)
    from gnnkit.models import MODELS
    from gnnkit.models import build_model as build

    links, size = learns_links(names.task), sizes(data)
    if links:  # the encoder's output is the node embedding the decoder scores
        out = args.hidden
    else:
        out = size["label_dim"] or int(size["num_classes"])
        out = strategy.model_out_dim(int(size["num_classes"]), args.hidden) or out  # ForwardGNN: hidden
    check_model_size(args, size["num_features"], out, size["num_nodes"], whole_graph=names.sampler == "full")
    dropout = (0.0 if links else 0.5) if args.dropout is None else args.dropout
    from ..plugins import MODEL_FACTORIES, build_plugin_model

    if args.model in MODEL_FACTORIES:  # an installed package's model (entry point)
        from gnnkit.models import as_model

        return as_model(build_plugin_model(args.model, size["num_features"], out, hidden=args.hidden,
                                           num_layers=args.layers, dropout=dropout))
    kwargs = dict(hidden=args.hidden, num_layers=args.layers, dropout=dropout, norm=args.norm, residual=args.residual)
    diag = getattr(args, "diag_lambda", None)
    if names.sampler == "cluster" and diag is not None and _accepts(MODELS[args.model].__init__, "diag_lambda"):
        kwargs.update(adj_norm="diag", diag_lambda=diag)
    model = build(args.model, size["num_features"], out, **kwargs)
    if links and args.decoder != "dot":
        from ..link import LinkModel
        from ..link.decoders import make_decoder

        model = LinkModel(model, make_decoder(args.decoder, out, args.hidden))
    return model


def _from_args(axis, name: str, args):
    """``axis.lookup(name).from_args(args)``; an installed plug-in's failure is one line naming its
    distribution (gnnkit's own plug-ins raise as they do)."""
    from ..plugins import ORIGINS

    cls, origin = axis.lookup(name), ORIGINS.get((axis.axis, name))
    if origin is None:
        return cls.from_args(args)
    try:
        return cls.from_args(args)
    except (GnnkitError, ValueError):
        raise
    except Exception as exc:  # noqa: BLE001 - a third-party plug-in's failure, reported on one line
        raise GnnkitError(f"{axis.axis} {name!r} of {origin}: from_args failed ({type(exc).__name__}: {exc})") from None


def build_task(args, names: PluginNames):
    return _from_args(_axes()[0], names.task, args)


def build_strategy(args, names: PluginNames):
    return _from_args(_axes()[2], names.strategy, args)


def build_sampler(args, names: PluginNames):
    return _from_args(_axes()[1], names.sampler, args)


def build_escape(args, names: PluginNames):
    return _from_args(_axes()[3], names.escape, args) if names.escape else None


def settings(args, names: PluginNames) -> Dict[str, Any]:
    """Every option of the run (plug-in names resolved), for ``results.json``."""
    out = {k: v for k, v in sorted(vars(args).items()) if not k.startswith("_") and k != "debug"}
    out.update(task=names.task, sampler=names.sampler, strategy=names.strategy, escape=names.escape)
    return out


def run_info(args, names: PluginNames, data) -> Dict[str, Any]:
    """What a checkpoint or a result belongs to: ``{"dataset", "fingerprint", "settings"}`` where
    settings are the options that shape the weights (not epochs, paths or the device)."""
    from .options import PLUGIN_OPTIONS

    active = {("task", names.task), ("sampler", names.sampler), ("strategy", names.strategy),
              ("escape", names.escape)}
    kept = {k: v for k, v in settings(args, names).items()
            if k not in NOT_WEIGHT_SHAPING and not k.startswith("csbm_")
            and PLUGIN_OPTIONS.get(k, ("task", names.task)) in active}
    return {"dataset": str(args.dataset), "fingerprint": fingerprint(data, args), "settings": kept}
