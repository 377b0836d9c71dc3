"""The fast paths equal the plain ones: B-spline sampling grid, threaded resampling, ITK."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
import SimpleITK as sitk
import torch

from volseg.data.transforms import BSplineParams, RandomBSplineDeformation, Sample
from volseg.data.transforms.bspline import bspline_field, bspline_points
from volseg.data.transforms.grid import regular_points, resample


@pytest.fixture
def threads() -> Iterator[None]:
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize(
    "shape,spacing,mesh",
    [((17, 20, 23), (2.0, 0.8, 1.1), (2, 3, 2)), ((30, 25), (0.7, 1.3), (4, 1))],
)
def test_bspline_points_equal_ramp_plus_field(
    shape: tuple[int, ...], spacing: tuple[float, ...], mesh: tuple[int, ...]
) -> None:
    dims = len(shape)
    gen = torch.Generator().manual_seed(1)
    control = torch.randn(dims, *[m + 3 for m in mesh], generator=gen) * 4.0
    expected = regular_points(shape, spacing, plus=bspline_field(control, shape))
    ours = bspline_points(control, shape, spacing)
    assert ours.shape == (*shape, dims)
    torch.testing.assert_close(ours, expected, atol=2e-5, rtol=0)


def _blob(shape: tuple[int, ...]) -> np.ndarray:
    axes = np.meshgrid(*[np.linspace(-1, 1, n) for n in shape], indexing="ij")
    radius2 = sum((a / 0.6) ** 2 for a in axes)
    return (np.cos(3 * axes[-1]) * np.clip(1 - radius2, 0, None) ** 2).astype(np.float32)


@pytest.mark.parametrize("n_threads", [1, 2, 3])
def test_threaded_bspline_matches_simpleitk(n_threads: int, threads: None) -> None:
    """Above the threading threshold (odd depth: the last slab is padded), ITK still agrees."""
    torch.set_num_threads(n_threads)
    shape, spacing, mesh = (37, 40, 36), (2.0, 0.8, 1.1), (2, 3, 2)
    image = _blob(shape)
    control = np.random.default_rng(0).normal(0.0, 2.0, (3, *[m + 3 for m in mesh]))
    params = BSplineParams(control.astype(np.float32))
    sample = Sample(torch.from_numpy(image[None].copy()), spacing=spacing)
    ours = RandomBSplineDeformation().apply(sample, params).image[0].numpy()

    reference = sitk.GetImageFromArray(image)
    reference.SetSpacing([float(s) for s in reversed(spacing)])
    itk = sitk.BSplineTransform(3, 3)
    itk.SetTransformDomainOrigin((0.0, 0.0, 0.0))  # first to last voxel centre
    itk.SetTransformDomainPhysicalDimensions(
        [float(n - 1) * s for n, s in zip(reversed(shape), reversed(spacing))]
    )
    itk.SetTransformDomainMeshSize(list(reversed(mesh)))
    itk.SetTransformDomainDirection((1.0, 0, 0, 0, 1.0, 0, 0, 0, 1.0))
    c = params.control.astype(float)
    itk.SetParameters(np.concatenate([c[2].ravel(), c[1].ravel(), c[0].ravel()]).tolist())
    expected = sitk.GetArrayFromImage(sitk.Resample(reference, itk, sitk.sitkLinear, 0.0))
    assert np.abs(ours - expected).max() < 1e-5
    assert np.abs(ours - image).max() > 0.05  # it did deform


def test_threaded_resample_equals_one_batch(threads: None) -> None:
    """Image channels and an int64 label, slabs of 3 threads against one batch: bit-equal."""
    gen = torch.Generator().manual_seed(2)
    shape, spacing = (35, 33, 31), (1.5, 1.0, 1.2)
    image = torch.randn(2, *shape, generator=gen)
    label = (torch.rand(1, *shape, generator=gen) * 4).long()
    points = regular_points((31, 34, 36), spacing) + torch.randn(1, 1, 1, 3, generator=gen)
    points += 0.7 * torch.randn(points.shape, generator=gen)
    center = [(n - 1) / 2 for n in shape]
    torch.set_num_threads(1)
    one_image, one_label = resample(image, label, points, center, spacing)
    torch.set_num_threads(3)
    image3, label3 = resample(image, label, points, center, spacing)
    assert image3.shape == (2, 31, 34, 36) and image3.is_contiguous()
    assert label3 is not None and one_label is not None and label3.dtype == torch.int64
    assert torch.equal(image3, one_image)
    assert torch.equal(label3, one_label)
