"""Cubic B-spline weights against scipy; the separable and the pointwise field agree."""

from __future__ import annotations

import numpy as np
import torch
from scipy.interpolate import BSpline

from volseg.data.transforms.bspline import bspline_at, bspline_basis, bspline_field
from volseg.data.transforms.grid import regular_points


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


def test_pointwise_field_equals_separable_field_on_the_grid() -> None:
    shape = (7, 9, 11)
    control = torch.randn(3, 5, 6, 4, generator=torch.Generator().manual_seed(0))
    dense = bspline_field(control, shape)
    voxels = regular_points(shape, (1.0, 1.0, 1.0)) + torch.tensor([3.0, 4.0, 5.0])
    points = bspline_at(control, voxels.reshape(-1, 3), shape).T.reshape(3, *shape)
    torch.testing.assert_close(points, dense, atol=1e-5, rtol=0)
