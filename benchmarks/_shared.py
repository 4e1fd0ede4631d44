"""Helpers shared by the benchmark scripts (run as ``python benchmarks/NAME.py``)."""
from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import Optional

SHARED_PLANETOID = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "Planetoid"


def planetoid_root(root: Optional[str], work: Path) -> str:
    """``root`` itself, or a copy of ``../shared/data/Planetoid`` under ``work`` (Planetoid writes
    ``processed/`` under its root, so the shared folder is never used in place); exits with a
    'skipped' line when neither exists."""
    if root is not None:
        return root
    if not SHARED_PLANETOID.is_dir():
        sys.exit(f"skipped: {SHARED_PLANETOID} is absent; pass --root")
    copy = work / "Planetoid"
    shutil.copytree(SHARED_PLANETOID, copy)
    return str(copy)
