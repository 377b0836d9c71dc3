"""Surface extraction on the bounding box in slabs, bounded and parallel k-d tree queries.

References: scipy's ``binary_erosion`` (face connectivity, voxels outside the array count as
background), the foreground-index walk that ``surface_voxels`` used before (kept here), full
unbounded single-thread queries, and surfels computed on the whole array.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from scipy import ndimage
from scipy.spatial import cKDTree

from volseg.metrics import surface as surface_mod
from volseg.metrics import surface_dice, surface_voxels
from volseg.metrics import surfels as surfels_mod
from volseg.metrics.surface import _distances
from volseg.metrics.surfels import (
    area_table,
    bounding_box,
    nearest_distances,
    surfel_distances,
    surfels,
)


def erosion_surface(mask: np.ndarray) -> np.ndarray:
    """Surface coordinates as ``mask & ~binary_erosion(mask)`` (face connectivity, border 0)."""
    structure = ndimage.generate_binary_structure(mask.ndim, 1)
    eroded = ndimage.binary_erosion(mask, structure, border_value=0)
    return np.argwhere(mask & ~eroded)


def walk_surface(mask: np.ndarray) -> np.ndarray:
    """The previous ``surface_voxels``: a walk over the foreground's sorted flat indices."""
    m = np.ascontiguousarray(mask, dtype=bool)
    flat = m.reshape(-1)
    idx = np.flatnonzero(flat)
    if m.ndim == 0 or idx.size == 0:
        return np.zeros((0, m.ndim), dtype=np.int64)
    step = np.diff(idx) == 1
    interior = np.concatenate([[False], step]) & np.concatenate([step, [False]])
    stride = m.shape[-1]
    for n in reversed(m.shape[:-1]):
        keep = np.flatnonzero(interior)
        j = idx[keep]
        interior[keep] = flat.take(j - stride, mode="clip") & flat.take(j + stride, mode="clip")
        stride *= n
    found = [idx[~interior]]
    for axis, n in enumerate(m.shape):
        for pos in {0, n - 1}:
            if m.ndim == 1:
                found.append(np.array([pos] if m[pos] else [], dtype=np.int64))
                continue
            face = list(np.nonzero(np.take(m, pos, axis=axis)))
            face.insert(axis, np.full(face[0].size, pos))
            found.append(np.ravel_multi_index(tuple(face), m.shape))
    surface = np.unique(np.concatenate(found))
    return np.stack(np.unravel_index(surface, m.shape), axis=1)


SHAPES = [(1,), (23,), (1, 1), (9, 13), (1, 7), (7, 1, 5), (8, 9, 10), (5, 6, 4, 3), (2, 1, 3, 2)]


def random_masks(rng: np.random.Generator, shape: tuple[int, ...]) -> list[np.ndarray]:
    """Sparse, dense, blob, empty, full and border-touching masks of one shape."""
    masks = [rng.random(shape) < q for q in (0.05, 0.5, 0.9)]
    field = ndimage.gaussian_filter(rng.standard_normal(shape), sigma=1.0)
    masks.append(field > np.quantile(field, 0.6))
    masks += [np.zeros(shape, dtype=bool), np.ones(shape, dtype=bool)]
    corner = np.zeros(shape, dtype=bool)
    corner[tuple(slice(0, max(1, n // 2)) for n in shape)] = True  # touches the low borders
    masks += [corner, corner[tuple(slice(None, None, -1) for _ in shape)]]  # and the high ones
    return masks


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("slab", [1, 7, 1 << 18])
def test_surface_voxels_equal_erosion_and_walk(
    shape: tuple[int, ...], slab: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # slab=1: one slice per slab (every halo exercised); 7: slabs that end mid-array
    monkeypatch.setattr(surface_mod, "_SLAB_VOXELS", slab)
    rng = np.random.default_rng(len(shape) * 100 + sum(shape))
    for mask in random_masks(rng, shape):
        got = surface_voxels(mask)
        assert got.dtype == np.int64 and got.shape[1] == len(shape)
        np.testing.assert_array_equal(got, erosion_surface(mask))
        np.testing.assert_array_equal(got, walk_surface(mask))


def test_surface_voxels_views_and_dtypes() -> None:
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 3, (12, 10, 9))
    mask = labels == 1
    for view in (mask.T, mask[::2, 1:, ::-1], labels.astype(np.uint8) % 2):
        np.testing.assert_array_equal(surface_voxels(view), erosion_surface(np.asarray(view, bool)))


def test_bounding_box_matches_nonzero() -> None:
    rng = np.random.default_rng(4)
    for shape in SHAPES:
        for mask in random_masks(rng, shape):
            box = bounding_box(mask)
            if not mask.any():
                assert box is None
                continue
            idx = np.nonzero(mask)
            assert box == tuple(slice(int(i.min()), int(i.max()) + 1) for i in idx)


def test_distances_skip_shared_voxels_and_stay_exact(monkeypatch: pytest.MonkeyPatch) -> None:
    # nearly equal masks: most surface voxels are shared (distance 0 without a query)
    rng = np.random.default_rng(5)
    field = ndimage.gaussian_filter(rng.standard_normal((20, 18, 16)), sigma=2.0)
    a, b = field > 0, field > 0.02
    sp = np.array([2.0, 0.7, 1.3])
    sa, sb = erosion_surface(a), erosion_surface(b)
    ref_ab = cKDTree(sb * sp).query(sa * sp)[0]
    ref_ba = cKDTree(sa * sp).query(sb * sp)[0]
    assert (ref_ab == 0).mean() > 0.5
    for min_points in (surfels_mod.PARALLEL_MIN_POINTS, 1):  # 1: every query on all CPUs
        monkeypatch.setattr(surfels_mod, "PARALLEL_MIN_POINTS", min_points)
        d = _distances(a, b, sp, "voxel")
        np.testing.assert_array_equal(d.pr, ref_ab)
        np.testing.assert_array_equal(d.rp, ref_ba)


@pytest.mark.parametrize("bound", [0.0, 1.0, 1.3, 2.5, 7.0])
def test_bounded_query_exact_below_bound(bound: float) -> None:
    rng = np.random.default_rng(6)
    a, b = rng.random((40, 3)) * 10, rng.random((50, 3)) * 10
    a[:5] = b[:5]  # distance 0
    a[5] = b[7] + [0.0, 0.0, bound]  # exactly at the bound
    sp = np.array([1.0, 1.0, 1.0])
    full = nearest_distances(a, b, sp)
    got = nearest_distances(a, b, sp, upper_bound=bound)
    inside = full <= bound
    np.testing.assert_array_equal(got[inside], full[inside])
    assert np.all(got[~inside] > bound)


@pytest.mark.parametrize("convention", ["voxel", "surfel"])
def test_surface_dice_bounded_equals_full_count(convention: str) -> None:
    rng = np.random.default_rng(7)
    for shape, sp in (((14, 12, 10), (1.5, 1.0, 0.6)), ((30, 25), (0.8, 1.7))):
        field = ndimage.gaussian_filter(rng.standard_normal(shape), sigma=1.5)
        a, b = field > 0.1, np.roll(field, 2, axis=0) > -0.1
        d = _distances(a, b, np.array(sp), convention)
        for tol in (0.0, 0.6, 1.0, 1.7, 2.0, 3.2):
            if d.w_p is None or d.w_r is None:
                expect = (np.sum(d.pr <= tol) + np.sum(d.rp <= tol)) / (d.pr.size + d.rp.size)
            else:
                inside = d.w_p[d.pr <= tol].sum() + d.w_r[d.rp <= tol].sum()
                expect = inside / (d.w_p.sum() + d.w_r.sum())
            got = surface_dice(a, b, sp, tol, convention=convention)  # type: ignore[arg-type]
            assert got == pytest.approx(float(expect), rel=1e-12, abs=0)


def test_surfels_on_each_box_equal_whole_array() -> None:
    rng = np.random.default_rng(8)
    sp = np.array([1.2, 0.9, 2.0])
    a = np.zeros((24, 20, 18), dtype=bool)
    b = np.zeros_like(a)
    a[3:12, 4:15, 2:9] = True
    b[10:22, 1:8, 6:17] = rng.random((12, 7, 11)) < 0.7
    b[23, 19, 17] = True  # a stray voxel in the far corner, on the array border
    d_ab, d_ba, w_a, w_b = surfel_distances(a, b, sp)
    cells_a, areas_a = surfels(a, sp)  # the whole array: cells in the same global frame
    cells_b, areas_b = surfels(b, sp)
    np.testing.assert_array_equal(w_a, areas_a)
    np.testing.assert_array_equal(w_b, areas_b)
    np.testing.assert_allclose(d_ab, cKDTree(cells_b * sp).query(cells_a * sp)[0], rtol=1e-15)
    np.testing.assert_allclose(d_ba, cKDTree(cells_a * sp).query(cells_b * sp)[0], rtol=1e-15)
    assert math.isfinite(float(d_ab.max()))


def whole_array_surfels(mask: np.ndarray, sp: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The previous ``surfels``: codes of the whole padded array at once, then ``argwhere``."""
    m = np.pad(np.asarray(mask, dtype=np.uint8), 1)
    ndim = m.ndim
    cells = tuple(n - 1 for n in m.shape)
    code = np.zeros(cells, dtype=np.uint8)
    for pos, offset in enumerate(itertools.product((0, 1), repeat=ndim)):
        block = m[tuple(slice(o, o + n) for o, n in zip(offset, cells, strict=True))]
        code |= block << (2**ndim - 1 - pos)
    border = (code != 0) & (code != 2**2**ndim - 1)
    return np.argwhere(border), area_table(sp)[code[border]]


@pytest.mark.parametrize("slab", [1, 7, 1 << 18])
def test_surfels_in_slabs_equal_whole_array(slab: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(surfels_mod, "SLAB_CELLS", slab)
    rng = np.random.default_rng(9)
    for shape, sp in (
        ((7, 6, 5), (1.5, 1.0, 0.6)),
        ((1, 1, 1), (1.0, 2.0, 3.0)),
        ((9, 8), (0.8, 1.7)),
    ):
        for mask in random_masks(rng, shape):
            got_cells, got_areas = surfels(mask, np.array(sp))
            ref_cells, ref_areas = whole_array_surfels(mask, np.array(sp))
            np.testing.assert_array_equal(got_cells, ref_cells)
            np.testing.assert_array_equal(got_areas, ref_areas)


def test_both_directions_at_once_equal_one_after_the_other() -> None:
    """Surfaces above ``PARALLEL_MIN_POINTS`` take the two-thread path; it must give the
    distances of two plain one-core queries (and both must match the EDT reference)."""
    from scipy import ndimage

    from volseg.metrics.surface import _distances, surface_voxels
    from volseg.metrics.surfels import PARALLEL_MIN_POINTS, nearest_distances

    grid = np.ogrid[:64, :64, :64]
    ref = sum((g - c) ** 2 for g, c in zip(grid, (32, 32, 32))) < 27**2
    pred = sum((g - c) ** 2 for g, c in zip(grid, (34, 30, 33))) < 25**2
    sp = np.array([1.2, 0.9, 1.0])
    a, b = surface_voxels(pred), surface_voxels(ref)
    assert min(len(a), len(b)) >= PARALLEL_MIN_POINTS
    d = _distances(pred, ref, sp, "voxel")
    np.testing.assert_array_equal(d.pr, nearest_distances(a, b, sp, workers=1))
    np.testing.assert_array_equal(d.rp, nearest_distances(b, a, sp, workers=1))
    surface_ref = np.zeros(ref.shape, bool)
    surface_ref[tuple(b.T)] = True
    edt = ndimage.distance_transform_edt(~surface_ref, sampling=sp)
    np.testing.assert_allclose(d.pr, edt[tuple(a.T)], rtol=1e-12, atol=1e-12)
