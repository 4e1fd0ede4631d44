"""Model files: a trained model that a service can keep, reload and use (issue 25).

One file, written atomically (:func:`gnnkit.fileio.atomic_torch_save`), read back with
``torch.load(weights_only=True)``: plain dicts, lists, strings, numbers and tensors only::

    {"format": "gnnkit-model/1",
     "model": {"family", "in_dim", "hidden", "out_dim", "num_layers", "dropout", "norm", "residual",
               "adj_norm", "diag_lambda"},                      # what rebuilds the module
     "weights": state_dict, "signature": {name: shape},
     "dataset": {"name", "fingerprint", "num_features", "num_classes", "feature_dtype", "num_nodes"},
     "normalization": {"adj_norm", "diag_lambda", "features"},   # operator and feature transform
     "training": {"seed", "split", "metric", "figures", "settings"}, "versions": {...},
     "checksum": blake2b of the weights (every byte) and of the other fields}

:func:`load_model` checks the format tag, every field's type, the checksum (a file changed after
it was written is refused) and the weights' names and shapes against the rebuilt model, raising a
:class:`~gnnkit.errors.GnnkitError` that names the problem. :func:`check_schema` refuses a graph
whose features the model cannot read (predictions on a new graph of the same schema are fine: the
fingerprint may differ).

In Python::

    save_model("model.pt", model, data, dataset="Cora", seed=0)   # after trainer.fit(model, data)
    model, record = load_model("model.pt")                        # eval mode, on CPU
    gnnkit train writes OUT/model-seed{S}.pt (gnnkit.commands.model_io.save_trained_model).
"""
from __future__ import annotations

import json
import os
from typing import Any, Dict, Optional

import torch

from .errors import GnnkitError
from .fileio import atomic_torch_save

FORMAT = "gnnkit-model/1"
_CONFIG = {"family": str, "in_dim": int, "hidden": int, "out_dim": int, "num_layers": int, "dropout": float,
           "norm": str, "residual": bool, "adj_norm": str, "diag_lambda": float}
_SECTIONS = {"model": dict, "weights": dict, "signature": dict, "dataset": dict, "normalization": dict,
             "training": dict, "versions": dict, "checksum": str}


def _family(model) -> str:
    from gnnkit.models import MODELS

    for name, cls in MODELS.items():
        if type(model) is cls:
            return name
    raise GnnkitError(f"{type(model).__name__} cannot be saved as a model file (families: {', '.join(MODELS)})")


def _norm_name(model) -> str:
    """``"none"``, ``"batch"`` or ``"layer"``: the normalization layers between graph layers."""
    kinds = {torch.nn.BatchNorm1d: "batch", torch.nn.LayerNorm: "layer"}
    first = model.norms[0] if len(model.norms) else torch.nn.Identity()
    return kinds.get(type(first), "none")


def model_config(model) -> Dict[str, Any]:
    """What :func:`gnnkit.models.build_model` needs to rebuild ``model`` (a gnnkit GCN, SAGE or MLP)."""
    return {"family": _family(model), "in_dim": int(model.in_dim), "hidden": int(model.hidden),
            "out_dim": int(model.out_dim), "num_layers": int(model.num_layers), "dropout": float(model.dropout),
            "norm": _norm_name(model), "residual": bool(model.residual), "adj_norm": str(model.adj_norm),
            "diag_lambda": float(model.diag_lambda)}


def _x_of(data):
    """``(x dtype, [N, F] shape)`` of a PyG ``Data`` or a ``(graph, features)`` store pair."""
    if isinstance(data, tuple):
        features = data[1]
        return features.dtype("x"), tuple(features.shape("x"))
    x = getattr(data, "x", None)
    if x is None:
        raise GnnkitError("the dataset has no node features (data.x)")
    return x.dtype, tuple(x.shape)


def _num_classes(data) -> Optional[int]:
    value = data[1].meta.get("num_classes") if isinstance(data, tuple) else getattr(data, "num_classes", None)
    return None if value is None else int(value)


def dataset_schema(data, name: Optional[str] = None, fingerprint: Optional[str] = None) -> Dict[str, Any]:
    """The dataset's name, fingerprint (``gnnkit.data.fingerprint``; given, or a store's recorded
    one) and what a model reads of it (feature width and dtype, classes)."""
    from .data.fingerprint import fingerprint as content_hash

    dtype, shape = _x_of(data)
    fp = fingerprint
    if fp is None:
        fp = data[1].meta.get("fingerprint") if isinstance(data, tuple) else content_hash(data)
    return {"name": None if name is None else str(name), "fingerprint": fp, "num_features": int(shape[1]),
            "num_classes": _num_classes(data), "feature_dtype": str(dtype).replace("torch.", ""),
            "num_nodes": int(shape[0])}


def _plain(obj: Any) -> Any:
    """``obj`` as JSON types (what ``weights_only=True`` reads back), non-JSON values as strings."""
    return json.loads(json.dumps(obj, default=str))


def _checksum(obj: Dict[str, Any]) -> str:
    """blake2b of every weight byte (in name order) and of the other fields as canonical JSON."""
    from .data.fingerprint import hash_tensors

    weights = obj["weights"]
    rest = {k: v for k, v in obj.items() if k not in ("weights", "checksum")}
    names = sorted(weights)
    return hash_tensors(*(weights[k] for k in names), extra=json.dumps([names, rest], sort_keys=True), sample=None)


def _versions() -> Dict[str, Optional[str]]:
    from .commands.outputs import environment

    return _plain(environment([])["versions"])


def model_record(model, data, *, dataset: Optional[str] = None, seed: Optional[int] = None,
                 split: Optional[str] = None, metric: Optional[str] = None, figures: Optional[dict] = None,
                 settings: Optional[dict] = None, transform: Optional[str] = None,
                 fingerprint: Optional[str] = None) -> Dict[str, Any]:
    """The model file's dict for ``model`` (its current weights, on CPU) trained on ``data``."""
    config = model_config(model)
    schema = dataset_schema(data, dataset, fingerprint)
    if schema["num_features"] != config["in_dim"]:
        raise GnnkitError(f"the model reads {config['in_dim']} features, the dataset has {schema['num_features']}")
    weights = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    obj = {"format": FORMAT, "model": config, "weights": weights,
           "signature": {k: list(v.shape) for k, v in weights.items()}, "dataset": schema,
           "normalization": {"adj_norm": config["adj_norm"], "diag_lambda": config["diag_lambda"],
                             "features": transform},
           "training": _plain({"seed": seed, "split": split, "metric": metric, "figures": figures or {},
                               "settings": settings or {}}),
           "versions": _versions()}
    obj["checksum"] = _checksum(obj)
    return obj


def save_model(path: str, model, data, **info: Any) -> Dict[str, Any]:
    """Write ``model`` (see :func:`model_record` for ``info``) to ``path`` atomically; returns the dict."""
    obj = model_record(model, data, **info)
    atomic_torch_save(path, obj)
    return obj


def read_model_file(path: str) -> Dict[str, Any]:
    """The checked dict of the model file at ``path`` (format, fields, checksum); no model built."""
    if not os.path.isfile(path):
        raise GnnkitError(f"model file {path} does not exist")
    import zipfile

    if not zipfile.is_zipfile(path):
        raise GnnkitError(f"{path} is not a model file (not a torch archive; truncated or another kind of file)")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # corrupt, pickled code or classes
        lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()] or [type(exc).__name__]
        detail = next((ln for ln in lines if "Unsupported" in ln), lines[0]).split(". Please use")[0]
        detail = detail.replace("WeightsUnpickler error: ", "")
        raise GnnkitError(f"{path} is not a readable model file ({type(exc).__name__}: {detail[:200]})") from None
    if not isinstance(obj, dict):
        raise GnnkitError(f"{path} is not a gnnkit model file (it holds a {type(obj).__name__})")
    tag = str(obj.get("format", ""))
    if tag.startswith("gnnkit-checkpoint/"):
        raise GnnkitError(f"{path} is a training checkpoint, not a model file (gnnkit train writes OUT/model-seed*.pt)")
    if tag != FORMAT:
        found = f"format {tag!r}" if tag else "no format tag"
        raise GnnkitError(f"{path} is not a gnnkit model file ({found}; this gnnkit reads {FORMAT!r})")
    _check_fields(obj, path)
    if obj["checksum"] != _checksum(obj):
        raise GnnkitError(f"{path}: checksum mismatch (the file was changed after gnnkit wrote it)")
    return obj


def _check_fields(obj: Dict[str, Any], path: str) -> None:
    for key, kind in _SECTIONS.items():
        if not isinstance(obj.get(key), kind):
            raise GnnkitError(f"{path}: field {key!r} is missing or not a {kind.__name__}")
    for key, kind in _CONFIG.items():
        value = obj["model"].get(key)
        ok = isinstance(value, kind) and (kind is not int or not isinstance(value, bool))
        if not ok and not (kind is float and isinstance(value, int) and not isinstance(value, bool)):
            raise GnnkitError(f"{path}: model.{key} is missing or not a {kind.__name__} (got {value!r})")
    bad = [k for k, v in obj["weights"].items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
    if bad:
        raise GnnkitError(f"{path}: weights entry {bad[0]!r} is not a named tensor")
    for key in ("num_features", "num_classes", "feature_dtype", "fingerprint"):
        if key not in obj["dataset"]:
            raise GnnkitError(f"{path}: dataset.{key} is missing")


def build_from_record(obj: Dict[str, Any], path: str = "model file"):
    """The model of a checked model-file dict, its weights loaded, in eval mode."""
    from gnnkit.models import build_model

    cfg = dict(obj["model"])
    family, in_dim, out_dim = cfg.pop("family"), cfg.pop("in_dim"), cfg.pop("out_dim")
    model = build_model(family, in_dim, out_dim, hidden=cfg["hidden"], num_layers=cfg["num_layers"],
                        dropout=float(cfg["dropout"]), norm=cfg["norm"], residual=cfg["residual"],
                        adj_norm=cfg["adj_norm"], diag_lambda=float(cfg["diag_lambda"]))
    mine = {k: list(v.shape) for k, v in model.state_dict().items()}
    theirs = {k: list(v.shape) for k, v in obj["weights"].items()}
    if mine != theirs:
        differ = sorted(set(mine) ^ set(theirs)) or [k for k in mine if mine[k] != theirs[k]]
        raise GnnkitError(f"{path}: the weights do not fit a {family} model of this configuration "
                          f"(differ: {', '.join(differ[:3])})")
    model.load_state_dict(obj["weights"])
    return model.eval()


def load_model(path: str):
    """``(model, record)``: the rebuilt model (eval mode, CPU) and the file's checked dict."""
    obj = read_model_file(path)
    return build_from_record(obj, path), obj


def check_schema(obj: Dict[str, Any], data, *, labels: bool = False) -> list:
    """Refuse ``data`` whose features the model cannot read (width, dtype; the classes too when
    ``labels``), naming the difference. Returns notes (e.g. a different fingerprint) for the user."""
    want = obj["dataset"]
    got = dataset_schema(data)
    for key, what in (("num_features", "features"), ("feature_dtype", "feature dtype")):
        if got[key] != want[key]:
            raise GnnkitError(f"the dataset's schema differs from the model's: {what} {got[key]} "
                              f"(the model was trained on {want[key]})")
    if labels and want["num_classes"] is not None and got["num_classes"] != want["num_classes"]:
        raise GnnkitError(f"the dataset's schema differs from the model's: classes {got['num_classes']} "
                          f"(the model was trained on {want['num_classes']})")
    notes = []
    if got["fingerprint"] != want["fingerprint"]:
        notes.append("the graph differs from the one the model was trained on (fingerprint); same schema")
    return notes
