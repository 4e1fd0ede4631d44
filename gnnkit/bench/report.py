"""What ``gnnkit bench`` writes: ``results.csv``, ``summary.md`` and two PNG plots.

- ``results.csv``: one row per run of the grid (finished, failed, not run yet, or on a skipped
  dataset), columns :data:`CSV_COLUMNS`.
- ``summary.md``: per (dataset, method) cell, the metric its runs report (``accuracy``, ``auc``,
  OGB's ``hits@50`` ...), mean ± sample std over the finished seeds of the validation and test
  metric (the best test mean of each dataset and metric in bold), the other test figures at the
  selected epoch (the link task's AP beside AUC), mean epochs, training
  seconds per epoch, training seconds, the child process's peak RSS and the escape's MILP calls;
  then the failures (with their errors) and the skipped datasets (with their reasons).
- ``val_vs_time.png``: validation metric against training wall time, one panel per dataset, one
  colour per method, one line per seed. ``memory.png``: mean peak RSS per method (error bar: std),
  one panel per dataset.

All writes are atomic (:mod:`gnnkit.fileio`). matplotlib (the ``bench`` extra) is optional: without it
the plots are skipped with a note and the tables are still written.
"""
from __future__ import annotations

import csv
import io
import math
import os
import statistics
from pathlib import Path
from typing import Dict, List, Optional

from ..fileio import atomic_write, atomic_write_bytes

CSV_COLUMNS = ["dataset", "method", "seed", "status", "val", "test", "epochs", "seconds", "seconds_per_epoch",
               "peak_rss_mb", "wall_seconds", "escape_calls", "error", "metric"]  # metric last: positions kept


PLOTS = ("val_vs_time.png", "memory.png")
NO_PLOTS = "plots skipped: matplotlib is not installed (pip install 'gnnkit[bench]')"


def matplotlib_pyplot():
    """``matplotlib.pyplot`` on the Agg backend, or None when matplotlib is not installed."""
    try:
        import matplotlib
    except ImportError:
        return None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _rows(grid, records: Dict[str, dict]) -> List[dict]:
    rows = []
    for ds in grid.datasets:
        if ds.skipped:
            rows += [{"dataset": ds.label, "method": m, "seed": s, "status": "skipped", "error": ds.skipped}
                     for s in range(grid.seeds) for m in grid.methods]
    for run in grid.runs:
        rec = records.get(run.key)
        if rec is None:
            rows.append({"dataset": run.dataset, "method": run.method, "seed": run.seed, "status": "pending"})
        else:
            rows.append({k: rec.get(k) for k in CSV_COLUMNS})
    return rows


def write_csv(path: Path, grid, records: Dict[str, dict]) -> None:
    buf = io.StringIO(newline="")
    w = csv.DictWriter(buf, fieldnames=CSV_COLUMNS, extrasaction="ignore")
    w.writeheader()
    for row in _rows(grid, records):
        w.writerow({k: ("" if row.get(k) is None else row.get(k)) for k in CSV_COLUMNS})
    atomic_write_bytes(str(path), buf.getvalue().encode())


def _stats(values) -> tuple:
    vals = [float(v) for v in values if v is not None and not math.isnan(float(v))]
    if not vals:
        return None, None
    return statistics.fmean(vals), (statistics.stdev(vals) if len(vals) > 1 else 0.0)


def _pm(mean, std, digits=4) -> str:
    return "n/a" if mean is None else f"{mean:.{digits}f} ± {std:.{digits}f}"


def _num(mean, digits) -> str:
    return "n/a" if mean is None else f"{mean:.{digits}f}"


def cell_records(grid, records: Dict[str, dict]) -> Dict[tuple, List[dict]]:
    """``{(dataset, method): [records of its runs, in seed order]}`` for the non-skipped datasets."""
    cells: Dict[tuple, List[dict]] = {(d.label, m): [] for d in grid.datasets if not d.skipped for m in grid.methods}
    for run in grid.runs:
        if run.key in records:
            cells[(run.dataset, run.method)].append(records[run.key])
    return cells


def _metric_of(recs: List[dict]) -> str:
    """The metric the runs report (``-`` when none finished)."""
    return next((r.get("metric") for r in recs if r.get("metric")), "-")


def _other_figures(ok: List[dict], metric: str) -> str:
    """``name mean ± std`` of each test figure at the selected epoch besides ``metric``."""
    names = sorted({k for r in ok for k in (r.get("figures") or {}) if k.startswith("test_")} - {f"test_{metric}"})
    parts = [f"{k[5:]} {_pm(*_stats((r.get('figures') or {}).get(k) for r in ok))}" for k in names]
    return "; ".join(parts) or "-"


def summary_markdown(grid, records: Dict[str, dict], header: Optional[str] = None) -> str:
    cells = cell_records(grid, records)
    lines = ["# gnnkit bench", ""] + ([header, ""] if header else [])
    lines += ["Mean ± std over seeds of each row's metric (validation: the selected epoch; test: at that epoch); "
              "best test per dataset and metric in bold; other test figures at the selected epoch beside it. "
              "Seconds: training time; RSS: the run's peak resident memory.", "",
              "| dataset | method | metric | val | test | other test figures | runs ok | epochs | s/epoch | train s "
              "| peak RSS MB | escape calls |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for ds in grid.datasets:
        if ds.skipped:
            continue
        stats = {}
        for m in grid.methods:
            ok = [r for r in cells[(ds.label, m)] if r.get("status") == "ok"]
            stats[m] = (ok, _stats(r["val"] for r in ok), _stats(r["test"] for r in ok), _metric_of(ok))
        best = {}
        for ok, _, test, metric in stats.values():
            if test[0] is not None:
                best[metric] = max(best.get(metric, test[0]), test[0])
        for m in grid.methods:
            ok, val, test, metric = stats[m]
            recs = cells[(ds.label, m)]
            test_txt = _pm(*test)
            if test[0] is not None and test[0] == best.get(metric):
                test_txt = f"**{test_txt}**"
            esc = [r.get("escape_calls") for r in ok if r.get("escape_calls") is not None]
            lines.append("| " + " | ".join([
                ds.label, m, metric, _pm(*val), test_txt, _other_figures(ok, metric), f"{len(ok)}/{grid.seeds}" + (
                    f" ({len(recs) - len(ok)} failed)" if len(recs) > len(ok) else ""),
                _num(_stats(r.get("epochs") for r in ok)[0], 1),
                _num(_stats(r.get("seconds_per_epoch") for r in ok)[0], 3),
                _num(_stats(r.get("seconds") for r in ok)[0], 1),
                _num(_stats(r.get("peak_rss_mb") for r in ok)[0], 0),
                _num(statistics.fmean(esc), 1) if esc else "-"]) + " |")
    failed = [r for r in records.values() if r.get("status") == "failed"]
    if failed:
        lines += ["", "Failed runs:", ""]
        lines += [f"- {r['dataset']}/{r['method']}/seed-{r['seed']}: `{r.get('error', '')}`" for r in failed]
    pending = [r for r in grid.runs if r.key not in records]
    if pending:
        lines += ["", f"Not run yet: {len(pending)} run(s) ({', '.join(r.key for r in pending[:6])}"
                  f"{', ...' if len(pending) > 6 else ''})."]
    skipped = [d for d in grid.datasets if d.skipped]
    if skipped:
        lines += ["", "Skipped datasets:", ""] + [f"- {d.label}: {d.skipped}" for d in skipped]
    return "\n".join(lines) + "\n"


def write_text(path: Path, text: str) -> None:
    atomic_write_bytes(str(path), text.encode())


def _panels(plt, n: int):
    cols = min(3, max(1, n))
    rows = (max(1, n) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(5.2 * cols, 3.9 * rows), squeeze=False)
    flat = [a for row in axes for a in row]
    for ax in flat[n:]:
        ax.axis("off")
    return fig, flat


def _save(fig, plt, path: Path) -> None:
    fig.tight_layout()
    try:
        atomic_write(str(path), lambda f: fig.savefig(f, dpi=110, format="png"))
    finally:
        plt.close(fig)


def write_plots(out: Path, grid, records: Dict[str, dict]) -> List[Path]:
    """``val_vs_time.png`` and ``memory.png`` under ``out`` (none without matplotlib)."""
    plt = matplotlib_pyplot()
    if plt is None:
        return []
    cells = cell_records(grid, records)
    datasets = [d for d in grid.datasets if not d.skipped]
    colors = {m: plt.get_cmap("tab10")(i % 10) for i, m in enumerate(grid.methods)}

    fig, axes = _panels(plt, len(datasets))
    for ax, ds in zip(axes, datasets):
        for m in grid.methods:
            shown = False
            for r in cells[(ds.label, m)]:
                curve = r.get("curve") or {}
                if r.get("status") == "ok" and curve.get("seconds"):
                    ax.plot(curve["seconds"], curve["val"], color=colors[m], alpha=0.8, lw=1.2,
                            label=None if shown else m)
                    shown = True
        metrics = sorted({r.get("metric") for m in grid.methods for r in cells[(ds.label, m)] if r.get("metric")})
        ax.set_title(ds.label)
        ax.set_xlabel("training time (s)")
        ax.set_ylabel(f"validation {' / '.join(metrics) or 'metric'}")
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
        else:
            ax.text(0.5, 0.5, "no finished runs", ha="center", va="center", transform=ax.transAxes)
    if not datasets:
        axes[0].axis("on")
        axes[0].text(0.5, 0.5, "no dataset ran", ha="center", va="center")
    _save(fig, plt, out / "val_vs_time.png")

    fig, axes = _panels(plt, len(datasets))
    for ax, ds in zip(axes, datasets):
        means, stds = [], []
        for m in grid.methods:
            mean, std = _stats(r.get("peak_rss_mb") for r in cells[(ds.label, m)] if r.get("status") == "ok")
            means.append(0.0 if mean is None else mean)
            stds.append(0.0 if std is None else std)
        bars = ax.bar(range(len(grid.methods)), means, yerr=stds, color=[colors[m] for m in grid.methods], capsize=3)
        ax.bar_label(bars, labels=[f"{v:.0f}" if v else "" for v in means], fontsize=8, padding=2)
        ax.set_xticks(range(len(grid.methods)))
        ax.set_xticklabels(grid.methods, rotation=30, ha="right")
        ax.set_title(ds.label)
        ax.set_ylabel("peak RSS (MB)")
        ax.grid(alpha=0.3, axis="y")
    if not datasets:
        axes[0].axis("on")
        axes[0].text(0.5, 0.5, "no dataset ran", ha="center", va="center")
    _save(fig, plt, out / "memory.png")
    return [out / "val_vs_time.png", out / "memory.png"]


def write_outputs(out: Path, grid, records: Dict[str, dict], header: Optional[str] = None) -> str:
    """Write the CSV, the markdown summary and the plots; returns the summary's text (with a note
    when the plots were skipped)."""
    write_csv(out / "results.csv", grid, records)
    text = summary_markdown(grid, records, header)
    if matplotlib_pyplot() is None:
        text = f"{text.rstrip()}\n\n{NO_PLOTS}\n"
    write_text(out / "summary.md", text)
    write_plots(out, grid, records)
    return text
