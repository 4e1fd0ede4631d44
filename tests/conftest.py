"""Shared fixtures: the offline datasets of ``../shared/data`` (or ``$GNNKIT_SHARED_DATA``).

Tests that need them skip with a reason when they are absent; Planetoid is always used through a
copy in a temporary folder, because PyG writes ``processed/`` beside the raw files.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def shared_data_dir() -> Path:
    """``$GNNKIT_SHARED_DATA`` if set, else ``<repo>/../shared/data``."""
    env = os.environ.get("GNNKIT_SHARED_DATA")
    return Path(env) if env else REPO.parent / "shared" / "data"


@pytest.fixture
def shared_data() -> Path:
    """The shared data folder (read only); skips when it is absent."""
    path = shared_data_dir()
    if not path.is_dir():
        pytest.skip(f"shared data not found at {path} (set GNNKIT_SHARED_DATA)")
    return path


@pytest.fixture
def cora_root(tmp_path: Path) -> Path:
    """A writable copy of ``shared/data/Planetoid``: pass it as ``root`` to load ``"Cora"``."""
    src = shared_data_dir() / "Planetoid"
    if not (src / "Cora" / "raw").is_dir():
        pytest.skip(f"Planetoid Cora raw files not found under {src} (set GNNKIT_SHARED_DATA)")
    dst = tmp_path / "Planetoid"
    shutil.copytree(src, dst)
    return dst
