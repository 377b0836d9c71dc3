"""The bundled brain-extraction demo data: complete, consistent geometry, binary masks, small."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import volseg
from volseg.io import Volume, read_volume

DEMO = Path(volseg.__file__).parent / "demo_data"
HELDOUT = ("colin27_deformed", "colin27_reoriented", "colin27_lowres")
PAIRS = [("train", "colin27")] + [("heldout", name) for name in HELDOUT]


def _pair(folder: str, name: str) -> tuple[Volume, Volume]:
    return (
        read_volume(DEMO / folder / f"{name}_t1.nii.gz"),
        read_volume(DEMO / folder / f"{name}_brain.nii.gz"),
    )


@pytest.mark.parametrize(("folder", "name"), PAIRS)
def test_pair_shares_grid_and_mask_is_binary(folder: str, name: str) -> None:
    image, mask = _pair(folder, name)
    assert image.ndim == 3 and image.channels == 1
    assert image.same_grid(mask), image.grid_difference(mask)
    assert mask.array.dtype == np.uint8
    assert set(np.unique(mask.array).tolist()) == {0, 1}
    fraction = float(mask.array.mean())
    assert 0.1 < fraction < 0.4  # a brain inside a head, not an empty or full mask
    assert image.array.min() >= 0
    # The brain is brighter than the background on average: image and mask belong together.
    assert image.array[mask.array > 0].mean() > image.array[mask.array == 0].mean()
    direction = mask.direction_matrix
    np.testing.assert_allclose(direction @ direction.T, np.eye(3), atol=1e-5)


def test_train_pair_is_2mm_with_original_direction() -> None:
    image, _ = _pair("train", "colin27")
    np.testing.assert_allclose(image.spacing, (2.0, 2.0, 2.0), atol=1e-5)
    np.testing.assert_allclose(image.direction, (-1, 0, 0, 0, -1, 0, 0, 0, 1), atol=1e-5)
    assert image.array.dtype == np.uint8


@pytest.mark.parametrize(
    ("name", "spacing"),
    [
        ("colin27_deformed", (1.5, 1.5, 3.0)),
        ("colin27_reoriented", (1.2, 1.2, 2.4)),
        ("colin27_lowres", (3.0, 3.0, 3.0)),
    ],
)
def test_heldout_spacing(name: str, spacing: tuple[float, float, float]) -> None:
    image, _ = _pair("heldout", name)
    np.testing.assert_allclose(image.spacing, spacing, atol=1e-5)


def test_reoriented_is_stored_with_permuted_direction() -> None:
    image, _ = _pair("heldout", "colin27_reoriented")
    direction = image.direction_matrix
    assert not np.allclose(np.abs(direction), np.eye(3))  # axes permuted, not just flipped
    np.testing.assert_allclose(np.abs(direction).sum(axis=0), 1.0, atol=1e-5)  # a permutation
    # Intensity scale differs from the uint8 original.
    assert image.array.max() > 300


def test_heldout_grids_differ_from_train() -> None:
    train, _ = _pair("train", "colin27")
    for name in HELDOUT:
        image, _ = _pair("heldout", name)
        assert not image.same_grid(train), name
    for name in ("colin27_deformed", "colin27_reoriented"):
        image, _ = _pair("heldout", name)
        assert max(image.spacing) / min(image.spacing) == pytest.approx(2.0, abs=1e-4)


def test_bundle_has_licence_and_provenance_and_is_small() -> None:
    assert (DEMO / "LICENSE").read_text(encoding="utf-8").count("Rorden") >= 1
    provenance = (DEMO / "PROVENANCE.md").read_text(encoding="utf-8")
    assert "scripts/make_demo_data.py" in provenance and "mricron-data" in provenance
    total = sum(p.stat().st_size for p in DEMO.rglob("*") if p.is_file())
    assert total < 5 * 1024 * 1024
