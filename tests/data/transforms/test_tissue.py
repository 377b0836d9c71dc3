"""tissue_contrast: each label value's own gain, blended as scipy's Gaussian blends, exact inside
a tissue, patches agreeing with the whole volume, replayable, and refused without a label."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from scipy import ndimage

from volseg.data.transforms import (
    Compose,
    Context,
    RandomTissueContrast,
    Sample,
    TissueContrastParams,
    create_transform,
    params_from_dict,
    params_to_dict,
    tissue_gain_map,
)

SPACING = (3.0, 1.5, 1.0)


def _sample() -> Sample:
    gen = torch.Generator().manual_seed(0)
    image = torch.rand((1, 24, 30, 32), generator=gen) * 100 + 10
    label = torch.zeros((1, 24, 30, 32), dtype=torch.int64)
    label[0, 6:18, 8:22, 8:24] = 1
    label[0, 10:14, 12:18, 12:20] = 3  # a nested tissue with its own gain
    return Sample(image, label, SPACING)


def _draw(transform: RandomTissueContrast, sample: Sample, seed: int = 0) -> TissueContrastParams:
    params = transform.get_params(np.random.default_rng(seed), Context.of(sample))
    assert isinstance(params, TissueContrastParams)
    return params


def _gains(transform: RandomTissueContrast, params: TissueContrastParams) -> dict[int, float]:
    label = torch.tensor([0, 1, 3]).view(1, 3, 1, 1)
    gain = tissue_gain_map(label, (1.0, 1.0, 1.0), params.seed, transform.gain, 0.0)
    return {v: float(gain[0, i, 0, 0]) for i, v in enumerate((0, 1, 3))}


def test_gain_map_matches_scipy_gaussian_blend() -> None:
    sample = _sample()
    transform = RandomTissueContrast(gain=(0.5, 2.0), sigma_mm=2.0, p=1.0)
    params = _draw(transform, sample)
    assert sample.label is not None
    ours = tissue_gain_map(sample.label, SPACING, params.seed, transform.gain, 2.0)[0].numpy()
    gains = _gains(transform, params)
    label = sample.label[0].numpy()
    sigma = [2.0 / s for s in SPACING]  # scipy takes voxels; truncate 3 sigma as ours
    expected = np.full(label.shape, gains[0])
    for value in (1, 3):
        blur = ndimage.gaussian_filter(
            (label == value).astype(np.float64), sigma, mode="nearest", truncate=3.0
        )
        expected += (gains[value] - gains[0]) * blur
    np.testing.assert_allclose(ours, expected, atol=2e-3)


def test_each_tissue_keeps_its_own_gain_above_the_floor_and_the_label_is_unchanged() -> None:
    sample = _sample()
    transform = RandomTissueContrast(gain=(0.5, 2.0), sigma_mm=0.0, p=1.0)
    params = _draw(transform, sample)
    out = transform.apply(sample, params)
    gains = _gains(transform, params)
    assert len(set(gains.values())) == 3
    assert all(0.5 <= g <= 2.0 for g in gains.values())
    assert sample.label is not None and out.label is not None
    assert torch.equal(out.label, sample.label)
    low = float(sample.image.min())
    assert params.low == pytest.approx((low,))
    for value, gain in gains.items():
        inside = sample.label == value
        expected = (sample.image[inside] - low) * gain + low
        torch.testing.assert_close(out.image[inside], expected, rtol=1e-5, atol=1e-4)


def test_a_patch_agrees_with_the_whole_volume_away_from_its_border() -> None:
    sample = _sample()
    transform = RandomTissueContrast(gain=(0.5, 2.0), sigma_mm=2.0, p=1.0)
    compose = Compose([transform])
    params = compose.get_params(np.random.default_rng(3), Context.of(sample))
    whole = compose.apply(sample, params).image
    patch = compose.apply(sample, params, center=(11.5, 14.5, 15.5), shape=(16, 20, 24)).image
    # the patch starts at voxel (4, 5, 4); the blur reaches 3 sigma (2, 4, 6 voxels per axis)
    inner = patch[:, 2:-2, 4:-4, 6:-6]
    torch.testing.assert_close(inner, whole[:, 6:18, 9:21, 10:22], rtol=1e-5, atol=1e-4)


def test_params_round_trip_and_replay() -> None:
    sample = _sample()
    transform = create_transform("tissue_contrast", gain=[0.7, 1.4], p=1.0)
    assert isinstance(transform, RandomTissueContrast)
    params = _draw(transform, sample, seed=5)
    again = params_from_dict(TissueContrastParams, json.loads(json.dumps(params_to_dict(params))))
    assert again == params
    torch.testing.assert_close(
        transform.apply(sample, again).image, transform.apply(sample, params).image
    )


def test_one_tissue_is_a_global_gain() -> None:
    label = torch.ones((1, 5, 6, 7), dtype=torch.int64)
    gain = tissue_gain_map(label, (1.0, 1.0, 1.0), seed=11, gain=(0.5, 2.0), sigma_mm=2.0)
    assert float(gain.min()) == float(gain.max())
    assert math.log(0.5) <= math.log(float(gain.max())) <= math.log(2.0)


def test_needs_a_label_and_checks_its_arguments() -> None:
    sample = _sample()
    transform = RandomTissueContrast(p=1.0)
    params = _draw(transform, sample)
    with pytest.raises(ValueError, match="needs a label"):
        transform.apply(Sample(sample.image, None, SPACING), params)
    with pytest.raises(ValueError, match="gain"):
        RandomTissueContrast(gain=(2.0, 0.5))
    with pytest.raises(ValueError, match="sigma_mm"):
        RandomTissueContrast(sigma_mm=-1.0)
