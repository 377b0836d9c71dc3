"""Cubic B-spline weights against scipy; the separable and the pointwise field agree."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np
import torch
from scipy.interpolate import BSpline

from volseg.data.transforms import BSplineParams, RandomBSplineDeformation
from volseg.data.transforms.bspline import bspline_basis, bspline_field, bspline_weights
from volseg.data.transforms.grid import regular_points
from volseg.data.transforms.spatial import rotation_matrix


def exact_at(control: torch.Tensor, voxels: torch.Tensor, shape: Sequence[int]) -> torch.Tensor:
    """The exact field at continuous voxel indices ``(N, D)`` (clamped to the grid): ``(N, D)``."""
    dims = len(shape)
    meshes = [int(c) - 3 for c in control.shape[1:]]
    cells, weights = [], []
    for axis in range(dims):
        scale = meshes[axis] / max(int(shape[axis]) - 1, 1)
        cell, weight = bspline_weights(voxels[:, axis].float() * scale, meshes[axis])
        cells.append(cell)
        weights.append(weight)
    flat = control.float().reshape(control.shape[0], -1)
    strides = [1] * dims
    for axis in reversed(range(dims - 1)):
        strides[axis] = strides[axis + 1] * (meshes[axis + 1] + 3)
    out = torch.zeros(voxels.shape[0], control.shape[0])
    for offsets in itertools.product(range(4), repeat=dims):
        index = sum((cells[a] + offsets[a]) * strides[a] for a in range(dims))
        weight = weights[0][:, offsets[0]]
        for a in range(1, dims):
            weight = weight * weights[a][:, offsets[a]]
        out += flat[:, index].T * weight[:, None]
    return out


def test_bspline_basis_matches_scipy() -> None:
    mesh, length = 3, 17
    basis = bspline_basis(length, mesh).double().numpy()
    knots = np.arange(-3, mesh + 4, dtype=float)
    t = np.linspace(0.0, float(mesh), length)
    t[-1] -= 1e-12  # scipy's last interval is half-open
    for j in range(mesh + 3):
        coefficients = np.zeros(mesh + 3)
        coefficients[j] = 1.0
        expected = BSpline(knots, coefficients, 3, extrapolate=False)(t)
        np.testing.assert_allclose(basis[:, j], expected, atol=1e-6)
    np.testing.assert_allclose(basis.sum(axis=1), 1.0, atol=1e-6)  # partition of unity


def test_exact_field_equals_separable_field_on_the_grid() -> None:
    shape = (7, 9, 11)
    control = torch.randn(3, 5, 6, 4, generator=torch.Generator().manual_seed(0))
    dense = bspline_field(control, shape)
    voxels = regular_points(shape, (1.0, 1.0, 1.0)) + torch.tensor([3.0, 4.0, 5.0])
    points = exact_at(control, voxels.reshape(-1, 3), shape).T.reshape(3, *shape)
    torch.testing.assert_close(points, dense, atol=1e-5, rtol=0)


def test_field_at_moved_points_is_close_to_the_exact_spline() -> None:
    """After a rotation the dense field is read by linear interpolation: < 0.1 mm off here
    (displacements up to ~30 mm, mesh cells of 10 voxels)."""
    shape, spacing = (20, 24, 28), (2.0, 1.0, 1.5)
    control = np.random.default_rng(0).normal(0.0, 10.0, (3, 5, 5, 5)).astype(np.float32)
    rotation = rotation_matrix([0.3, -0.2, 0.4])
    moved = regular_points(shape, spacing) @ torch.tensor(rotation, dtype=torch.float32).T
    bspline = RandomBSplineDeformation()
    ours = bspline.map_points(moved, BSplineParams(control), shape, spacing) - moved
    half = torch.tensor([(n - 1) / 2 for n in shape])
    voxels = (moved / torch.tensor(spacing) + half).reshape(-1, 3)
    exact = exact_at(torch.from_numpy(control), voxels, shape).reshape(ours.shape)
    assert float((ours - exact).abs().max()) < 0.1
    assert float(exact.abs().max()) > 5.0
