"""Spatial transforms against SimpleITK (B-spline, rotation in mm) and known answers."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import SimpleITK as sitk
import torch

from volseg.data.transforms import (
    AffineParams,
    BSplineParams,
    Compose,
    Context,
    CropParams,
    FlipParams,
    RandomAffine,
    RandomBSplineDeformation,
    RandomCrop,
    RandomFlip,
    Sample,
    create_transform,
)


def _sitk_image(array: np.ndarray, spacing_zyx: tuple[float, ...]) -> sitk.Image:
    image = sitk.GetImageFromArray(array)
    image.SetSpacing([float(s) for s in reversed(spacing_zyx)])
    return image


@pytest.mark.parametrize("shape,patch", [((30, 31, 32), (8, 10, 12)), ((40, 44), (16, 12))])
def test_no_transform_is_an_exact_crop(
    shape: tuple[int, ...],
    patch: tuple[int, ...],
    make_sample: Callable,  # type: ignore[type-arg]
) -> None:
    sample = make_sample(shape)
    start = [3] * len(shape)
    center = [s + (p - 1) / 2 for s, p in zip(start, patch)]
    out = Compose([RandomFlip(p=0.0)]).apply(sample, (None,), center=center, shape=patch)
    window = (slice(None), *(slice(s, s + p) for s, p in zip(start, patch)))
    torch.testing.assert_close(out.image, sample.image[window], atol=1e-5, rtol=0)
    assert torch.equal(out.label, sample.label[window])


@pytest.mark.parametrize("shape", [(12, 13, 14), (9, 10)])
def test_flip_mirrors_volume_and_patch(shape: tuple[int, ...], make_sample: Callable) -> None:  # type: ignore[type-arg]
    sample = make_sample(shape)
    out = RandomFlip(p=1.0)(sample, np.random.default_rng(0))
    axes = tuple(range(1, len(shape) + 1))
    torch.testing.assert_close(out.image, sample.image.flip(axes), atol=1e-5, rtol=0)
    assert torch.equal(out.label, sample.label.flip(axes))
    patch = Compose([RandomFlip()]).apply(
        sample, (FlipParams((0,)),), center=[4.0] * len(shape), shape=(5,) * len(shape)
    )
    window = (slice(None), *[slice(2, 7)] * len(shape))
    torch.testing.assert_close(patch.image, sample.image[window].flip(1), atol=1e-5, rtol=0)


def test_flip_rate_is_per_axis(make_sample: Callable) -> None:  # type: ignore[type-arg]
    context = Context.of(make_sample((6, 7)))
    flips = [RandomFlip(p=0.75).get_params(np.random.default_rng(i), context) for i in range(400)]
    rate = sum(f is not None and 0 in f.axes for f in flips) / len(flips)
    assert 0.68 < rate < 0.82


def test_bspline_deformation_matches_simpleitk(make_blob: Callable) -> None:  # type: ignore[type-arg]
    """Same control points (mm) in ITK's BSplineTransform on an anisotropic image: < 1e-5."""
    shape, spacing = (20, 24, 28), (2.0, 0.8, 1.1)  # z, y, x
    image = make_blob(shape)
    sample = Sample(torch.from_numpy(image[None].copy()), spacing=spacing)
    transform = create_transform("bspline", grid=(2, 3, 2), sigma_mm=2.0)
    params = transform.get_params(np.random.default_rng(0), Context.of(sample))
    ours = transform.apply(sample, params).image[0].numpy()

    reference = _sitk_image(image, spacing)
    itk = sitk.BSplineTransform(3, 3)
    itk.SetTransformDomainOrigin((0.0, 0.0, 0.0))  # first to last voxel centre
    itk.SetTransformDomainPhysicalDimensions(
        [float(n - 1) * s for n, s in zip(reversed(shape), reversed(spacing))]
    )
    itk.SetTransformDomainMeshSize([2, 3, 2][::-1])
    itk.SetTransformDomainDirection((1.0, 0, 0, 0, 1.0, 0, 0, 0, 1.0))
    control = params.control  # (3, *mesh + 3) in mm, components in array order (z, y, x)
    coefficients = np.concatenate([control[2].ravel(), control[1].ravel(), control[0].ravel()])
    itk.SetParameters(coefficients.astype(float).tolist())
    expected = sitk.GetArrayFromImage(sitk.Resample(reference, itk, sitk.sitkLinear, 0.0))
    assert np.abs(ours - expected).max() < 1e-5
    assert np.abs(ours - image).max() > 0.05  # it did deform


def test_sigma_in_voxels_scales_by_spacing(make_sample: Callable) -> None:  # type: ignore[type-arg]
    context = Context.of(make_sample((8, 8, 8)))  # spacing (2.5, 0.9, 1.2)
    voxels = RandomBSplineDeformation(sigma_voxels=6.0).draw(np.random.default_rng(0), context)
    mm = RandomBSplineDeformation(sigma_mm=6.0).draw(np.random.default_rng(0), context)
    np.testing.assert_allclose(voxels.control[0], mm.control[0] * 2.5, rtol=1e-6)
    np.testing.assert_allclose(voxels.control[2], mm.control[2] * 1.2, rtol=1e-6)
    vnet = RandomBSplineDeformation()  # the V-Net default: 15 voxels, mesh 2
    assert vnet.sigma_voxels == 15.0 and vnet.draw(
        np.random.default_rng(0), context
    ).control.shape == (3, 5, 5, 5)
    with pytest.raises(ValueError, match="not both"):
        RandomBSplineDeformation(sigma_mm=1.0, sigma_voxels=1.0)


@pytest.mark.parametrize("shape", [(12, 14, 16), (18, 20)])
def test_zero_and_constant_displacement(shape: tuple[int, ...], make_sample: Callable) -> None:  # type: ignore[type-arg]
    sample = make_sample(shape)
    dims = len(shape)
    control = np.zeros((dims, *[5] * dims), dtype=np.float32)
    transform = RandomBSplineDeformation()
    out = transform.apply(sample, BSplineParams(control))
    torch.testing.assert_close(out.image, sample.image, atol=1e-5, rtol=0)
    assert torch.equal(out.label, sample.label)
    control[-1] = 2.0 * sample.spacing_mm[-1]  # +2 voxels along the last axis, in mm
    patch = Compose([transform]).apply(
        sample, (BSplineParams(control),), center=[5.5] * dims, shape=(6,) * dims
    )
    window = (slice(None), *[slice(3, 9)] * (dims - 1), slice(5, 11))
    torch.testing.assert_close(patch.image, sample.image[window], atol=1e-4, rtol=0)


def test_bspline_after_another_map_uses_the_moved_points(make_blob: Callable) -> None:  # type: ignore[type-arg]
    """Affine then B-spline in one grid equals them applied one after the other."""
    sample = Sample(torch.from_numpy(make_blob((24, 26, 28))[None]), spacing=(1.5, 1.0, 1.2))
    pipeline = Compose([RandomBSplineDeformation(sigma_mm=1.5), RandomAffine(degrees=20)])
    params = pipeline.get_params(np.random.default_rng(4), Context.of(sample))
    one_grid = pipeline.apply(sample, params).image
    first = pipeline.transforms[0].apply(sample, params[0])
    both = pipeline.transforms[1].apply(first, params[1]).image
    assert (one_grid - both).abs().max() < 0.03


def test_affine_identity(make_sample: Callable) -> None:  # type: ignore[type-arg]
    sample = make_sample((10, 11, 12))
    out = RandomAffine(degrees=0.0, scale=(1.0, 1.0))(sample, np.random.default_rng(0))
    torch.testing.assert_close(out.image, sample.image, atol=1e-5, rtol=0)
    assert torch.equal(out.label, sample.label)


def test_rotation_on_anisotropic_voxels_is_a_rotation_in_mm(make_blob: Callable) -> None:  # type: ignore[type-arg]
    """A drawn rotation + zoom equals SimpleITK resampling with the same physical transform."""
    shape, spacing = (22, 30, 26), (2.5, 0.8, 1.1)  # z, y, x in mm
    image = make_blob(shape)
    sample = Sample(torch.from_numpy(image[None].copy()), spacing=spacing)
    params = RandomAffine(degrees=25, scale=(0.9, 1.1)).get_params(
        np.random.default_rng(1), Context.of(sample)
    )
    assert params is not None
    ours = RandomAffine().apply(sample, params).image[0].numpy()

    matrix = np.reshape(params.matrix, (3, 3))
    rotation = matrix / np.cbrt(np.linalg.det(matrix))
    np.testing.assert_allclose(rotation @ rotation.T, np.eye(3), atol=1e-6)  # in mm: rigid
    euler = sitk.Euler3DTransform()
    euler.SetMatrix(rotation[::-1, ::-1].ravel().tolist())  # array order -> (x, y, z)
    reference = _sitk_image(image, spacing)
    center = reference.TransformContinuousIndexToPhysicalPoint(
        [(n - 1) / 2 for n in reversed(shape)]
    )
    euler.SetCenter(center)
    scaled = sitk.Similarity3DTransform()
    scaled.SetMatrix(euler.GetMatrix())
    scaled.SetCenter(center)
    scaled.SetScale(float(np.cbrt(np.linalg.det(matrix))))
    expected = sitk.GetArrayFromImage(sitk.Resample(reference, scaled, sitk.sitkLinear, 0.0))
    assert np.abs(ours - expected).max() < 1e-4
    # rotating the voxel array instead (ignoring the spacing) would differ clearly
    voxels = AffineParams(
        tuple((np.diag(1 / np.array(spacing)) @ matrix @ np.diag(spacing)).ravel())
    )
    wrong = RandomAffine().apply(sample, voxels).image[0].numpy()
    assert np.abs(wrong - expected).max() > 0.1


def test_crop_and_overhang(make_sample: Callable) -> None:  # type: ignore[type-arg]
    sample = make_sample((10, 12, 14))
    crop = RandomCrop((8, 8, 8))
    for seed in range(3):
        out = crop(sample, np.random.default_rng(seed))
        assert out.image.shape == (2, 8, 8, 8) and out.label.shape == (1, 8, 8, 8)
    params = crop.get_params(np.random.default_rng(0), Context.of(sample))
    assert isinstance(params, CropParams) and params.size == (8, 8, 8)
    overhang = RandomCrop((12, 12, 16))
    centred = overhang.get_params(np.random.default_rng(0), Context.of(sample))
    assert centred == CropParams((0.0, 0.0, 0.0), (12, 12, 16))  # one voxel more at each end
    large = overhang.apply(sample, centred)
    torch.testing.assert_close(large.image[:, 1:11, :, 1:15], sample.image, atol=1e-5, rtol=0)
    assert int(large.label[:, 0].abs().sum()) == 0  # outside the volume: label 0
    torch.testing.assert_close(large.image[:, 0, :, 1:15], sample.image[:, 0], atol=1e-5, rtol=0)
