"""The surfel convention: DeepMind surface-distance's published case values, re-created by hand,
and agreement with the ``surface-distance`` package (``bench``/``dev`` extra) where installed."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import ndimage

from volseg.metrics import (
    average_surface_distance,
    hausdorff_distance,
    score_masks,
    surface_dice,
)
from volseg.metrics.surfels import area_table, surfel_distances, weighted_percentile


def _all(pred: np.ndarray, ref: np.ndarray, sp: tuple[float, ...]) -> dict[str, float]:
    return score_masks(pred, ref, sp, ["hd", "hd95", "assd", "surface_dice"], convention="surfel")


def test_two_pixels_2mm_apart_2d() -> None:
    """DeepMind's 2-D case: pixels (50, 70) and (50, 72) at spacing (2, 1): four contour pieces
    of length sqrt(2^2 + 1^2) / 2 each, two 1 mm and two 2 mm from the other contour."""
    gt, pred = np.zeros((128, 128), bool), np.zeros((128, 128), bool)
    gt[50, 70] = pred[50, 72] = True
    diag = 0.5 * math.sqrt(5.0)
    d_pr, d_rp, a_p, a_r = surfel_distances(pred, gt, np.array([2.0, 1.0]))
    np.testing.assert_allclose(np.sort(d_pr), [1, 1, 2, 2], atol=1e-12)
    np.testing.assert_allclose(np.sort(d_rp), [1, 1, 2, 2], atol=1e-12)
    np.testing.assert_allclose(np.concatenate([a_p, a_r]), [diag] * 8, atol=1e-12)
    got = _all(pred, gt, (2.0, 1.0))
    want = {"hd": 2.0, "hd95": 2.0, "assd": 1.5, "surface_dice": 0.5}
    assert got == pytest.approx(want, abs=1e-6)
    assert surface_dice(pred, gt, (2.0, 1.0), 1.0) == 0.0  # voxel convention: 2 mm apart


def test_two_pixels_2mm_apart_3d() -> None:
    """DeepMind's 3-D case at spacing (3, 2, 1): eight corner triangles of one area each, four
    1 mm and four 2 mm from the other voxel's."""
    gt, pred = np.zeros((128, 128, 128), bool), np.zeros((128, 128, 128), bool)
    gt[50, 60, 70] = pred[50, 60, 72] = True
    got = _all(pred, gt, (3.0, 2.0, 1.0))
    want = {"hd": 2.0, "hd95": 2.0, "assd": 1.5, "surface_dice": 0.5}
    assert got == pytest.approx(want, abs=1e-6)
    # each corner triangle: area vector (s1 s2, s0 s2, s0 s1) / 8 = (2, 3, 6) / 8 -> 7/8 mm^2
    _, _, a_p, _ = surfel_distances(pred, gt, np.array([3.0, 2.0, 1.0]))
    np.testing.assert_allclose(a_p, [7 / 8] * 8, atol=1e-12)


def test_two_squares_shifted_by_one_pixel() -> None:
    """DeepMind's squares at spacing (2, 1) (vertical v = 2, horizontal h = 1, diagonal piece
    d = sqrt(5) / 2): the reference contour (4d + 2h + 2v) lies within 1 mm of the prediction
    but one h piece, at 1 mm; of the prediction's (4d + 2h + 4v), 2d + h lie 2 mm away."""
    gt, pred = np.zeros((6, 6), bool), np.zeros((6, 6), bool)
    gt[1:3, 1:3] = True
    pred[1:4, 1:3] = True
    d, h, v = math.sqrt(5.0) / 2, 1.0, 2.0
    area_gt, area_pred = 4 * d + 2 * h + 2 * v, 4 * d + 2 * h + 4 * v
    want = {
        "hd": 2.0,
        # gt->pred: the 0 mm share is (area_gt - h) / area_gt = 0.904 < 0.95 -> 1 mm; pred->gt:
        # the 0 mm share is 0.776 -> 2 mm; HD95 is the larger
        "hd95": 2.0,
        "assd": (h * 1.0 + (2 * d + h) * 2.0) / (area_gt + area_pred),
        "surface_dice": (area_gt + area_pred - (2 * d + h)) / (area_gt + area_pred),
    }
    assert _all(pred, gt, (v, h)) == pytest.approx(want, abs=1e-6)


def test_slabs_published_values() -> None:
    """DeepMind's 'two cubes shifted by one pixel': 100^3, slabs [0:50] and [0:51] along axis 0
    at spacing (2, 1, 1). Published (3 places): HD 2, HD95 2, directed means (0.322, 0.339),
    surface Dice at 1 mm 0.836. volseg's voxel convention gives 0.755 there."""
    gt, pred = np.zeros((100, 100, 100), bool), np.zeros((100, 100, 100), bool)
    gt[0:50] = True
    pred[0:51] = True
    sp = (2.0, 1.0, 1.0)
    got = _all(pred, gt, sp)
    assert got["hd"] == pytest.approx(2.0, abs=1e-6)
    assert got["hd95"] == pytest.approx(2.0, abs=1e-6)
    assert got["surface_dice"] == pytest.approx(0.836, abs=5e-4)
    d_pr, d_rp, a_p, a_r = surfel_distances(pred, gt, np.array(sp))
    assert (d_rp * a_r).sum() / a_r.sum() == pytest.approx(0.322, abs=5e-4)
    assert (d_pr * a_p).sum() / a_p.sum() == pytest.approx(0.339, abs=5e-4)
    assert surface_dice(pred, gt, sp, 1.0) == pytest.approx(0.755, abs=5e-4)


def test_weighted_percentile_by_hand() -> None:
    d = np.array([3.0, 1.0, 2.0, 1.0])
    w = np.array([1.0, 1.0, 6.0, 2.0])  # sorted: 1 (w 1), 1 (w 2), 2 (w 6), 3 (w 1); total 10
    assert weighted_percentile(d, w, 30) == 1.0  # cumulative share 0.1, 0.3 -> reaches 0.3 at 1
    assert weighted_percentile(d, w, 31) == 2.0
    assert weighted_percentile(d, w, 95) == 3.0
    assert weighted_percentile(d, w, 100) == 3.0


def test_surfel_needs_2d_or_3d() -> None:
    for shape in ((5,), (3, 3, 3, 3)):
        a = np.ones(shape, bool)
        with pytest.raises(ValueError, match="2-D or 3-D"):
            hausdorff_distance(a, a, None, convention="surfel")
    a = np.zeros((4, 4), bool)
    with pytest.raises(ValueError, match="convention"):
        surface_dice(a, a, None, 1.0, convention="mesh")  # type: ignore[arg-type]


def test_empty_surfel_masks_follow_the_documented_values() -> None:
    empty, one = np.zeros((5, 5), bool), np.zeros((5, 5), bool)
    one[2, 2] = True
    assert average_surface_distance(empty, empty, convention="surfel") == 0.0
    assert math.isnan(hausdorff_distance(empty, empty, convention="surfel", empty="nan"))
    assert hausdorff_distance(one, empty, None, 95, convention="surfel") == math.inf
    assert surface_dice(empty, one, None, 1.0, convention="surfel") == 0.0


# agreement with DeepMind's package (pinned in the bench and dev extras)

SPACINGS_3D = [(1.0, 1.0, 1.0), (2.0, 3.0, 5.0), (0.7, 1.9, 1.3), (0.5, 0.5, 3.0)]


@pytest.mark.parametrize("sp", SPACINGS_3D)
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_area_tables_equal_deepmind(sp: tuple[float, float, float]) -> None:
    lookup = pytest.importorskip("surface_distance.lookup_tables")
    table = lookup.create_table_neighbour_code_to_surface_area(sp)
    np.testing.assert_allclose(area_table(np.array(sp)), table, rtol=0, atol=1e-12)
    table_2d = lookup.create_table_neighbour_code_to_contour_length(sp[:2])
    np.testing.assert_allclose(area_table(np.array(sp[:2])), table_2d, rtol=0, atol=1e-12)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # the package's scipy namespaces
def test_random_masks_equal_deepmind(seed: int) -> None:
    sd = pytest.importorskip("surface_distance")
    rng = np.random.default_rng(seed)
    shape = (12, 14, 10) if seed % 2 == 0 else (20, 17)
    sp = tuple(float(s) for s in rng.uniform(0.5, 3.0, len(shape)))
    a, b = (ndimage.gaussian_filter(rng.standard_normal(shape), 1.5) for _ in range(2))
    pred, gt = a > np.quantile(a, 0.7), b > np.quantile(b, 0.7)  # non-empty: the package's
    # empty-mask path uses np.Inf, which numpy 2 removed
    dist = sd.compute_surface_distances(gt, pred, sp)
    area_gt, area_pred = dist["surfel_areas_gt"].sum(), dist["surfel_areas_pred"].sum()
    m_gt, m_pred = sd.compute_average_surface_distance(dist)
    want = {
        "hd": sd.compute_robust_hausdorff(dist, 100),
        "hd95": sd.compute_robust_hausdorff(dist, 95),
        "assd": (m_gt * area_gt + m_pred * area_pred) / (area_gt + area_pred),
        "surface_dice": sd.compute_surface_dice_at_tolerance(dist, 1.0),
    }
    assert _all(pred, gt, sp) == pytest.approx(want, rel=1e-12, abs=1e-12)


def test_pooled_surfel_percentile_by_hand() -> None:
    """Squares of the case above, both directed sets pooled and weighted by length: the 0 mm
    share is (area_gt - h + area_pred - 2d - h) / total, then 1 mm adds h, 2 mm the rest."""
    gt, pred = np.zeros((6, 6), bool), np.zeros((6, 6), bool)
    gt[1:3, 1:3] = True
    pred[1:4, 1:3] = True
    d, h, v = math.sqrt(5.0) / 2, 1.0, 2.0
    total = (4 * d + 2 * h + 2 * v) + (4 * d + 2 * h + 4 * v)
    zero = (total - h - (2 * d + h)) / total
    sp = (v, h)

    def pooled(q: float) -> float:
        return hausdorff_distance(pred, gt, sp, q, combine="pooled", convention="surfel")

    assert pooled(100 * zero - 0.01) == 0.0
    assert pooled(100 * (zero + h / total) - 0.01) == 1.0
    assert pooled(100 * (zero + h / total) + 0.01) == 2.0
