from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.interpolate import BSpline

from volseg.config import AugmentConfig
from volseg.data.augmentation import RandomIntensity, RandomSpatial, bspline_basis


def _volume(shape: tuple[int, ...]) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    image = torch.randn((2, *shape), generator=gen)
    label = (torch.rand((1, *shape), generator=gen) * 3).to(torch.uint8)
    return image, label


@pytest.mark.parametrize("shape,patch", [((30, 31, 32), (8, 10, 12)), ((40, 44), (16, 12))])
def test_no_augmentation_is_an_exact_crop(shape: tuple[int, ...], patch: tuple[int, ...]) -> None:
    image, label = _volume(shape)
    spatial = RandomSpatial(AugmentConfig(), patch)
    start = [3] * len(shape)
    center = tuple(s + (p - 1) / 2 for s, p in zip(start, patch))
    params = spatial.get_params(np.random.default_rng(0), center)
    out, out_label = spatial.apply(image, label, params)
    window = (slice(None), *(slice(s, s + p) for s, p in zip(start, patch)))
    torch.testing.assert_close(out, image[window], atol=1e-5, rtol=0)
    assert out_label is not None and torch.equal(out_label, label[window])


def test_flip_mirrors_the_patch() -> None:
    image, label = _volume((12, 12, 12))
    spatial = RandomSpatial(AugmentConfig(flip_axes=(2,), flip_p=1.0), (12, 12, 12))
    params = spatial.get_params(np.random.default_rng(0), (5.5, 5.5, 5.5))
    out, out_label = spatial.apply(image, label, params)
    torch.testing.assert_close(out, image.flip(-1), atol=1e-5, rtol=0)
    assert out_label is not None and torch.equal(out_label, label.flip(-1))


def test_labels_keep_only_their_values_under_deformation() -> None:
    image, label = _volume((24, 24, 24))
    config = AugmentConfig(affine_p=1.0, elastic_p=1.0, elastic_sigma=4.0, flip_axes=(0, 1, 2))
    spatial = RandomSpatial(config, (16, 16, 16))
    params = spatial.get_params(np.random.default_rng(3), (12.0, 12.0, 12.0))
    assert params.displacement is not None
    _, out_label = spatial.apply(image, label, params)
    assert out_label is not None and set(out_label.unique().tolist()) <= {0, 1, 2}


def test_same_seed_same_parameters() -> None:
    config = AugmentConfig(affine_p=0.5, elastic_p=0.5, flip_axes=(0, 1), intensity_p=0.5)
    spatial = RandomSpatial(config, (8, 8, 8))
    a = spatial.get_params(np.random.default_rng(7), (4.0, 4.0, 4.0))
    b = spatial.get_params(np.random.default_rng(7), (4.0, 4.0, 4.0))
    assert a.matrix == b.matrix
    assert (a.displacement is None) == (b.displacement is None)


def test_bspline_basis_matches_scipy() -> None:
    """Our cubic B-spline weights equal scipy's uniform B-spline basis over the same knots."""
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


def test_constant_displacement_is_a_shift() -> None:
    image, label = _volume((20, 20, 20))
    config = AugmentConfig(elastic_p=1.0, elastic_grid=2)
    spatial = RandomSpatial(config, (6, 6, 6))
    params = spatial.get_params(np.random.default_rng(0), (7.5, 7.5, 7.5))
    assert params.displacement is not None
    params.displacement[...] = 0.0
    params.displacement[2] = 2.0  # +2 voxels along x everywhere
    out, _ = spatial.apply(image, label, params)
    torch.testing.assert_close(out, image[:, 5:11, 5:11, 7:13], atol=1e-4, rtol=0)


def test_intensity_shift_scale_is_affine_per_channel() -> None:
    image, _ = _volume((6, 6, 6))
    intensity = RandomIntensity(AugmentConfig(intensity_p=1.0, shift=0.1, scale=0.1))
    params = intensity.get_params(np.random.default_rng(1), channels=2, dims=3)
    assert params.shift is not None and params.scale is not None
    out = intensity.apply(image, params)
    for c in range(2):
        expected = image[c] * params.scale[c] + params.shift[c]
        torch.testing.assert_close(out[c], expected)
        assert 0.9 <= params.scale[c] <= 1.1 and -0.1 <= params.shift[c] <= 0.1
