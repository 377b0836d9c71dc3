"""volseg.metrics.surface: (95%) Hausdorff, ASSD, surface Dice in mm by hand, brute force, EDT."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import ndimage

from volseg.metrics import (
    average_surface_distance,
    dice,
    hausdorff,
    hausdorff95,
    hausdorff_distance,
    surface_dice,
    surface_distances,
    surface_voxels,
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


def test_spacing_and_tolerance_checked_in_every_branch() -> None:
    """A wrong spacing is refused also when a mask is empty (issue 17: before, it was accepted
    there: ASSD of two empty 2-D masks with a 3-entry spacing returned 0.0, and with one empty
    mask and spacing (-1, 1) inf); an infinite tolerance is refused (MONAI refuses it too)."""
    from volseg.metrics import evaluate_case, score_masks

    zeros, one = np.zeros((4, 4), dtype=bool), np.zeros((4, 4), dtype=bool)
    one[1, 1] = True
    for a, b in ((zeros, zeros), (one, zeros), (zeros, one), (one, one)):
        for bad in ((1.0, 1.0, 1.0), (-1.0, 1.0), (0.0, 1.0), (math.inf, 1.0)):
            with pytest.raises(ValueError, match="spacing"):
                average_surface_distance(a, b, bad)
            with pytest.raises(ValueError, match="spacing"):
                surface_dice(a, b, bad, 1.0)
            with pytest.raises(ValueError, match="spacing"):
                hausdorff_distance(a, b, bad, 95)
            with pytest.raises(ValueError, match="spacing"):
                score_masks(a, b, bad, ["dice", "hd95"])
            with pytest.raises(ValueError, match="spacing"):
                evaluate_case(a.astype(int), b.astype(int), bad, [1])
        with pytest.raises(ValueError, match="tolerance"):
            surface_dice(a, b, None, math.inf)
        with pytest.raises(ValueError, match="tolerance"):
            score_masks(a, b, None, ["surface_dice"], tolerance=math.inf)


def test_one_and_four_dimensional_masks() -> None:
    """The voxel convention works in any number of dimensions (a 1-D mask is intervals)."""
    a, b = np.zeros(10, dtype=bool), np.zeros(10, dtype=bool)
    a[2:5] = True
    b[4:8] = True
    # surfaces: a {2, 4}, b {4, 7}; d(a->b) = (2, 0), d(b->a) = (0, 3); spacing 0.5 mm
    assert hausdorff_distance(a, b, (0.5,)) == pytest.approx(1.5)
    assert average_surface_distance(a, b, (0.5,)) == pytest.approx(5 * 0.5 / 4)
    c = np.zeros((3, 3, 3, 3), dtype=bool)
    c[1, 1, 1, 1] = True
    d = np.roll(c, 1, axis=3)
    assert hausdorff_distance(c, d, (1.0, 1.0, 1.0, 2.0)) == pytest.approx(2.0)
