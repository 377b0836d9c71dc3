"""Shared fixtures: tiny anisotropic volumes with a non-identity direction."""

from __future__ import annotations

from pathlib import Path

import pytest

from volseg.data.synthetic import make_phantom
from volseg.io import Volume

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture
def phantom() -> tuple[Volume, Volume]:
    """A 3-D image + label pair, 20x24x28 voxels, spacing (0.9, 1.1, 2.0), oblique direction."""
    return make_phantom()


@pytest.fixture
def shared_data() -> Path:
    """``../shared/data`` beside the clone; tests using it skip (saying why) without it."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data folder {SHARED_DATA} not present (it sits beside the clone in CI)")
    return SHARED_DATA
