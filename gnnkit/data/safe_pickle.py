"""Reading pickles from data files without running their code.

A pickle names the callables that rebuild its objects (``GLOBAL module name`` opcodes), and
:func:`pickle.load` imports and calls whatever it names: ``os.system`` in a crafted file runs a
command. Data formats that carry pickles (Planetoid's raw files, numpy's object arrays inside
``.npz``, ``torch.save`` caches) are therefore read here only:

- :class:`SafeUnpickler` admits the globals of plain data and nothing else: Python's containers and
  scalars (``list``, ``dict``, ``tuple``, ``set``, ``int``, ``float``, ``str``, ``bytes``...,
  and ``_codecs.encode`` with a text encoding, which protocol 2 uses for bytes),
  ``collections.defaultdict``/``OrderedDict``, numpy arrays, dtypes and scalars, and scipy's CSR,
  CSC and COO matrices (under the module names Python 2 and older numpy/scipy pickled them with).
  Any other global refuses the whole file with a :class:`~gnnkit.errors.GnnkitError`.
- :func:`safe_torch_load` loads ``torch.save`` files with ``weights_only=True`` only (PyG's
  ``Data`` classes and numpy's array reconstruction registered as safe globals) and never retries
  unsafely: a file that does not load that way is refused.
"""
from __future__ import annotations

import builtins
import collections
import contextlib
import io
import pickle
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, Tuple
from unittest import mock

import numpy as np

from gnnkit.errors import GnnkitError


def _allowed() -> Dict[Tuple[str, str], Any]:
    import scipy.sparse as sp

    table: Dict[Tuple[str, str], Any] = {}
    for mod in ("builtins", "__builtin__"):
        for name in ("list", "dict", "tuple", "set", "frozenset", "int", "float", "complex", "str", "bool",
                     "object", "long", "unicode", "slice"):
            table[mod, name] = getattr(builtins, {"long": "int", "unicode": "str"}.get(name, name))
        table[mod, "bytes"] = _sized(bytes)
        table[mod, "bytearray"] = _sized(bytearray)
    for mod in ("copy_reg", "copyreg"):
        table[mod, "_reconstructor"] = _reconstructor
    table["_codecs", "encode"] = _encode
    table["collections", "defaultdict"] = collections.defaultdict
    table["collections", "OrderedDict"] = collections.OrderedDict
    multiarray = np._core.multiarray if hasattr(np, "_core") else np.core.multiarray
    for mod in ("numpy.core.multiarray", "numpy._core.multiarray"):
        table[mod, "_reconstruct"] = multiarray._reconstruct
        table[mod, "scalar"] = multiarray.scalar
    for mod in ("numpy", "numpy.core.numeric", "numpy._core.numeric"):
        table[mod, "ndarray"] = np.ndarray
        table[mod, "dtype"] = np.dtype
    numeric = np._core.numeric if hasattr(np, "_core") else np.core.numeric
    for mod in ("numpy.core.numeric", "numpy._core.numeric"):  # protocol 5's out-of-band arrays
        table[mod, "_frombuffer"] = numeric._frombuffer
    for kind in ("csr", "csc", "coo"):
        matrix, array = getattr(sp, f"{kind}_matrix"), getattr(sp, f"{kind}_array")
        for mod in ("scipy.sparse", f"scipy.sparse.{kind}", f"scipy.sparse._{kind}"):
            table[mod, f"{kind}_matrix"] = matrix
            table[mod, f"{kind}_array"] = array
    return table


def _sized(kind):
    """``bytes``/``bytearray`` from data only: ``bytes(10**10)`` would fill 10 GB from a 20-byte file."""

    def make(*args):
        if args and isinstance(args[0], int):
            raise pickle.UnpicklingError(f"refused {kind.__name__}(<int>): a size, not data")
        return kind(*args)

    return make


def _reconstructor(cls, base, state):
    """``copyreg._reconstructor`` restricted to admitted classes (``cls`` came through find_class)."""
    import copyreg

    if not isinstance(cls, type) or not isinstance(base, type):
        raise pickle.UnpicklingError("copyreg._reconstructor called with a non-class")
    return copyreg._reconstructor(cls, base, state)  # noqa: SLF001 - the stdlib helper itself


def _encode(text, encoding: str = "utf-8", errors: str = "strict") -> bytes:
    """``_codecs.encode`` (how protocol-2 pickles written by Python 3 store bytes), text codecs only."""
    if not isinstance(text, str) or encoding.lower().replace("-", "").replace("_", "") not in (
            "latin1", "utf8", "ascii", "iso88591"):
        raise pickle.UnpicklingError(f"refused _codecs.encode with encoding {encoding!r}")
    return text.encode(encoding, errors)


class SafeUnpickler(pickle.Unpickler):
    """An unpickler whose ``find_class`` admits only plain data types (see the module docstring)."""

    _table: Dict[Tuple[str, str], Any] = {}

    def find_class(self, module: str, name: str):  # noqa: D102 - pickle's hook
        if not SafeUnpickler._table:
            SafeUnpickler._table = _allowed()
        found = SafeUnpickler._table.get((module, name))
        if found is None:
            raise pickle.UnpicklingError(f"refused global {module}.{name}: data files may hold only arrays, "
                                         f"sparse matrices and plain containers")
        return found

    def persistent_load(self, pid):  # noqa: D102 - pickle's hook
        raise pickle.UnpicklingError("refused persistent id: data files may hold only plain data")


# everything a malformed (not only hostile) pickle can raise while being read
_PICKLE_ERRORS = (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError,
                  KeyError, UnicodeError, OverflowError, MemoryError, RecursionError, ImportError,
                  SystemError, NotImplementedError, AssertionError)


def safe_loads(data: bytes, what: str, *, encoding: str = "latin1") -> Any:
    """Unpickle ``data`` with :class:`SafeUnpickler`; ``what`` names the source in errors
    (``encoding="latin1"`` reads Python-2 pickles of numpy arrays, as numpy itself does)."""
    try:
        return SafeUnpickler(io.BytesIO(data), encoding=encoding).load()
    except _PICKLE_ERRORS as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if isinstance(exc, MemoryError):
            reason = "it asks for more memory than the machine has"
        raise GnnkitError(f"{what}: cannot read the pickle safely ({reason})") from None


def safe_load_file(path, what: str = "") -> Any:
    """:func:`safe_loads` on the bytes of ``path``, after a size check: the file is read whole and
    its objects take about as much again, so ``4 x`` its size must fit in memory."""
    from .limits import check_allocation

    path = Path(path)
    what = what or str(path)
    try:
        size = path.stat().st_size
        check_allocation(4.0 * size, f"{what} ({size} bytes)")
        data = path.read_bytes()
    except OSError as exc:
        raise GnnkitError(f"{what}: cannot read ({exc.strerror or exc})") from None
    return safe_loads(data, what)


def register_safe_globals() -> None:
    """Let ``torch.load(weights_only=True)`` rebuild PyG ``Data`` objects and numpy arrays (OGB's
    link splits pickle them as ``numpy.core.multiarray._reconstruct``)."""
    import torch
    from torch_geometric.data import Data
    from torch_geometric.data.data import DataEdgeAttr, DataTensorAttr
    from torch_geometric.data.storage import BaseStorage, EdgeStorage, GlobalStorage, NodeStorage

    multiarray = np._core.multiarray if hasattr(np, "_core") else np.core.multiarray
    torch.serialization.add_safe_globals([
        Data, DataEdgeAttr, DataTensorAttr, GlobalStorage, BaseStorage, NodeStorage, EdgeStorage,
        (multiarray._reconstruct, "numpy.core.multiarray._reconstruct"),
        (multiarray._reconstruct, "numpy._core.multiarray._reconstruct"),
        np.ndarray, np.dtype, type(np.dtype(np.float32)), type(np.dtype(np.float64)),
        type(np.dtype(np.int64)), type(np.dtype(np.int32)), type(np.dtype(np.bool_))])


def safe_torch_load(path, what: str = "") -> Any:
    """``torch.load(path, weights_only=True, map_location="cpu")`` with the safe globals of
    :func:`register_safe_globals`; anything that does not load that way raises a GnnkitError
    (it is never retried with ``weights_only=False``)."""
    import torch

    what = what or str(path)
    register_safe_globals()
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any failure of an untrusted file is the file's fault
        raise GnnkitError(f"{what}: refused, it does not load with weights_only=True ({torch_reason(exc)})") from None


def torch_reason(exc: Exception) -> str:
    """The informative line of a ``torch.load`` error (torch's own text is several paragraphs)."""
    import re

    text = re.sub(r"\x1b\[[0-9;]*m", "", str(exc))
    found = re.search(r"WeightsUnpickler error: ([^\n]*)", text)
    boilerplate = ("Weights only load failed", "Check the documentation")  # torch's paragraphs around the reason
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.startswith(boilerplate)]
    line = found.group(1) if found else (lines or text.splitlines() or [type(exc).__name__])[0]
    return line.split(". Please use")[0].strip()[:200]


@contextlib.contextmanager
def weights_only_loads() -> Iterator[None]:
    """Within the block every ``torch.load`` (third-party code's too: PyG's datasets, ogb) runs with
    ``weights_only=True`` and the safe globals of :func:`register_safe_globals`. Needed around PyG's
    dataset classes: their ``fs.torch_load`` retries a file that ``weights_only`` refuses with
    ``weights_only=False``, which would run a crafted ``processed/*.pt``'s code."""
    import torch

    register_safe_globals()
    with mock.patch("torch.load", forcing_weights_only(torch.load)):
        yield


def forcing_weights_only(load: Callable) -> Callable:
    """``load`` (``torch.load``) with ``weights_only=True`` forced, for third-party code (ogb) that
    calls it without the argument (where ``$TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD`` would turn it off)."""

    def wrapped(*args, **kwargs):
        kwargs["weights_only"] = True
        return load(*args, **kwargs)

    return wrapped
