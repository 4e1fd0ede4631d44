"""``OUT/curves.png``: the figures of every evaluation of every seed, one panel per metric.

A history is the Trainer's ``result["history"]``: one dict per evaluation, ``{"epoch", "<split>_<metric>"...,
"seconds"}`` (split: train, val, test; metric: accuracy, loss, auc...). Each metric gets a panel with
epochs on x and one line per (split, seed) (one colour per split; the selected epoch of each seed
marked on its validation line). matplotlib is optional: without it :func:`write_curves` returns
``None`` and writes nothing (the run goes on). The figure is drawn on a canvas of its own (no global
backend, no pyplot state) and written atomically.
A module without ``NAME`` (the CLI lists only modules that define one).
"""
from __future__ import annotations

import io
import logging
import math
from typing import Dict, List, Optional

from ..fileio import atomic_write_bytes

log = logging.getLogger("gnnkit")
SPLITS = ("train", "val", "test")
COLOURS = {"train": "tab:blue", "val": "tab:orange", "test": "tab:green"}


def _series(histories: Dict[int, List[dict]]) -> Dict[str, Dict[tuple, tuple]]:
    """``{metric: {(split, seed): (epochs, values)}}`` of the finite numbers in the histories."""
    out: Dict[str, Dict[tuple, tuple]] = {}
    for seed, history in sorted(histories.items()):
        for row in history:
            epoch = row.get("epoch")
            for key, value in row.items():
                split, _, metric = key.partition("_")
                if split not in SPLITS or not metric or not isinstance(value, (int, float)) or not math.isfinite(value):
                    continue
                xs, ys = out.setdefault(metric, {}).setdefault((split, seed), ([], []))
                xs.append(epoch)
                ys.append(value)
    return out


def _canvas():
    """A matplotlib Figure on its own Agg canvas, or None without matplotlib."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        return None
    fig = Figure()
    FigureCanvasAgg(fig)
    return fig


def write_curves(path: str, histories: Dict[int, List[dict]], title: str = "",
                 selected: Optional[Dict[int, int]] = None) -> Optional[str]:
    """Draw ``histories`` (``{seed: history}``) to ``path``; returns ``path``, or ``None`` when matplotlib
    is absent or there is nothing to draw. ``selected``: ``{seed: best_epoch}`` to mark."""
    series = _series(histories)
    fig = _canvas() if series else None
    if fig is None:
        if series:
            log.debug("curves.png skipped: matplotlib is not installed")
        return None
    metrics = sorted(series, key=lambda m: (m != "loss", m))
    fig.set_size_inches(5.0 * len(metrics), 3.6)
    alpha = 1.0 if len(histories) == 1 else 0.45
    for i, metric in enumerate(metrics):
        ax = fig.add_subplot(1, len(metrics), i + 1)
        labelled = set()
        for (split, seed), (xs, ys) in sorted(series[metric].items(), key=lambda kv: (SPLITS.index(kv[0][0]), kv[0][1])):
            label = split if split not in labelled else None
            labelled.add(split)
            ax.plot(xs, ys, color=COLOURS[split], alpha=alpha, linewidth=1.2, label=label)
            best = (selected or {}).get(seed)
            if split == "val" and best in xs:
                ax.plot([best], [ys[xs.index(best)]], marker="o", color=COLOURS[split], markersize=4)
        ax.set_xlabel("epoch")
        ax.set_ylabel(metric)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    seeds = sorted(histories)
    fig.suptitle(f"{title}  ({len(seeds)} seed{'s' if len(seeds) != 1 else ''}; dots: selected epoch)", fontsize=9)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    atomic_write_bytes(path, buf.getvalue())
    return path
