"""A ``.npz`` reader that never runs code and never allocates more than the file holds:
:func:`read_npz`.

``numpy.load`` reads an object array's member as a pickle (code execution when
``allow_pickle=True``) and trusts every header's shape (a 20-byte member may announce 10^12
elements). Here each ``<key>.npy`` member of the zip is read by hand:

- the declared uncompressed size of all members (twice: the bytes and the array) is checked
  against the memory bound (:func:`gnnkit.data.limits.check_allocation`) before anything is
  read (a compressed member can expand a thousandfold; zipfile stops at the declared size);
- the npy header (magic, version, ``descr``/``fortran_order``/``shape``) is parsed by numpy's
  header reader, and ``prod(shape) * itemsize`` must equal the bytes that follow: a truncated
  or padded member is refused;
- numeric, bool and fixed-width string dtypes become arrays (``np.frombuffer`` on a private copy);
- an object array (``class_names``, ``node_names`` and sometimes whole scipy matrices in older
  files) is unpickled by :class:`gnnkit.data.safe_pickle.SafeUnpickler`, which admits plain
  containers, numpy arrays and scipy sparse matrices only; with ``objects=False`` such members are
  skipped instead.

Every failure is a :class:`~gnnkit.errors.GnnkitError` naming the file and the member.
"""
from __future__ import annotations

import io
import zipfile
import zlib
from pathlib import Path
from typing import Dict

import numpy as np

from gnnkit.errors import GnnkitError

from .limits import check_allocation
from .safe_pickle import safe_loads

_KINDS = "biufcUS"  # bool, ints, floats, complex, fixed-width strings (plus "O" through the safe unpickler)
_ZIP_ERRORS = (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError, KeyError, NotImplementedError,
               RuntimeError, UnicodeError, SyntaxError, TypeError, OverflowError, MemoryError)


def _header(fp, what: str):
    """``(shape, fortran_order, dtype)`` from numpy's header reader; any failure of it (it parses
    a Python literal, so a damaged header can raise nearly anything) is a bad header."""
    fmt = np.lib.format
    try:
        version = fmt.read_magic(fp)
        if version == (1, 0):
            return fmt.read_array_header_1_0(fp)
        if version in ((2, 0), (3, 0)):
            return fmt.read_array_header_2_0(fp)
    except Exception as exc:  # noqa: BLE001 - see the docstring
        raise GnnkitError(f"{what}: bad npy header ({type(exc).__name__}: {str(exc)[:120]})") from None
    raise GnnkitError(f"{what}: unsupported npy format version {version}")


def _member(raw: bytes, what: str, objects: bool):
    fp = io.BytesIO(raw)
    shape, fortran, dtype = _header(fp, what)
    body = raw[fp.tell():]
    if not all(isinstance(s, int) and s >= 0 for s in shape):
        raise GnnkitError(f"{what}: bad shape {shape}")
    count = int(np.prod(shape, dtype=np.float64)) if shape else 1
    if dtype.hasobject:
        if not objects:
            return None
        array = safe_loads(body, what)
        if not isinstance(array, np.ndarray) or array.shape != tuple(shape):
            raise GnnkitError(f"{what}: object member does not hold the announced array of shape {shape}")
        return array
    if dtype.kind not in _KINDS or dtype.fields is not None or dtype.subdtype is not None:
        raise GnnkitError(f"{what}: unsupported dtype {dtype} (numbers, bools and strings only)")
    need = count * dtype.itemsize
    if need != len(body):
        state = "truncated" if need > len(body) else "longer than its header says"
        raise GnnkitError(f"{what}: member is {state} ({len(body)} bytes of data, shape {tuple(shape)} "
                          f"x {dtype.itemsize} bytes needs {need})")
    array = np.frombuffer(bytearray(body), dtype=dtype, count=count)
    if not dtype.isnative:  # big-endian members are legal .npy; scipy and torch take native order only
        array = array.astype(dtype.newbyteorder("="))
    return array.reshape(shape, order="F" if fortran else "C")


def read_npz(path, *, objects: bool = True) -> Dict[str, np.ndarray]:
    """The arrays of the ``.npz`` at ``path`` by key (see the module docstring)."""
    path = Path(path)
    out: Dict[str, np.ndarray] = {}
    try:
        with zipfile.ZipFile(path) as zf:
            members = [i for i in zf.infolist() if not i.is_dir() and i.filename.endswith(".npy")]
            total = sum(i.file_size for i in members)  # as declared: a compressed member may expand a lot
            check_allocation(2.0 * total, f"{path}: {len(members)} arrays of {total} bytes uncompressed")
            for info in members:
                what = f"{path}: member {info.filename}"
                raw = zf.read(info)
                array = _member(raw, what, objects)
                if array is not None:
                    out[info.filename[:-4]] = array
    except GnnkitError:
        raise
    except _ZIP_ERRORS as exc:
        reason = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise GnnkitError(f"{path}: not a readable .npz file ({reason})") from None
    return out
