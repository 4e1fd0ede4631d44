"""One entry point for every graph source: :func:`load`, plus :func:`default_root` and
:func:`known_datasets`.

``load(name_or_path, root=None, **options)`` dispatches on its first argument:

==================================  ==========================================================
``"Cora"``, ``"CiteSeer"``,         Planetoid under ``root`` (:mod:`gnnkit.data.planetoid`),
``"PubMed"`` (any case)             option ``split``
``"ogbn-arxiv"``, ...               OGB under ``root`` (:mod:`gnnkit.data.ogb`), ``undirected``
``"csbm"``, ``"csbm:k=v,..."``      generated (:mod:`gnnkit.data.csbm`), csbm's options
a path ending in ``.npz``           :mod:`gnnkit.data.npz`, ``undirected`` and split options
a ``networkx`` graph                :mod:`gnnkit.data.nx_graph`, ``x_key``/``y_key``, split options
a PyG ``Data``                      :mod:`gnnkit.data.pyg` (converted and checked), split options
a store folder                      :mod:`gnnkit.stores.ondisk` (``gnnkit-store.json`` inside)
==================================  ==========================================================

``transform=`` (a PyG transform, any callable ``Data -> Data``, a name such as
``"NormalizeFeatures"``, comma-separated names, or a list of them; :mod:`gnnkit.data.transforms`)
runs on the loaded graph before validation, in order (an unknown name fails before loading).
Every result is validated (:func:`gnnkit.data.validate`); ``normalize=True`` also removes
self-loops and duplicate edges; ``drop_edge_attr=True`` removes ``edge_attr`` (gnnkit's own models
refuse a graph with edge features rather than ignore them; ``edge_weight`` is always kept and used). An unknown name or option raises
:class:`~gnnkit.errors.GraphValidationError` listing the known ones.
"""
from __future__ import annotations

import inspect
import os
from pathlib import Path
from typing import Any, Callable, List, Optional

from torch_geometric.data import Data

from gnnkit.errors import GnnkitError, GraphValidationError

from . import csbm as csbm_mod
from . import npz, ogb, planetoid
from .nx_graph import load_networkx
from .pyg import from_pyg
from .validate import validate


def default_root() -> Path:
    """``$GNNKIT_DATA``; else the checkout's ``data/`` folder when gnnkit runs from a checkout;
    else ``~/.gnnkit/data``."""
    env = os.environ.get("GNNKIT_DATA")
    if env:
        return Path(env).expanduser()
    import gnnkit

    checkout = Path(gnnkit.__file__).resolve().parents[1]
    if (checkout / "data").is_dir() and (checkout / "pyproject.toml").is_file():
        return checkout / "data"
    return Path.home() / ".gnnkit" / "data"


def known_datasets() -> List[str]:
    """The dataset names :func:`load` accepts (besides ``.npz`` paths and networkx graphs)."""
    return [*planetoid.NAMES.values(), *ogb.supported_names(), "csbm"]


def is_present(name: str, root=None) -> bool:
    """Whether ``name`` can be loaded from ``root`` without a download (csbm: always)."""
    root = default_root() if root is None else Path(root)
    if name.lower() in planetoid.NAMES:
        return not planetoid.missing_files(name, root)
    if name.startswith("ogbn-"):
        return not ogb.missing_files(name, root)
    return name == "csbm"


def _call(fn: Callable, source: str, *args, **options) -> Data:
    params = inspect.signature(fn).parameters
    if not any(p.kind is p.VAR_KEYWORD for p in params.values()):
        allowed = list(params)[len(args):]
        unknown = sorted(set(options) - set(allowed))
        if unknown:
            raise GraphValidationError(f"unknown option(s) {', '.join(unknown)} for {source}; "
                                       f"known: {', '.join(allowed) or 'none'}")
    try:
        return fn(*args, **options)
    except TypeError as exc:  # an option the source's helper rejects (e.g. a split option)
        raise GraphValidationError(f"bad option for {source}: {exc}") from None


def _store(text: str) -> Optional[Data]:
    """An on-disk store folder (``gnnkit-store.json``) as a Data, or None when ``text`` is not one."""
    try:
        from gnnkit.stores.ondisk import is_store, to_data
    except ImportError:  # the on-disk backend is optional
        return None
    return to_data(text) if os.path.isdir(text) and is_store(text) else None


def _dispatch(name_or_path: Any, root: Optional[Path], options: dict) -> Data:
    import networkx as nx

    if isinstance(name_or_path, Data):
        return _call(from_pyg, "a PyG Data", name_or_path, **options)
    if isinstance(name_or_path, (nx.Graph, nx.DiGraph)):
        return _call(load_networkx, "a networkx graph", name_or_path, **options)
    if not isinstance(name_or_path, (str, os.PathLike)):
        raise GraphValidationError(f"expected a dataset name, a .npz path, a store folder, a PyG Data or a "
                                   f"networkx graph, got {type(name_or_path).__name__}")
    text = os.fspath(name_or_path)
    stored = _store(text)
    if stored is not None:
        return stored
    if text.endswith(".npz") or Path(text).is_file():
        if not text.endswith(".npz"):
            raise GraphValidationError(f"{text}: unsupported file type; gnnkit reads .npz graphs")
        return _call(npz.load_npz, "npz", text, **options)
    if text.lower() in planetoid.NAMES:
        return _call(planetoid.load_planetoid, text, text, root, **options)
    if text.startswith("ogbn-"):
        return _call(ogb.load_ogb, text, text, root, **options)
    if text == "csbm" or text.startswith("csbm:"):
        return _call(csbm_mod.csbm, "csbm", **{**csbm_mod.parse_csbm_spec(text), **options})
    raise GraphValidationError(f"unknown dataset {text!r}; known: {', '.join(known_datasets())}, "
                               f"a path to a .npz file, or a networkx graph")


def load(name_or_path: Any, root=None, *, normalize: bool = False, drop_edge_attr: bool = False,
         transform: Any = None, **options) -> Data:
    """Load a graph (see the module docstring) and validate it.

    Returns a ``Data`` with ``x`` float32 ``[N, F]``, ``y`` int64 ``[N]`` (``-1`` = unlabeled),
    ``edge_index`` int64 ``[2, E]``, bool ``train_mask``/``val_mask``/``test_mask`` ``[N]``,
    ``num_classes`` (int) and ``name`` (str); OGB graphs also carry ``evaluator_name``; with
    ``transform`` it is the transforms' output.
    """
    from . import transforms

    steps = transforms.resolve(transform)  # an unknown name fails before any loading
    root = default_root() if root is None else Path(root).expanduser()
    data = _dispatch(name_or_path, root, options)
    if not isinstance(data, Data):
        raise GnnkitError(f"loader returned {type(data).__name__}, not a torch_geometric Data")
    if drop_edge_attr and getattr(data, "edge_attr", None) is not None:
        del data.edge_attr
    if steps:
        data = transforms.apply(data, [fn for _, fn in steps])
    return validate(data, fix=normalize)
