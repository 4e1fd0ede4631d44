"""Seeded fuzzing of the data loaders: mutated ``.npz`` graphs and event files.

Each case takes a small valid file, applies one mutation (bit flips, truncation, swapped arrays,
shuffled rows, extreme values, dtype changes, dropped keys, ... see ``NPZ_MUTATIONS`` and
``EVENT_MUTATIONS``) and loads it through ``gnnkit.data.load`` or
``gnnkit.temporal.events.load_events``; a third family pickles scipy sparse matrices with one
attribute tampered with (as a crafted Planetoid part carries them) and reads them back as the
Planetoid reader does; ``--planetoid N`` also mutates copies of Cora's raw folder. A case passes
when loading succeeds or raises a :class:`~gnnkit.errors.GnnkitError`; any other exception, or a
load running past the time limit, is a failure (a crash ends the process, which fails the run too). ``tests/test_fuzz.py`` runs a
few hundred cases; this script runs as many as asked::

    python benchmarks/fuzz.py --cases 5000 --seed 0

It prints one line per failure (kind, seed, exception) and a summary; exit status 1 on failures.
"""
from __future__ import annotations

import argparse
import io
import os
import pickle
import signal
import sys
import tempfile
import time
import traceback
import warnings
import zipfile
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np

EXTREMES = [-1, -2, 0, 1, 2 ** 31 - 1, 2 ** 31, 2 ** 62, -(2 ** 62), 10 ** 9, float("nan"), float("inf"),
            -float("inf"), 0.5, 1e300, -0.0]


# -- valid inputs ------------------------------------------------------------------------------------
def base_arrays(n: int = 24, seed: int = 0) -> Dict[str, np.ndarray]:
    """A valid gnn-benchmark style graph: a ring plus chords, CSR features, labels, class names."""
    import scipy.sparse as sp

    rng = np.random.default_rng(seed)
    src = np.concatenate([np.arange(n), rng.integers(0, n, n)])
    dst = np.concatenate([(np.arange(n) + 1) % n, rng.integers(0, n, n)])
    adj = sp.csr_matrix((np.ones(src.size, np.float32), (src, dst)), shape=(n, n))
    adj.sum_duplicates()
    attr = sp.csr_matrix((rng.random((n, 6)) < 0.4).astype(np.float32))
    return {"adj_data": adj.data, "adj_indices": adj.indices, "adj_indptr": adj.indptr,
            "adj_shape": np.array(adj.shape), "attr_data": attr.data, "attr_indices": attr.indices,
            "attr_indptr": attr.indptr, "attr_shape": np.array(attr.shape),
            "labels": (np.arange(n) % 3).astype(np.int64), "class_names": np.array(["a", "b", "c"], dtype=object)}


def save_npz(arrays: Dict[str, np.ndarray]) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def base_events(n_events: int = 60, seed: int = 0) -> List[List[str]]:
    rng = np.random.default_rng(seed)
    t = np.sort(rng.integers(1_000_000, 1_100_000, n_events))
    return [[str(rng.integers(1, 30)), str(rng.integers(1, 30)), str(int(v))] for v in t]


# -- mutations ---------------------------------------------------------------------------------------
def _flip(data: bytes, rng, count: Optional[int] = None) -> bytes:
    out = bytearray(data)
    for _ in range(count or int(rng.integers(1, 9))):
        pos = int(rng.integers(0, len(out)))
        out[pos] ^= 1 << int(rng.integers(0, 8))
    return bytes(out)


def _members(data: bytes) -> Dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        return {name: zf.read(name) for name in zf.namelist()}


def _rezip(members: Dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, raw in members.items():
            zf.writestr(name, raw)
    return buf.getvalue()


def _member_bytes(arrays, rng, change: Callable[[bytes, object], bytes]) -> bytes:
    members = _members(save_npz(arrays))
    name = sorted(members)[int(rng.integers(0, len(members)))]
    members[name] = change(members[name], rng)
    return _rezip(members)


def _pick(arrays, rng) -> str:
    keys = sorted(arrays)
    return keys[int(rng.integers(0, len(keys)))]


def _swap(arrays, rng):
    a, b = _pick(arrays, rng), _pick(arrays, rng)
    arrays[a], arrays[b] = arrays[b], arrays[a]
    return save_npz(arrays)


def _shuffle(arrays, rng):
    key = _pick(arrays, rng)
    flat = arrays[key].reshape(-1).copy()
    rng.shuffle(flat)
    arrays[key] = flat.reshape(arrays[key].shape)
    return save_npz(arrays)


def _extreme(arrays, rng):
    key = _pick(arrays, rng)
    key = key if arrays[key].dtype.kind in "biuf" else "labels"
    value = EXTREMES[int(rng.integers(0, len(EXTREMES)))]
    a = arrays[key].astype(np.float64 if isinstance(value, float) else np.int64)
    if a.size:
        a.reshape(-1)[int(rng.integers(0, a.size))] = value
    arrays[key] = a
    return save_npz(arrays)


def _dtype(arrays, rng):
    key = _pick(arrays, rng)
    kinds = [np.float32, np.float64, np.int8, np.uint64, np.bool_, "U3", object, np.complex64]
    target = kinds[int(rng.integers(0, len(kinds)))]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            arrays[key] = arrays[key].astype(target)
        except (ValueError, TypeError, OverflowError):
            arrays[key] = np.zeros(3, dtype=target)
    return save_npz(arrays)


def _reshape(arrays, rng):
    key = _pick(arrays, rng)
    a = arrays[key]
    options = [a.reshape(1, -1), a.reshape(-1, 1), np.stack([a, a]), a[: a.size // 2], np.concatenate([a, a]),
               a.reshape(-1)[:0]]
    arrays[key] = options[int(rng.integers(0, len(options)))]
    return save_npz(arrays)


def _drop(arrays, rng):
    del arrays[_pick(arrays, rng)]
    return save_npz(arrays)


def _objects(arrays, rng):
    key = _pick(arrays, rng)
    box = np.empty(1, dtype=object)
    box[0] = [{"k": arrays[key]}, (1, 2.5, "s"), None][int(rng.integers(0, 3))]
    arrays[key] = box
    return save_npz(arrays)


NPZ_MUTATIONS: Dict[str, Callable] = {
    "file_flip": lambda a, rng: _flip(save_npz(a), rng),
    "file_truncate": lambda a, rng: save_npz(a)[: int(rng.integers(0, len(save_npz(a))))],
    "member_flip": lambda a, rng: _member_bytes(a, rng, lambda raw, r: _flip(raw, r)),
    "member_header_flip": lambda a, rng: _member_bytes(
        a, rng, lambda raw, r: _flip(raw[:128], r, 1) + raw[128:]),
    "member_truncate": lambda a, rng: _member_bytes(a, rng, lambda raw, r: raw[: int(r.integers(0, len(raw)))]),
    "swap": _swap, "shuffle": _shuffle, "extreme": _extreme, "dtype": _dtype, "reshape": _reshape, "drop": _drop,
    "objects": _objects,
}


def _ev_text(rows) -> bytes:
    return ("\n".join(" ".join(r) for r in rows) + "\n").encode()


def _ev_token(rows, rng, replace: bool):
    i = int(rng.integers(0, len(rows)))
    j = int(rng.integers(0, len(rows[i])))
    tokens = ["nan", "inf", "-1", "1e12", "1e300", "abc", "0x1f", "3.5", "-0", "1" * 30, "", "#"]
    if replace:
        rows[i][j] = tokens[int(rng.integers(0, len(tokens)))]
    elif rng.random() < 0.5:
        del rows[i][j]
    else:
        rows[i].insert(j, tokens[int(rng.integers(0, len(tokens)))])
    return _ev_text(rows)


def _ev_swap_columns(rows, rng):
    a, b = (int(v) for v in rng.integers(0, 3, 2))
    for r in rows:
        r[a], r[b] = r[b], r[a]
    return _ev_text(rows)


def _ev_shuffle(rows, rng):
    order = rng.permutation(len(rows))
    return _ev_text([rows[i] for i in order])


def _ev_lines(rows, rng):
    i = int(rng.integers(0, len(rows)))
    extra = [["#", "comment"], [], ["%"], rows[i], ["\x00\xff"], ["1", "2"], ["1", "2", "3", "4", "5"]]
    rows.insert(i, extra[int(rng.integers(0, len(extra)))])
    return _ev_text(rows)


EVENT_MUTATIONS: Dict[str, Callable] = {
    "flip": lambda rows, rng: _flip(_ev_text(rows), rng),
    "truncate": lambda rows, rng: _ev_text(rows)[: int(rng.integers(0, len(_ev_text(rows))))],
    "token": lambda rows, rng: _ev_token(rows, rng, replace=True),
    "token_count": lambda rows, rng: _ev_token(rows, rng, replace=False),
    "swap_columns": _ev_swap_columns, "shuffle_rows": _ev_shuffle, "lines": _ev_lines,
    "garbage": lambda rows, rng: bytes(rng.integers(0, 256, int(rng.integers(1, 400)), dtype=np.uint8)),
}


def _sparse_case(rng) -> bytes:
    """A pickled scipy CSR/CSC/COO matrix with one attribute tampered with (a value, a length, the
    order, the dtype or the shape), as a crafted Planetoid part would carry it."""
    import scipy.sparse as sp

    m = sp.random(50, 30, density=0.1, format="csr", random_state=0, dtype=np.float32)
    m = m.asformat(["csr", "csc", "coo"][int(rng.integers(0, 3))]).copy()
    d = m.__dict__
    keys = sorted(k for k in d if isinstance(d[k], (np.ndarray, tuple)))
    key = keys[int(rng.integers(0, len(keys)))]
    if key == "_shape":
        shapes = [(50, 30), (30, 50), (0, 0), (10 ** 12, 30), (30, 10 ** 12), (-1, 30), (50,), (2 ** 31, 2 ** 31)]
        d[key] = shapes[int(rng.integers(0, len(shapes)))]
        return pickle.dumps(m, protocol=2)
    value = d[key]
    j = int(rng.integers(0, len(value))) if isinstance(value, tuple) else 0
    arr = np.asarray(value[j] if isinstance(value, tuple) else value).copy()
    op = int(rng.integers(0, 5)) if arr.size else 2
    if op == 0:
        arr[int(rng.integers(0, arr.size))] = [-1, 10 ** 9, 2 ** 31 - 1, 0][int(rng.integers(0, 4))]
    elif op == 1:
        arr = arr[: int(rng.integers(0, arr.size))]
    elif op == 2:
        arr = np.concatenate([arr, arr])
    elif op == 3:
        rng.shuffle(arr)
    else:
        arr = arr.astype([np.float64, np.int8, np.uint64][int(rng.integers(0, 3))])
    d[key] = tuple(arr if t == j else x for t, x in enumerate(value)) if isinstance(value, tuple) else arr
    return pickle.dumps(m, protocol=2)


# -- running -----------------------------------------------------------------------------------------
class _Timeout(Exception):
    pass


def _alarm(_signum, _frame):
    raise _Timeout()


def make_case(kind: str, index: int, seed: int) -> Tuple[str, str, bytes]:
    """``(family, mutation, file bytes)`` of case ``index`` (``kind``: "npz" or "events")."""
    rng = np.random.default_rng([seed, index, 0 if kind == "npz" else 1])
    if kind == "sparse":
        return kind, "tamper", _sparse_case(rng)
    table = NPZ_MUTATIONS if kind == "npz" else EVENT_MUTATIONS
    names = sorted(table)
    name = names[int(rng.integers(0, len(names)))]
    base = base_arrays(seed=index % 7) if kind == "npz" else base_events(seed=index % 7)
    return kind, name, table[name](base, rng)


def load_case(kind: str, path: str, sort: bool = False):
    from gnnkit.data import load
    from gnnkit.temporal.events import load_events

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if kind == "npz":
            return load(path, split="random")
        if kind == "sparse":  # what the Planetoid reader does with a feature part
            from gnnkit.data.planetoid import as_dense_matrix
            from gnnkit.data.safe_pickle import safe_load_file

            return as_dense_matrix(safe_load_file(path), path)
        return load_events(path, sort=sort)


def run_case(kind: str, index: int, seed: int, folder: str, time_limit: float = 20.0) -> Optional[str]:
    """None when the case ends in success or a GnnkitError, else a one-line failure description."""
    from gnnkit.errors import GnnkitError

    family, name, data = make_case(kind, index, seed)
    path = os.path.join(folder, f"case{index}.{ {'npz': 'npz', 'sparse': 'pkl'}.get(kind, 'txt')}")
    Path(path).write_bytes(data)
    old = signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, time_limit)
    try:
        load_case(kind, path, sort=bool(index % 2))
    except GnnkitError:
        pass
    except _Timeout:
        return f"{family}/{name} seed={seed} index={index}: no result after {time_limit:g} s"
    except Exception as exc:  # noqa: BLE001 - the point: anything but GnnkitError is a failure
        where = traceback.extract_tb(exc.__traceback__)[-1]
        return (f"{family}/{name} seed={seed} index={index}: {type(exc).__name__}: {str(exc)[:160]} "
                f"({os.path.basename(where.filename)}:{where.lineno})")
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
        os.unlink(path)
    return None


PLANETOID_PARTS = ("x", "tx", "allx", "y", "ty", "ally", "graph", "test.index")


def run_planetoid_case(raw_src: Path, index: int, seed: int, folder: str) -> Optional[str]:
    """One mutated raw file (bit flips, truncation, swapped with another part) in a copy of
    Cora's raw folder, loaded through ``gnnkit.data.load("Cora", root=...)``."""
    import shutil

    from gnnkit.data import load
    from gnnkit.errors import GnnkitError

    rng = np.random.default_rng([seed, index, 2])
    root = Path(folder) / f"planetoid{index}"
    shutil.copytree(raw_src, root / "Cora" / "raw")
    part = PLANETOID_PARTS[int(rng.integers(0, len(PLANETOID_PARTS)))]
    target = root / "Cora" / "raw" / f"ind.cora.{part}"
    data = target.read_bytes()
    how = ["flip", "truncate", "swap"][int(rng.integers(0, 3))]
    if how == "flip":
        target.write_bytes(_flip(data, rng))
    elif how == "truncate":
        target.write_bytes(data[: int(rng.integers(0, len(data)))])
    else:
        other = root / "Cora" / "raw" / f"ind.cora.{PLANETOID_PARTS[int(rng.integers(0, len(PLANETOID_PARTS)))]}"
        target.write_bytes(other.read_bytes())
        other.write_bytes(data)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            load("Cora", root=root)
    except GnnkitError:
        pass
    except Exception as exc:  # noqa: BLE001 - anything but GnnkitError is a failure
        return f"planetoid/{how} {part} seed={seed} index={index}: {type(exc).__name__}: {str(exc)[:160]}"
    finally:
        shutil.rmtree(root)
    return None


def run(cases: int, seed: int, kinds=("npz", "events", "sparse"), planetoid: int = 0,
        raw_src: Optional[Path] = None) -> List[str]:
    failures = []
    with tempfile.TemporaryDirectory() as folder:
        for kind in kinds:
            for index in range(cases):
                failure = run_case(kind, index, seed, folder)
                if failure:
                    failures.append(failure)
        for index in range(planetoid if raw_src is not None else 0):
            failure = run_planetoid_case(raw_src, index, seed, folder)
            if failure:
                failures.append(failure)
    return failures


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=2000, help="cases per family (default 2000)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--planetoid", type=int, default=0,
                        help="also this many mutated copies of Cora's raw folder (needs --cora-raw)")
    parser.add_argument("--cora-raw", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data"
                        / "Planetoid" / "Cora" / "raw", help="Cora's raw folder (read only; copies are mutated)")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    raw = args.cora_raw if args.cora_raw.is_dir() else None
    failures = run(args.cases, args.seed, planetoid=args.planetoid, raw_src=raw)
    for line in failures:
        print(line)
    done = 3 * args.cases + (args.planetoid if raw else 0)
    print(f"{done} cases, {len(failures)} failures, {time.perf_counter() - start:.1f} s")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    sys.exit(main())
