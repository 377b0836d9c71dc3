"""Fixtures of the report tests: tiny prediction, reference and scan folders."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from volseg.data.synthetic import make_phantom
from volseg.io import write_volume


def write_case_folders(root: Path, cases: int = 5) -> tuple[Path, Path, Path]:
    """``images/``, ``refs/`` and ``preds/`` of ``cases`` phantoms (two labels each).

    Predictions are the reference shifted by 0..cases-1 voxels along x, so Dice falls case by
    case; the last case also gets a stray blob (a second component and a larger volume).
    """
    images, refs, preds = root / "images", root / "refs", root / "preds"
    for i in range(cases):
        image, label = make_phantom(seed=i, nested=True)
        pred = np.roll(label.array, i, axis=3)
        if i == cases - 1:
            pred = pred.copy()
            pred[0, 1:5, 1:5, 1:9] = 1
        write_volume(image, images / f"case{i}_0000.nii.gz")
        write_volume(label, refs / f"case{i}.nii.gz")
        write_volume(label.with_array(pred), preds / f"case{i}.nii.gz")
    return images, refs, preds


@pytest.fixture(scope="session")
def case_folders(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """Session-wide ``(images, refs, preds)`` folders of five phantom cases (read-only)."""
    return write_case_folders(tmp_path_factory.mktemp("report_cases"))
