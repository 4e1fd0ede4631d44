"""Where ``gnnkit train`` writes, checked before training, and what it writes there.

- :func:`check_paths` refuses an output folder (``--out``, ``--checkpoint-dir``, ``--log-dir``) that
  exists as a file, lies under a file, cannot be written (a probe file is created and removed) or
  lacks the space for one checkpoint, before any data is loaded or any epoch is run;
- :func:`check_reuse` refuses to mix runs: an ``--out`` holding results or a ``--checkpoint-dir``
  holding checkpoints of an earlier run needs ``--resume`` (continue it) or ``--overwrite`` (replace it);
- :class:`Results` writes ``OUT/runs/seed-K.json`` per finished seed and ``OUT/results.json`` after
  each seed (``"finished_seeds"``, ``"complete"``), each recording the run's settings, command line,
  versions and dataset fingerprint; on ``--resume`` a kept seed file must belong to this run. A seed
  file also keeps the seed's per-evaluation ``"history"``, from which ``OUT/curves.png`` is drawn
  after each seed when matplotlib is installed (:mod:`gnnkit.commands.curves`).

Every write goes through :mod:`gnnkit.fileio` (atomic; a failed write leaves no ``.tmp`` and ends in a
one-line error naming the path and the reason).
"""
from __future__ import annotations

import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any, Dict, List, Optional

from ..errors import GnnkitError
from ..fileio import atomic_write_json

MB = 1 << 20


def _outputs(args) -> List[tuple]:
    return [(flag, getattr(args, dest)) for flag, dest in (("--out", "out"), ("--checkpoint-dir", "checkpoint_dir"),
                                                          ("--log-dir", "log_dir")) if getattr(args, dest)]


def _existing_ancestor(flag: str, path: Path) -> Path:
    """The deepest existing folder on ``path``'s way (``path`` itself when it is one)."""
    try:
        if path.exists() and not path.is_dir():
            raise GnnkitError(f"{flag} {path}: exists as a file, not a folder")
        probe = path
        while not probe.exists():
            if probe.parent == probe:
                break
            probe = probe.parent
        if not probe.is_dir():
            raise GnnkitError(f"{flag} {path}: lies under {probe}, which is a file")
    except OSError as exc:  # a symlink loop, a name too long...
        raise GnnkitError(f"{flag} {path}: {exc.strerror or exc}") from None
    return probe


def check_path(flag: str, path: str, need_bytes: int = MB) -> None:
    """Refuse ``path`` as an output folder (see the module docstring); writes nothing that stays."""
    path_obj = Path(path).expanduser().absolute()
    folder = _existing_ancestor(flag, path_obj)
    try:
        fd, probe = tempfile.mkstemp(prefix=".gnnkit-probe-", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise GnnkitError(f"{flag} {path}: cannot write in {folder} ({exc.strerror or exc})") from None
    free = shutil.disk_usage(folder).free
    if free < need_bytes:
        raise GnnkitError(f"{flag} {path}: {free / MB:.1f} MB free in {folder}, a run needs about "
                          f"{need_bytes / MB:.1f} MB there")


def check_paths(args, checkpoint_bytes: int = MB) -> None:
    """Check every output folder; the checkpoint folder needs room for one checkpoint."""
    for flag, path in _outputs(args):
        check_path(flag, path, checkpoint_bytes if flag == "--checkpoint-dir" else MB)


def checkpoint_bytes(model) -> int:
    """Bytes of one checkpoint of ``model``, bounded from above: weights, two optimizer moments, slack."""
    return 3 * sum(p.numel() * p.element_size() for p in model.parameters()) + 4 * MB


def seed_dirs(folder: Optional[str], seeds) -> List[str]:
    return [os.path.join(folder, f"seed-{s}") for s in seeds] if folder else []


def _earlier_results(out: str, seeds) -> List[str]:
    found = [os.path.join(out, "results.json")] + [os.path.join(out, "runs", f"seed-{s}.json") for s in seeds]
    found += [os.path.join(out, f"model-seed{s}.pt") for s in seeds] + [os.path.join(out, "curves.png")]
    runs = os.path.join(out, "runs")
    if os.path.isdir(runs):
        found += [os.path.join(runs, f) for f in os.listdir(runs) if f.startswith("seed-") and f.endswith(".json")]
    return sorted({f for f in found if os.path.isfile(f)})


def _earlier_checkpoints(args, seeds) -> List[str]:
    from ..checkpoint import listing

    return [f for d in seed_dirs(args.checkpoint_dir, seeds) if os.path.isdir(d) for f in listing(d)]


def check_reuse(args, seeds) -> None:
    """Refuse an ``--out`` or ``--checkpoint-dir`` of an earlier run unless ``--resume`` or ``--overwrite``."""
    if args.resume and args.overwrite:
        raise GnnkitError("--resume continues the earlier run, --overwrite replaces it: pass one of them")
    if args.resume or args.overwrite:
        return
    if _earlier_results(args.out, seeds):
        raise GnnkitError(f"--out {args.out} holds the results of an earlier run; pass --resume to continue it "
                          f"or --overwrite to replace it")
    if _earlier_checkpoints(args, seeds):
        raise GnnkitError(f"--checkpoint-dir {args.checkpoint_dir} holds checkpoints of an earlier run; pass "
                          f"--resume to continue it or --overwrite to replace them")


def clear_earlier(args, seeds) -> None:
    """With ``--overwrite``: remove the earlier run's results and checkpoints (only gnnkit's files)."""
    if not args.overwrite:
        return
    for f in _earlier_results(args.out, seeds) + _earlier_checkpoints(args, seeds):
        try:
            os.unlink(f)
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise GnnkitError(f"--overwrite: cannot remove {f} ({exc.strerror or exc})") from None


def environment(argv: Optional[List[str]]) -> Dict[str, Any]:
    """The command line and the versions a result was made with."""
    import torch

    from .. import __version__

    try:
        import torch_geometric

        pyg = torch_geometric.__version__
    except ImportError:  # pragma: no cover - a dependency
        pyg = None
    return {"argv": ["gnnkit", *(sys.argv[1:] if argv is None else argv)],
            "versions": {"gnnkit": __version__, "torch": torch.__version__, "torch_geometric": pyg,
                         "python": platform.python_version()}}


def _differences(old: Dict[str, Any], new: Dict[str, Any]) -> List[str]:
    diffs = []
    if old.get("dataset") != new["dataset"]:
        diffs.append(f"dataset {old.get('dataset')} vs {new['dataset']}")
    elif old.get("fingerprint") != new["fingerprint"]:
        diffs.append("dataset fingerprint differs")
    a, b = old.get("settings") or {}, new["settings"]
    diffs += [f"{k.replace('_', '-')} {a.get(k)} vs {b.get(k)}" for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
    return diffs


def check_same_run(record: Dict[str, Any], info: Dict[str, Any], path: str) -> None:
    """Refuse to keep ``record`` (read from ``path``) in a run described by ``info``."""
    old = record.get("run") if isinstance(record, dict) else None
    if not isinstance(old, dict):
        raise GnnkitError(f"--resume: {path} does not say which run it belongs to; use another --out")
    diffs = _differences(old, info)
    if diffs:
        raise GnnkitError(f"--resume: {path} belongs to another run ({'; '.join(diffs[:3])} differ); "
                          f"use another --out or --overwrite")


def _read_record(path: str) -> Dict[str, Any]:
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError) as exc:
        raise GnnkitError(f"--resume: cannot read {path} ({exc}); use another --out") from None


def _mean_std(values):
    vals = [v for v in values if isinstance(v, (int, float)) and v == v]
    if not vals:
        return None, None
    return statistics.fmean(vals), (statistics.stdev(vals) if len(vals) > 1 else 0.0)


class Results:
    """The run's records under ``out``: one file per finished seed and ``results.json`` beside them."""

    def __init__(self, out: str, seeds: List[int], info: Dict[str, Any], header: Dict[str, Any],
                 argv: Optional[List[str]], write: bool = True, epochs: Optional[int] = None):
        self.out, self.seeds, self.info, self.header, self.write = out, seeds, info, header, write
        self.epochs = epochs
        self.env = environment(argv)
        self.runs: List[Dict[str, Any]] = []
        self.histories: Dict[int, List[dict]] = {}

    def seed_file(self, seed: int) -> str:
        return os.path.join(self.out, "runs", f"seed-{seed}.json")

    def kept(self, seed: int) -> Optional[Dict[str, Any]]:
        """The finished record of ``seed`` from an earlier run of this same run (``--resume``), or None."""
        path = self.seed_file(seed)
        if not os.path.isfile(path):
            return None
        record = _read_record(path)
        check_same_run(record, self.info, path)
        ran = record.get("epochs")
        if self.epochs is not None and isinstance(ran, int) and ran > self.epochs:
            raise GnnkitError(f"--resume: {path} ran {ran} epochs, beyond --epochs {self.epochs}; pass --epochs "
                              f"{ran} or more, or use another --out")
        history = record.pop("history", None)
        if isinstance(history, list):
            self.histories[seed] = history
        self.runs.append(record)
        return record

    def check_summary(self) -> None:
        """On ``--resume``: an ``OUT/results.json`` of another run is refused."""
        path = os.path.join(self.out, "results.json")
        if os.path.isfile(path):
            check_same_run(_read_record(path), self.info, path)

    def add(self, record: Dict[str, Any], history: Optional[List[dict]] = None) -> None:
        """Keep one finished seed: its file (with ``history``), ``results.json`` and ``curves.png``."""
        record = {**record, "dataset": self.info["dataset"], "fingerprint": self.info["fingerprint"],
                  "settings": self.header["settings"], "run": self.info, **self.env}
        self.runs.append(record)
        if history is not None:
            self.histories[record["seed"]] = history
        if self.write:
            atomic_write_json(self.seed_file(record["seed"]), {**record, "history": history or []})
            self.summary(complete=False)
            self.curves()

    def curves(self) -> Optional[str]:
        """``OUT/curves.png`` of the seeds kept so far (None without matplotlib or histories)."""
        from .curves import write_curves

        h = self.header
        title = f"{h.get('dataset')}: {h.get('model')}, {h.get('sampler')}, {h.get('strategy')}"
        selected = {r["seed"]: r.get("best_epoch") for r in self.runs}
        return write_curves(os.path.join(self.out, "curves.png"), self.histories, title, selected)

    def summary(self, complete: bool) -> Dict[str, Any]:
        """``results.json``'s content (written when this process writes): means over finished seeds."""
        val_mean, val_std = _mean_std([r.get("val") for r in self.runs])
        test_mean, test_std = _mean_std([r.get("test") for r in self.runs])
        finished = sorted(r["seed"] for r in self.runs)
        out = {**self.header, "fingerprint": self.info["fingerprint"], "run": self.info, **self.env,
               "seeds": self.seeds, "finished_seeds": finished, "complete": complete and finished == self.seeds,
               "val_mean": val_mean, "val_std": val_std, "test_mean": test_mean, "test_std": test_std,
               "runs": sorted(self.runs, key=lambda r: r["seed"])}
        if self.write:
            atomic_write_json(os.path.join(self.out, "results.json"), out)
        return out
