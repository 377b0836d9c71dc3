"""Metrics: Dice and (95%) Hausdorff distances in mm, checked by hand and by brute force."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from scipy import ndimage

from volseg.metrics import (
    METRICS,
    accuracy,
    aggregate,
    average_surface_distance,
    dice,
    evaluate_case,
    hausdorff,
    hausdorff95,
    hausdorff_distance,
    jaccard,
    precision,
    recall,
    score_masks,
    specificity,
    summarize,
    surface_dice,
    surface_distances,
    surface_voxels,
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


# --- overlap scores by hand, edge cases ------------------------------------------------------


def test_overlap_hand_values() -> None:
    # 4x4: pred 4 voxels, ref 6 voxels, 3 shared -> TP 3, FP 1, FN 3, TN 9
    pred = np.zeros((4, 4), dtype=bool)
    ref = np.zeros((4, 4), dtype=bool)
    pred[0, :4] = True
    ref[0:2, 1:4] = True
    assert jaccard(pred, ref) == pytest.approx(3 / 7)
    assert precision(pred, ref) == pytest.approx(3 / 4)
    assert recall(pred, ref) == pytest.approx(3 / 6)
    assert specificity(pred, ref) == pytest.approx(9 / 10)
    assert accuracy(pred, ref) == pytest.approx(12 / 16)
    row = score_masks(pred, ref, None, ["dice", "jaccard", "precision", "recall"])
    assert row == pytest.approx({"dice": 0.6, "jaccard": 3 / 7, "precision": 0.75, "recall": 0.5})


def test_empty_conventions() -> None:
    empty = np.zeros((5, 5, 5), dtype=bool)
    full = empty.copy()
    full[1:3, 1:3, 1:3] = True
    everything = ~empty
    # both empty: a correct "nothing there"
    both = score_masks(empty, empty, (1.0, 2.0, 3.0), METRICS)
    assert both == {m: (0.0 if m in ("hd", "hd95", "assd") else 1.0) for m in METRICS}
    # prediction empty, reference not
    miss = score_masks(empty, full, None, METRICS)
    assert miss["dice"] == miss["jaccard"] == miss["precision"] == miss["recall"] == 0.0
    assert miss["specificity"] == 1.0 and miss["accuracy"] == pytest.approx(1 - 8 / 125)
    assert miss["hd"] == miss["hd95"] == miss["assd"] == math.inf
    assert miss["surface_dice"] == 0.0
    # reference empty, prediction not: recall has no positives to find and scores 0
    extra = score_masks(full, empty, None, METRICS, empty_distance=373.13)
    assert extra["precision"] == extra["recall"] == extra["dice"] == 0.0
    assert extra["hd95"] == extra["hd"] == extra["assd"] == 373.13
    assert hausdorff_distance(full, empty, None, 95, empty_distance=373.13) == 373.13
    assert average_surface_distance(empty, full) == math.inf
    assert surface_dice(empty, empty, None, 1.0) == 1.0
    # a reference without background: specificity 1 only if the prediction is all foreground
    assert specificity(everything, everything) == 1.0
    assert specificity(full, everything) == 0.0
    with pytest.raises(ValueError, match="unknown metric"):
        score_masks(full, full, None, ["dice", "volume"])
    with pytest.raises(ValueError, match="combine"):
        hausdorff_distance(full, full, None, 95, combine="mean")  # type: ignore[arg-type]


# --- surface distances with known answers ----------------------------------------------------


def brute_force_distances(
    a: np.ndarray, b: np.ndarray, spacing: tuple[float, ...]
) -> tuple[np.ndarray, np.ndarray]:
    """Directed distances from all pairwise distances between eroded-surface voxels."""
    structure = ndimage.generate_binary_structure(a.ndim, 1)
    sa = np.argwhere(a & ~ndimage.binary_erosion(a, structure)) * np.asarray(spacing)
    sb = np.argwhere(b & ~ndimage.binary_erosion(b, structure)) * np.asarray(spacing)
    d = np.sqrt(((sa[:, None, :] - sb[None, :, :]) ** 2).sum(-1))
    return d.min(1), d.min(0)


def edt_distances(
    a: np.ndarray, b: np.ndarray, spacing: tuple[float, ...]
) -> tuple[np.ndarray, np.ndarray]:
    """Directed distances from scipy's exact anisotropic EDT on the union's padded bounding box."""
    structure = ndimage.generate_binary_structure(a.ndim, 1)
    box = tuple(slice(max(int(c.min()) - 1, 0), int(c.max()) + 2) for c in np.nonzero(a | b))
    sa = a & ~ndimage.binary_erosion(a, structure)
    sb = b & ~ndimage.binary_erosion(b, structure)
    to_b = ndimage.distance_transform_edt(~sb[box], sampling=spacing)
    to_a = ndimage.distance_transform_edt(~sa[box], sampling=spacing)
    return to_b[sa[box]], to_a[sb[box]]


def test_slabs_hand_values_all_distance_metrics() -> None:
    # single-voxel slabs 2 voxels apart along axis 0 at 2.5 mm: every distance is 5 mm
    a = np.zeros((10, 12, 12), dtype=bool)
    b = np.zeros_like(a)
    a[4, 2:8, 3:9] = True
    b[6, 2:8, 3:9] = True
    sp = (2.5, 1.0, 0.7)
    assert hausdorff_distance(a, b, sp) == pytest.approx(5.0)
    assert hausdorff_distance(a, b, sp, 95) == pytest.approx(5.0)
    assert hausdorff_distance(a, b, sp, 95, combine="pooled") == pytest.approx(5.0)
    assert average_surface_distance(a, b, sp) == pytest.approx(5.0)
    assert surface_dice(a, b, sp, 4.99) == 0.0
    assert surface_dice(a, b, sp, 5.0) == 1.0


def test_offset_cubes_hd_assd_against_references() -> None:
    a = np.zeros((16, 16, 16), dtype=bool)
    a[4:10, 4:10, 4:10] = True
    sp = (2.5, 1.0, 0.7)
    for axis, shift in ((0, 2), (2, 3)):
        b = np.roll(a, shift, axis=axis)
        # HD by hand: the far faces are `shift` voxels apart along the shifted axis
        assert hausdorff_distance(a, b, sp) == pytest.approx(shift * sp[axis])
        d_ab, d_ba = brute_force_distances(a, b, sp)
        assd = (d_ab.sum() + d_ba.sum()) / (d_ab.size + d_ba.size)
        assert average_surface_distance(a, b, sp) == pytest.approx(assd, rel=1e-12)
        pooled = np.percentile(np.concatenate([d_ab, d_ba]), 95)
        assert hausdorff_distance(a, b, sp, 95, combine="pooled") == pytest.approx(pooled)


def test_concentric_spheres_anisotropic() -> None:
    # balls of radius 6 and 9 mm about one centre, on a 1.0 x 1.5 x 0.8 mm grid: every surface
    # voxel lies within one voxel diagonal of its sphere, so all distances are 3 mm give or take
    # the discretisation (half the diagonal on each side)
    sp = np.array([1.0, 1.5, 0.8])
    grid = np.indices((26, 18, 32)).transpose(1, 2, 3, 0) * sp
    r = np.linalg.norm(grid - np.array([12.5, 12.75, 12.4]), axis=-1)
    inner, outer = r <= 6.0, r <= 9.0
    slack = float(np.linalg.norm(sp))
    sp_t = tuple(float(s) for s in sp)
    for value in (
        hausdorff_distance(inner, outer, sp_t),
        hausdorff_distance(inner, outer, sp_t, 95),
        average_surface_distance(inner, outer, sp_t),
    ):
        assert abs(value - 3.0) <= slack
    d_io, d_oi = brute_force_distances(inner, outer, sp_t)
    assert hausdorff_distance(inner, outer, sp_t) == pytest.approx(max(d_io.max(), d_oi.max()))
    assert average_surface_distance(inner, outer, sp_t) == pytest.approx(
        (d_io.sum() + d_oi.sum()) / (d_io.size + d_oi.size)
    )


@pytest.mark.parametrize("seed", range(4))
def test_surface_distances_equal_brute_force_and_edt(seed: int) -> None:
    rng = np.random.default_rng(100 + seed)
    shape = (8, 9, 10) if seed % 2 == 0 else (13, 11)
    sp = tuple(float(s) for s in rng.uniform(0.4, 3.0, size=len(shape)))
    a, b = random_blob(rng, shape), random_blob(rng, shape)
    b.reshape(-1)[rng.integers(0, b.size, 3)] = True  # speckles far from the blob
    got_ab, got_ba = surface_distances(a, b, sp)
    for ref_ab, ref_ba in (brute_force_distances(a, b, sp), edt_distances(a, b, sp)):
        np.testing.assert_allclose(got_ab, ref_ab, rtol=1e-12)
        np.testing.assert_allclose(got_ba, ref_ba, rtol=1e-12)
    assert len(surface_voxels(a)) == got_ab.size


# --- properties (hypothesis) -----------------------------------------------------------------

masks_3d = hnp.arrays(np.bool_, (4, 5, 6), elements=st.booleans())
spacings = st.tuples(*(st.floats(0.3, 3.0) for _ in range(3)))


@settings(max_examples=40, deadline=None)
@given(a=masks_3d, b=masks_3d, sp=spacings)
def test_properties_symmetry_range_identity(
    a: np.ndarray, b: np.ndarray, sp: tuple[float, float, float]
) -> None:
    ab = score_masks(a, b, sp, METRICS, tolerance=1.0)
    ba = score_masks(b, a, sp, METRICS, tolerance=1.0)
    for name in ("dice", "jaccard", "accuracy", "hd", "hd95", "assd", "surface_dice"):
        assert ab[name] == pytest.approx(ba[name], rel=1e-12), name
    assert ab["precision"] == ba["recall"]
    for name in ("dice", "jaccard", "precision", "recall", "specificity", "accuracy"):
        assert 0.0 <= ab[name] <= 1.0
    assert 0.0 <= ab["surface_dice"] <= 1.0
    assert 0.0 <= ab["assd"] <= ab["hd"]
    assert ab["hd95"] <= ab["hd"]
    if ab["dice"] < 1.0:
        assert ab["jaccard"] == pytest.approx(ab["dice"] / (2 - ab["dice"]))
    same = score_masks(a, a, sp, METRICS, tolerance=0.0)
    assert same == {m: (0.0 if m in ("hd", "hd95", "assd") else 1.0) for m in METRICS}


# --- per label, per region, aggregation ------------------------------------------------------


def test_evaluate_case_metrics_and_brats_regions() -> None:
    ref = np.zeros((6, 6, 6), dtype=np.int64)
    ref[1:5, 1:5, 1:5] = 2  # oedema
    ref[2:4, 2:4, 2:4] = 1  # necrosis
    ref[2, 2, 2] = 4  # enhancing
    pred = ref.copy()
    pred[pred == 4] = 1  # enhancing missed, labelled necrosis
    row = evaluate_case(pred, ref, (1.0, 1.0, 2.0), [], metrics=["dice", "recall"], regions="brats")
    assert list(row) == ["dice_WT", "recall_WT", "dice_TC", "recall_TC", "dice_ET", "recall_ET"]
    assert row["dice_WT"] == 1.0 and row["dice_TC"] == 1.0
    assert row["dice_ET"] == 0.0 and row["recall_ET"] == 0.0
    both = evaluate_case(pred, ref, None, [1, 4], metrics=["dice"], regions="brats")
    assert list(both) == ["dice_1", "dice_4", "dice_WT", "dice_TC", "dice_ET"]
    assert both["dice_1"] == pytest.approx(2 * 7 / 15)


def test_aggregate_mean_std_median() -> None:
    rows = [{"case": "a", "x": 1.0}, {"case": "b", "x": 2.0}, {"case": "c", "x": 10.0}]
    rows.append({"case": "d", "x": math.inf})
    stats = aggregate(rows)["x"]
    assert stats["mean"] == pytest.approx(13 / 3)
    assert stats["median"] == 2.0
    assert stats["std"] == pytest.approx(np.std([1.0, 2.0, 10.0]))
    assert (stats["n"], stats["nonfinite"]) == (3.0, 1.0)
