"""Running a ``gnnkit bench`` grid: one ``python -m gnnkit train`` process per run.

A run's process writes into its folder (``--out RUNDIR --log-dir RUNDIR/log``, stdout and stderr to
``RUNDIR/stdout.log`` and ``RUNDIR/stderr.log``). Once it has ended, its ``record.json`` is written
atomically: status ``ok`` with the figures of ``RUNDIR/results.json``, the validation curve of
``RUNDIR/log/seed-K/metrics.csv`` and that file's other figures at the selected epoch (``figures``), or status ``failed`` with the last line of its stderr. A run
stopped by an interruption gets no record, so the next invocation starts it again.

Interruption (Ctrl-C, SIGTERM): the live children get SIGINT (SIGKILL after a grace period), no
new run starts, and :func:`run_grid` returns ``interrupted=True``.
"""
from __future__ import annotations

import concurrent.futures as futures
import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from ..fileio import atomic_write_json
from .grid import Run, load_record

GRACE_SECONDS = 20.0


def _last_line(path: Path) -> str:
    try:
        lines = [ln.strip() for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return ""
    return lines[-1][:500] if lines else ""


def _curve(path: Path, metric: str) -> Dict[str, list]:
    """``seconds`` and the validation metric of each evaluation in a ``metrics.csv``."""
    if not path.is_file():
        return {"seconds": [], "val": []}
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    cols = rows[0].keys() if rows else []
    key = f"val_{metric}" if f"val_{metric}" in cols else next(
        (c for c in cols if c.startswith("val_") and not c.endswith("loss")), None)
    seconds, val = [], []
    for r in rows:
        try:
            s, v = float(r["seconds"]), float(r[key]) if key else float("nan")
        except (KeyError, TypeError, ValueError):
            continue
        seconds.append(s)
        val.append(v)
    return {"seconds": seconds, "val": val}


def _selected_figures(path: Path, best_epoch) -> Dict[str, float]:
    """The ``val_*``/``test_*`` figures (losses left out) of the ``metrics.csv`` row of the selected
    epoch ``best_epoch``: what a task reports beside its metric (the link task's AP beside AUC)."""
    if best_epoch is None or not path.is_file():
        return {}
    with open(path, newline="") as f:
        row = next((r for r in csv.DictReader(f) if r.get("epoch") == str(best_epoch)), None)
    out = {}
    for key, value in (row or {}).items():
        if key and key.startswith(("val_", "test_")) and not key.endswith("_loss"):
            try:
                out[key] = float(value)
            except (TypeError, ValueError):
                continue
    return out


def _record(run: Run, rc: int, wall: float, peak_mb: float) -> dict:
    base = {"dataset": run.dataset, "method": run.method, "seed": run.seed, "hash": run.hash,
            "argv": run.argv, "returncode": rc, "wall_seconds": round(wall, 3), "peak_rss_mb": round(peak_mb, 1)}
    results = run.dir / "results.json"
    if rc != 0 or not results.is_file():
        err = _last_line(run.dir / "stderr.log") or (f"killed by signal {-rc}" if rc < 0 else f"exit status {rc}")
        if rc == -signal.SIGKILL:
            err = f"killed by SIGKILL (out of memory?); last stderr line: {err}"
        return {**base, "status": "failed", "error": err}
    summary = json.loads(results.read_text())
    res = summary["runs"][0]
    if "folds" in summary:  # a cross-validated graph run: its figure is the mean over the folds
        folds = summary["runs"]
        res = {"val": summary.get("val_mean"), "test": summary.get("test_mean"),
               "epochs": sum(int(r.get("epochs") or 0) for r in folds),
               "seconds": sum(float(r.get("seconds") or 0.0) for r in folds)}
    escape = res.get("escape")
    epochs = int(res.get("epochs") or 0)
    return {**base, "status": "ok", "metric": summary.get("metric"), "val": res.get("val"), "test": res.get("test"),
            "epochs": epochs, "best_epoch": res.get("best_epoch"), "seconds": res.get("seconds"),
            "seconds_per_epoch": (res["seconds"] / epochs) if epochs and res.get("seconds") is not None else None,
            "peak_rss_mb_inside": res.get("peak_rss_mb"),
            "escape_calls": len(escape) if escape is not None else None,
            "escape_accepted": sum(bool(r.get("accepted")) for r in escape) if escape is not None else None,
            "curve": _curve(run.dir / "log" / f"seed-{run.seed}" / "metrics.csv", summary.get("metric") or ""),
            "figures": _selected_figures(run.dir / "log" / f"seed-{run.seed}" / "metrics.csv", res.get("best_epoch"))}


class Executor:
    """Runs :class:`Run` s in child processes, ``jobs`` at a time, and can stop them all."""

    def __init__(self, out: Path, jobs: int = 1):
        self.out, self.jobs = out, jobs
        self.stopping = threading.Event()
        self._lock = threading.Lock()
        self._live: Dict[int, subprocess.Popen] = {}

    def _env(self) -> dict:
        env = dict(os.environ)
        if self.jobs > 1 and "OMP_NUM_THREADS" not in env:
            env["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // self.jobs))
        return env

    def launch(self, run: Run) -> Optional[dict]:
        """Run one; its record (also written to ``record.json``), or None when interrupted."""
        if self.stopping.is_set():
            return None
        if run.dir.exists():
            shutil.rmtree(run.dir)  # leftovers of an interrupted attempt
        run.dir.mkdir(parents=True)
        cmd = [sys.executable, "-m", "gnnkit", "train", *run.argv, "--seeds", "1", "--seed-start", str(run.seed),
               "--out", str(run.dir), "--log-dir", str(run.dir / "log"), "--no-progress"]
        with self._lock:
            with open(self.out / "launches.log", "a") as log:
                log.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')}\t{run.key}\n")
        start = time.perf_counter()
        with open(run.dir / "stdout.log", "wb") as so, open(run.dir / "stderr.log", "wb") as se:
            with self._lock:
                if self.stopping.is_set():
                    return None
                proc = subprocess.Popen(cmd, stdout=so, stderr=se, stdin=subprocess.DEVNULL, env=self._env())
                self._live[proc.pid] = proc
            _, status, usage = os.wait4(proc.pid, 0)
            with self._lock:
                proc.returncode = os.waitstatus_to_exitcode(status)
                del self._live[proc.pid]
        wall = time.perf_counter() - start
        rc = proc.returncode
        if self.stopping.is_set() or rc in (130, -signal.SIGINT):
            return None  # interrupted: no record, the next invocation reruns it
        try:
            record = _record(run, rc, wall, usage.ru_maxrss / 1024.0)
        except (OSError, ValueError, KeyError, IndexError, TypeError) as exc:  # unreadable output
            record = {"dataset": run.dataset, "method": run.method, "seed": run.seed, "hash": run.hash,
                      "argv": run.argv, "returncode": rc, "wall_seconds": round(wall, 3), "status": "failed",
                      "peak_rss_mb": round(usage.ru_maxrss / 1024.0, 1),
                      "error": f"unreadable results.json: {type(exc).__name__}: {exc}"}
        atomic_write_json(str(run.dir / "record.json"), record)
        return record

    def stop(self) -> None:
        """SIGINT to every live child; SIGKILL to those still alive after :data:`GRACE_SECONDS`."""
        self.stopping.set()
        with self._lock:
            procs = list(self._live.values())
            for p in procs:
                p.send_signal(signal.SIGINT)
        deadline = time.monotonic() + GRACE_SECONDS
        while time.monotonic() < deadline:
            with self._lock:
                if not self._live:
                    return
            time.sleep(0.05)
        with self._lock:
            for p in self._live.values():
                p.kill()


def _pending(runs: List[Run], retry_failed: bool) -> Tuple[Dict[str, dict], List[Run]]:
    """The records of finished runs, and the runs to launch (no record, or failed with ``retry_failed``)."""
    records: Dict[str, dict] = {}
    todo: List[Run] = []
    for run in runs:
        rec = load_record(run)
        if rec is not None and not (retry_failed and rec.get("status") == "failed"):
            records[run.key] = rec
        else:
            todo.append(run)
    return records, todo


def _drive(todo: List[Run], executor: "Executor", pool, jobs: int, records: Dict[str, dict], bar) -> None:
    """Launch ``todo`` ``jobs`` at a time until done; KeyboardInterrupt when a child was interrupted
    (the caller stops the executor before shutting ``pool`` down, so live children end promptly)."""
    queue = iter(todo)
    live: Dict[futures.Future, Run] = {}

    def submit() -> None:
        run = next(queue, None)
        if run is not None:
            live[pool.submit(executor.launch, run)] = run

    for _ in range(max(1, jobs)):
        submit()
    shown = None
    while live:
        now = ", ".join(r.key for r in live.values())
        if now != shown:
            bar.set_postfix_str(now, refresh=True)
            shown = now
        done, _ = futures.wait(list(live), timeout=0.5, return_when=futures.FIRST_COMPLETED)
        for fut in done:
            run = live.pop(fut)
            record = fut.result()
            if record is None:  # a child ended by an interruption: stop the grid
                raise KeyboardInterrupt
            records[run.key] = record
            if record["status"] != "ok":
                bar.write(f"gnnkit bench: {run.key} failed: {record['error']}")
            bar.update(1)
            submit()


def run_grid(runs: List[Run], out: Path, jobs: int = 1, progress: bool = True,
             retry_failed: bool = False) -> Tuple[Dict[str, dict], bool]:
    """Run every run without a record (and failed ones with ``retry_failed``).

    Returns ``({run.key: record}, interrupted)`` with the records of all finished runs."""
    from tqdm.auto import tqdm

    records, todo = _pending(runs, retry_failed)
    out.mkdir(parents=True, exist_ok=True)
    executor = Executor(out, jobs)
    bar = tqdm(total=len(runs), initial=len(records), unit="run", desc="bench", disable=not progress,
               dynamic_ncols=True)
    previous = signal.getsignal(signal.SIGTERM)

    def _term(signum, frame):
        raise KeyboardInterrupt

    in_main = threading.current_thread() is threading.main_thread()
    if in_main:
        signal.signal(signal.SIGTERM, _term)
    interrupted = False
    pool = futures.ThreadPoolExecutor(max_workers=max(1, jobs))
    try:
        _drive(todo, executor, pool, jobs, records, bar)
    except KeyboardInterrupt:
        interrupted = True
        executor.stop()
    finally:
        pool.shutdown(wait=True)
        bar.close()
        if in_main:
            signal.signal(signal.SIGTERM, previous)
    return records, interrupted or executor.stopping.is_set()
