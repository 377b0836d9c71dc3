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


# -- whole-volume transforms on a sample dict ---------------------------------------------------

from pathlib import Path  # noqa: E402

import SimpleITK as sitk  # noqa: E402

from volseg.data.augmentation import (  # noqa: E402
    BSplineParams,
    Compose,
    RandomAffine,
    RandomBiasField,
    RandomBSplineDeformation,
    RandomCrop,
    RandomFlip,
    RandomGamma,
    RandomHistogramMatching,
    RandomIntensityShiftScale,
    RandomNoise,
    histogram_table,
    match_histogram,
)


def _blob(shape: tuple[int, ...]) -> np.ndarray:
    """A smooth image that is exactly 0 within 4 voxels of the border (boundary-free tests)."""
    axes = np.meshgrid(*[np.linspace(-1, 1, n) for n in shape], indexing="ij")
    radius2 = sum((a / 0.6) ** 2 for a in axes)
    image = np.cos(3 * axes[-1]) * np.clip(1 - radius2, 0, None) ** 2
    return image.astype(np.float32)


def test_bspline_deformation_matches_simpleitk() -> None:
    """Same control points in ITK's BSplineTransform + linear Resample: max |diff| < 1e-5."""
    shape = (20, 24, 28)  # z, y, x
    image = _blob(shape)
    transform = RandomBSplineDeformation(grid=(2, 3, 2), sigma=2.0)
    sample = {"image": torch.from_numpy(image[None].copy())}
    params = transform.get_params(np.random.default_rng(0), sample)
    ours = transform.apply(sample, params)["image"][0].numpy()

    reference = sitk.GetImageFromArray(image)
    itk = sitk.BSplineTransform(3, 3)
    itk.SetTransformDomainOrigin((0.0, 0.0, 0.0))  # first to last voxel centre
    itk.SetTransformDomainPhysicalDimensions([float(n - 1) for n in reversed(shape)])
    itk.SetTransformDomainMeshSize([2, 3, 2][::-1])
    itk.SetTransformDomainDirection((1.0, 0, 0, 0, 1.0, 0, 0, 0, 1.0))
    control = params.control  # (3, *mesh + 3), components in array order (z, y, x)
    coefficients = np.concatenate([control[2].ravel(), control[1].ravel(), control[0].ravel()])
    itk.SetParameters(coefficients.astype(float).tolist())
    expected = sitk.GetArrayFromImage(sitk.Resample(reference, itk, sitk.sitkLinear, 0.0))
    assert np.abs(ours - expected).max() < 1e-5
    assert np.abs(ours - image).max() > 0.05  # it did deform


@pytest.mark.parametrize("shape", [(12, 14, 16), (18, 20)])
def test_zero_displacement_is_identity(shape: tuple[int, ...]) -> None:
    image, label = _volume(shape)
    transform = RandomBSplineDeformation()
    control = np.zeros((len(shape), *[5] * len(shape)), dtype=np.float32)
    out = transform.apply({"image": image, "label": label}, BSplineParams(control))
    torch.testing.assert_close(out["image"], image, atol=1e-5, rtol=0)
    assert torch.equal(out["label"], label)


@pytest.mark.parametrize("shape", [(24, 24, 24), (32, 30)])
def test_deformation_keeps_label_values(shape: tuple[int, ...]) -> None:
    image, label = _volume(shape)
    label = label * 2 + 3 * (label == 2)  # values {0, 2, 7}
    out = RandomBSplineDeformation(sigma=4.0)(
        {"image": image, "label": label}, np.random.default_rng(1)
    )
    assert set(out["label"].unique().tolist()) <= {0, 2, 7}
    assert out["label"].dtype == label.dtype and out["image"].shape == image.shape
    assert not torch.equal(out["label"], label)


def test_sigma_in_mm_divides_by_spacing() -> None:
    sample = {"image": torch.zeros(1, 8, 8, 8)}
    voxels = RandomBSplineDeformation(sigma=6.0).draw(np.random.default_rng(0), sample)
    mm = RandomBSplineDeformation(sigma=6.0, units="mm", spacing=(3.0, 1.0, 2.0)).draw(
        np.random.default_rng(0), sample
    )
    np.testing.assert_allclose(mm.control[0], voxels.control[0] / 3.0, rtol=1e-6)
    np.testing.assert_allclose(mm.control[2], voxels.control[2] / 2.0, rtol=1e-6)


def test_histogram_matching_agrees_with_simpleitk(shared_data: Path) -> None:
    """Colin27 T1 matched to the MNI152 T1: within 1e-3 of ITK's filter (range 0..255)."""
    source = sitk.ReadImage(str(shared_data / "colin27" / "ch2.nii.gz"), sitk.sitkFloat32)
    reference = sitk.ReadImage(
        str(shared_data / "mni152" / "mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz"),
        sitk.sitkFloat32,
    )
    expected = sitk.GetArrayFromImage(sitk.HistogramMatching(source, reference, 1024, 7, True))
    ref = sitk.GetArrayFromImage(reference)
    transform = RandomHistogramMatching([ref[None]], levels=1024, points=7)
    sample = {"image": torch.from_numpy(sitk.GetArrayFromImage(source)[None])}
    out = transform(sample, np.random.default_rng(0))["image"][0].numpy()
    assert np.abs(out - expected).max() < 1e-3


def test_histogram_matching_maps_quantiles_onto_reference() -> None:
    rng = np.random.default_rng(0)
    source = torch.from_numpy(rng.gamma(2.0, 10.0, 50_000).astype(np.float32))
    target = rng.normal(100.0, 5.0, 50_000).astype(np.float32)
    src_table = histogram_table(source.numpy(), threshold_at_mean=False)
    ref_table = histogram_table(target, threshold_at_mean=False)
    mapped = histogram_table(match_histogram(source, src_table, ref_table), threshold_at_mean=False)
    np.testing.assert_allclose(mapped.quantiles, ref_table.quantiles, rtol=1e-3)


def test_flip_probabilities_and_2d() -> None:
    image, label = _volume((6, 7))
    sample = {"image": image, "label": label}
    out = RandomFlip(p=1.0)(sample, np.random.default_rng(0))
    assert torch.equal(out["image"], image.flip(1, 2)) and torch.equal(
        out["label"], label.flip(1, 2)
    )
    assert RandomFlip(p=0.0)(sample, np.random.default_rng(0)) is sample
    flips = [RandomFlip(p=0.75).draw(np.random.default_rng(i), sample).axes for i in range(400)]
    rate = sum(0 in f for f in flips) / len(flips)
    assert 0.68 < rate < 0.82


def test_random_crops_and_padding() -> None:
    image, label = _volume((10, 12, 14))
    sample = {"image": image, "label": label}
    crops = RandomCrop((8, 8, 8)).crops(sample, 3, np.random.default_rng(0))
    assert len(crops) == 3 and all(c["image"].shape == (2, 8, 8, 8) for c in crops)
    padded = RandomCrop((12, 12, 16))(sample, np.random.default_rng(0))
    assert padded["image"].shape == (2, 12, 12, 16) and padded["label"].shape == (1, 12, 12, 16)
    assert float(padded["image"][:, 0].abs().sum()) == 0.0  # one padded slice of zeros in z
    torch.testing.assert_close(padded["image"][:, 1:11, :, 1:15], image)


def test_intensity_shift_scale_uses_channel_std() -> None:
    image = torch.zeros(2, 6, 6, 6)
    image[0, 1:5] = torch.linspace(1, 4, 4 * 36).reshape(4, 6, 6)
    image[1, 2:4] = 3.0 * torch.randn(2, 6, 6, generator=torch.Generator().manual_seed(0))
    transform = RandomIntensityShiftScale(shift=0.1, scale=0.1)
    params = transform.draw(np.random.default_rng(2), {"image": image})
    out = transform.apply({"image": image}, params)["image"]
    for c in range(2):
        std = float(image[c][image[c] != 0].std())
        torch.testing.assert_close(out[c], image[c] * params.scale[c] + params.shift[c] * std)
        assert 0.9 <= params.scale[c] <= 1.1 and abs(params.shift[c]) <= 0.1


def test_affine_identity_and_compose_replay() -> None:
    image, label = _volume((10, 11, 12))
    sample = {"image": image, "label": label}
    affine = RandomAffine(degrees=0.0, scale=(1.0, 1.0))
    out = affine(sample, np.random.default_rng(0))
    torch.testing.assert_close(out["image"], image, atol=1e-5, rtol=0)
    pipeline = Compose(
        [
            RandomFlip(p=0.5),
            RandomAffine(p=0.5),
            RandomBSplineDeformation(sigma=2.0, p=0.8),
            RandomIntensityShiftScale(),
            RandomGamma(p=0.5),
            RandomBiasField(p=0.5),
            RandomNoise(std=0.1, p=0.5),
        ],
        record=True,
    )
    first = pipeline(sample, np.random.default_rng(5))
    again = pipeline.replay(sample, first["params"])
    torch.testing.assert_close(again["image"], first["image"])
    assert torch.equal(again["label"], first["label"])
    assert set(first["label"].unique().tolist()) <= {0, 1, 2}
    second = pipeline(sample, np.random.default_rng(5))
    torch.testing.assert_close(second["image"], first["image"])
