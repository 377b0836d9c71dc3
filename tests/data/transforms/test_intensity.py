"""Intensity transforms: known answers, case-level statistics, patch = crop of volume."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

from volseg.data.transforms import (
    Compose,
    Context,
    RandomBiasField,
    RandomGamma,
    RandomIntensityShiftScale,
    RandomNoise,
    Sample,
)


def test_shift_scale_uses_the_channel_std_over_nonzero_voxels() -> None:
    image = torch.zeros(2, 6, 6, 6)
    image[0, 1:5] = torch.linspace(1, 4, 4 * 36).reshape(4, 6, 6)
    image[1, 2:4] = 3.0 * torch.randn(2, 6, 6, generator=torch.Generator().manual_seed(0))
    sample = Sample(image)
    transform = RandomIntensityShiftScale(shift=0.1, scale=0.1)
    params = transform.get_params(np.random.default_rng(2), Context.of(sample))
    assert params is not None
    out = transform.apply(sample, params).image
    for c in range(2):
        std = float(image[c][image[c] != 0].double().std())
        shift = params.offset[c] / std
        torch.testing.assert_close(out[c], image[c] * params.scale[c] + shift * std)
        assert 0.9 <= params.scale[c] <= 1.1 and abs(shift) <= 0.1


def test_gamma_keeps_the_case_range() -> None:
    image = torch.linspace(-2, 3, 5 * 6 * 7).reshape(1, 5, 6, 7)
    sample = Sample(image)
    params = RandomGamma((0.5, 0.5)).get_params(np.random.default_rng(0), Context.of(sample))
    assert params is not None and abs(params.gamma - 0.5) < 1e-12
    out = RandomGamma().apply(sample, params).image
    expected = ((image + 2) / 5) ** 0.5 * 5 - 2
    torch.testing.assert_close(out, expected)


def test_noise_is_seeded_and_bias_is_smooth_and_positive(make_sample: Callable) -> None:  # type: ignore[type-arg]
    sample = make_sample((8, 9, 10))
    noise = RandomNoise(std=0.5)
    params = noise.get_params(np.random.default_rng(0), Context.of(sample))
    assert params is not None and 0 <= params.std <= 0.5
    torch.testing.assert_close(noise.apply(sample, params).image, noise.apply(sample, params).image)
    bias = RandomBiasField(strength=0.4)
    bias_params = bias.get_params(np.random.default_rng(0), Context.of(sample))
    assert bias_params is not None and bias_params.control.shape == (4, 4, 4)
    out = bias.apply(sample, bias_params).image
    low = sample.image.amin(dim=(1, 2, 3), keepdim=True)
    above = (sample.image - low) > 1e-2
    ratio = ((out - low) / (sample.image - low))[above]
    assert float(ratio.min()) > np.exp(-0.4) - 1e-4 and float(ratio.max()) < np.exp(0.4) + 1e-4


def test_patch_is_the_crop_of_the_transformed_volume(make_sample: Callable) -> None:  # type: ignore[type-arg]
    """Pointwise intensity transforms use case statistics, so a patch matches its volume."""
    sample = make_sample((12, 12, 12))
    pipeline = Compose([RandomGamma(), RandomIntensityShiftScale(shift=0.3, scale=0.3)])
    params = pipeline.get_params(np.random.default_rng(1), Context.of(sample))
    whole = pipeline.apply(sample, params).image
    patch = pipeline.apply(sample, params, center=[5.0, 6.0, 7.0], shape=(5, 5, 5)).image
    torch.testing.assert_close(patch, whole[:, 3:8, 4:9, 5:10], atol=1e-5, rtol=1e-5)


def test_legacy_bias_strength_factor_keeps_the_field_std() -> None:
    """The old trilinear field (3 control values per axis, U(-s, s)) and the B-spline field of
    strength 2.75 s have the same std (legacy_augment's factor)."""
    rng = np.random.default_rng(0)
    old, new = [], []
    for _ in range(100):
        control = torch.from_numpy(rng.uniform(-0.4, 0.4, (1, 1, 3, 3, 3)).astype(np.float32))
        old.append(
            float(
                F.interpolate(control, size=(32,) * 3, mode="trilinear", align_corners=True).std()
            )
        )
        params = RandomBiasField(strength=2.75 * 0.4).draw(
            rng, Context.of(Sample(torch.zeros(1, 32, 32, 32)))
        )
        new.append(float(RandomBiasField().transform_image(torch.ones(1, 32, 32, 32), params)
                         .log().std()))  # fmt: skip
    assert abs(np.mean(new) / np.mean(old) - 1) < 0.1
