"""Metrics: Dice and (95%) Hausdorff distances in mm, checked by hand and by brute force."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

from volseg.metrics import (
    dice,
    evaluate_case,
    hausdorff,
    hausdorff95,
    summarize,
    write_metrics_csv,
)


def brute_force_hd(a: np.ndarray, b: np.ndarray, spacing: tuple[float, ...]) -> tuple[float, float]:
    """(HD, HD95) from all pairwise distances between face-connected surface voxels."""

    def surface(m: np.ndarray) -> np.ndarray:
        padded = np.pad(m, 1)
        inner = padded[tuple(slice(1, -1) for _ in range(m.ndim))]
        interior = np.ones_like(m)
        for axis in range(m.ndim):
            for shift in (-1, 1):
                interior &= np.roll(padded, shift, axis=axis)[
                    tuple(slice(1, -1) for _ in range(m.ndim))
                ]
        return inner & ~interior

    pa = np.argwhere(surface(a)) * np.asarray(spacing)
    pb = np.argwhere(surface(b)) * np.asarray(spacing)
    d = np.sqrt(((pa[:, None, :] - pb[None, :, :]) ** 2).sum(-1))
    ab, ba = d.min(1), d.min(0)
    hd = max(ab.max(), ba.max())
    hd95 = max(np.percentile(ab, 95), np.percentile(ba, 95))
    return float(hd), float(hd95)


def random_blob(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    field = ndimage.gaussian_filter(rng.standard_normal(shape), sigma=1.5)
    return field > np.quantile(field, 0.7)


def test_dice_hand_values() -> None:
    pred = np.zeros((4, 4), dtype=np.int64)
    ref = np.zeros((4, 4), dtype=bool)
    pred[0, :4] = 1  # 4 voxels
    ref[0, 1:4] = True  # 6 voxels, 3 shared
    ref[1, 1:4] = True
    assert dice(pred, ref) == pytest.approx(2 * 3 / 10)
    assert dice(ref, ref) == 1.0
    assert dice(pred, ~ref & (pred == 0)) == 0.0


def test_offset_slabs_anisotropic() -> None:
    # single-voxel-thick slabs 2 voxels apart along axis 0 (spacing 2.5 mm): every surface
    # voxel is exactly 5 mm from the other surface, so HD = HD95 = 5.0
    a = np.zeros((10, 12, 12), dtype=bool)
    b = np.zeros_like(a)
    a[4, 2:8, 3:9] = True
    b[6, 2:8, 3:9] = True
    assert hausdorff(a, b, (2.5, 1.0, 1.0)) == pytest.approx(5.0)
    assert hausdorff95(a, b, (2.5, 1.0, 1.0)) == pytest.approx(5.0)


def test_offset_cubes_anisotropic() -> None:
    a = np.zeros((16, 16, 16), dtype=bool)
    a[4:10, 4:10, 4:10] = True
    b = np.roll(a, 2, axis=0)
    spacing = (2.5, 1.0, 0.7)
    assert hausdorff(a, b, spacing) == pytest.approx(5.0)
    _, hd95 = brute_force_hd(a, b, spacing)
    assert hausdorff95(a, b, spacing) == pytest.approx(hd95)
    # the spacing is in array order: the same shift along axis 2 (0.7 mm) is 1.4 mm
    c = np.roll(a, 2, axis=2)
    assert hausdorff(a, c, spacing) == pytest.approx(1.4)


def test_edge_cases() -> None:
    empty = np.zeros((5, 5, 5), dtype=bool)
    full = empty.copy()
    full[1:3, 1:3, 1:3] = True
    assert dice(empty, empty) == 1.0
    assert hausdorff95(empty, empty, (1.0, 1.0, 1.0)) == 0.0
    assert hausdorff(empty, empty) == 0.0
    assert dice(full, empty) == 0.0
    assert hausdorff95(full, empty, (1.0, 1.0, 1.0)) == math.inf
    assert hausdorff(empty, full) == math.inf
    assert hausdorff95(full, full) == 0.0
    with pytest.raises(ValueError):
        hausdorff95(full, full, (1.0, 1.0))
    with pytest.raises(ValueError):
        dice(full, full[0])


@pytest.mark.parametrize("seed", range(6))
def test_brute_force_random_masks(seed: int) -> None:
    rng = np.random.default_rng(seed)
    shape = (9, 11, 10) if seed % 2 == 0 else (17, 15)
    spacing = tuple(float(s) for s in rng.uniform(0.5, 3.0, size=len(shape)))
    a, b = random_blob(rng, shape), random_blob(rng, shape)
    hd, hd95 = brute_force_hd(a, b, spacing)
    assert hausdorff(a, b, spacing) == pytest.approx(hd, rel=1e-9)
    assert hausdorff95(a, b, spacing) == pytest.approx(hd95, rel=1e-9)
    assert hausdorff(b, a, spacing) == pytest.approx(hd, rel=1e-9)


def test_mask_touching_border() -> None:
    a = np.zeros((6, 6), dtype=bool)
    b = np.zeros_like(a)
    a[:, :3] = True  # touches three borders
    b[:, :5] = True
    hd, hd95 = brute_force_hd(a, b, (1.0, 2.0))
    assert hausdorff(a, b, (1.0, 2.0)) == pytest.approx(hd)
    assert hausdorff95(a, b, (1.0, 2.0)) == pytest.approx(hd95)


def test_evaluate_case() -> None:
    ref = np.zeros((8, 8, 8), dtype=np.int64)
    ref[1:4, 1:4, 1:4] = 1
    ref[5:7, 5:7, 5:7] = 2
    pred = ref.copy()
    pred[pred == 2] = 0
    row = evaluate_case(pred, ref, (1.0, 1.0, 1.0), labels=[0, 1, 2, 3])
    assert set(row) == {"dice_1", "hd95_1", "dice_2", "hd95_2", "dice_3", "hd95_3"}
    assert row["dice_1"] == 1.0 and row["hd95_1"] == 0.0
    assert row["dice_2"] == 0.0 and row["hd95_2"] == math.inf
    assert row["dice_3"] == 1.0 and row["hd95_3"] == 0.0


def test_summarize_ignores_but_counts_nonfinite() -> None:
    rows = [
        {"case": "a", "dice_1": 0.8, "hd95_1": 2.0},
        {"case": "b", "dice_1": 0.6, "hd95_1": math.inf},
        {"case": "c", "dice_1": 1.0, "hd95_1": 4.0},
    ]
    s = summarize(rows)
    assert s["dice_1"] == pytest.approx((0.8, np.std([0.8, 0.6, 1.0])))
    assert s["hd95_1"] == pytest.approx((3.0, 1.0))
    assert s["hd95_1_nonfinite"] == (1.0, 3.0)
    assert "dice_1_nonfinite" not in s and "case" not in s
    assert all(math.isnan(v) for v in summarize([{"x": math.nan}])["x"])


def test_write_metrics_csv(tmp_path: Path) -> None:
    rows = [
        {"case": "a", "dice_1": 0.5, "hd95_1": 1.25},
        {"case": "b", "dice_1": 0.75, "hd95_1": math.inf},
    ]
    path = write_metrics_csv(rows, summarize(rows), tmp_path / "out" / "metrics.csv")
    with path.open() as f:
        table = list(csv.reader(f))
    assert table[0] == ["case", "dice_1", "hd95_1"]
    assert [r[0] for r in table[1:]] == ["a", "b", "mean", "std", "median"]
    assert float(table[2][2]) == math.inf
    assert float(table[3][1]) == pytest.approx(0.625)
    assert float(table[3][2]) == pytest.approx(1.25)
    assert float(table[4][1]) == pytest.approx(0.125)
    assert float(table[5][1]) == pytest.approx(0.625) and float(table[5][2]) == 1.25
    assert sorted(p.name for p in path.parent.iterdir()) == ["metrics.csv"]
