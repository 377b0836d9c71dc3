"""fov_cut: parameters drawn and replayed, the whole volume against a direct numpy construction,
patches against the whole volume, the label cut with the content, p = 0 is the identity."""

from __future__ import annotations

import json
from collections.abc import Callable

import numpy as np
import pytest
import torch

from volseg.data.transforms import (
    Compose,
    Context,
    FovCutParams,
    RandomFlip,
    RandomFovCut,
    RandomNoise,
    Sample,
    channel_stats,
    create_transform,
    head_box,
    params_from_dict,
    params_to_dict,
)


def _reference(sample: Sample, params: FovCutParams) -> tuple[np.ndarray, np.ndarray]:
    """The cut built directly: crop to the box, read as volseg reads volume ends (the border
    values beyond), then write the fill beyond the box and 0 into the label there."""
    image = sample.image.numpy()
    label = sample.label.numpy()  # type: ignore[union-attr]
    shape = image.shape[1:]
    outside = np.zeros(shape, dtype=bool)
    for axis, (low, high) in enumerate(zip(params.first, params.last)):
        index = np.arange(shape[axis])
        keep = np.ones(shape[axis], dtype=bool)
        if low is not None:
            keep &= index >= low
        if high is not None:
            keep &= index <= high
        source = np.clip(
            index, low if low is not None else 0, high if high is not None else index[-1]
        )
        image = np.take(image, source, axis=axis + 1)
        view = [1] * len(shape)
        view[axis] = shape[axis]
        outside |= ~keep.reshape(view)
    image = image.copy()
    if params.fill is not None:
        for c, value in enumerate(params.fill):
            image[c][outside] = value
    label = np.where(outside[None], 0, label)
    return image, label


@pytest.mark.parametrize(
    "params",
    [
        FovCutParams((2, None, None), (None, None, 9), (-3.0, 5.0)),  # low z, high x, a value
        FovCutParams((None, 4, None), (7, 8, None), None),  # edge: the scan ends at the cut
        FovCutParams((None, None, None), (None, None, None), (0.0, 0.0)),  # nothing cut
    ],
)
def test_whole_volume_is_the_direct_construction(
    params: FovCutParams, make_sample: Callable
) -> None:  # type: ignore[type-arg]
    sample = make_sample((10, 12, 13))
    out = RandomFovCut().apply(sample, params)
    image, label = _reference(sample, params)
    np.testing.assert_allclose(out.image.numpy(), image, atol=1e-5)
    assert out.label is not None and out.label.dtype == sample.label.dtype  # type: ignore[union-attr]
    np.testing.assert_array_equal(out.label.numpy(), label)


def test_2d_edge_cut_replicates_the_last_kept_row(make_sample: Callable) -> None:  # type: ignore[type-arg]
    sample = make_sample((14, 17))
    params = FovCutParams((3, None), (None, 12), None)
    out = RandomFovCut().apply(sample, params)
    image, label = _reference(sample, params)
    np.testing.assert_allclose(out.image.numpy(), image, atol=1e-5)
    np.testing.assert_array_equal(out.label.numpy(), label)  # type: ignore[union-attr]
    torch.testing.assert_close(out.image[:, 0, :13], sample.image[:, 3, :13].clone())
    torch.testing.assert_close(out.image[:, 5, 13:], sample.image[:, 5, 12:13].expand(2, 4))
    assert not out.label[:, :3].any() and not out.label[:, :, 13:].any()  # type: ignore[index]


def test_params_are_seeded_within_the_head_and_replay_through_json() -> None:
    shape = (20, 24, 22)
    image = torch.zeros((1, *shape))
    image[0, 4:17, 3:21, 5:20] = 1.0 + torch.rand(
        (13, 18, 15), generator=torch.Generator().manual_seed(0)
    )
    sample = Sample(image, (image > 1.5).to(torch.uint8), (2.0, 1.0, 1.5))
    assert head_box(Context.of(sample)) == ([4, 3, 5], [16, 20, 19])
    cut = RandomFovCut(depth=(0.1, 0.4), borders=3, fill=["minimum", "edge", -2.0], p=1.0)
    context = Context.of(sample)
    seen_borders, seen_fills = set(), set()
    for seed in range(60):
        params = cut.get_params(np.random.default_rng(seed), context)
        assert params is not None
        again = cut.get_params(np.random.default_rng(seed), context)
        assert params == again
        borders = [(a, 0) for a, v in enumerate(params.first) if v is not None]
        borders += [(a, 1) for a, v in enumerate(params.last) if v is not None]
        assert 1 <= len(borders) <= 3
        seen_borders.update(borders)
        seen_fills.add(params.fill)
        head = ([4, 3, 5], [16, 20, 19])
        for axis, side in borders:
            extent = head[1][axis] - head[0][axis] + 1
            if side == 0:
                depth = params.first[axis] - head[0][axis]  # type: ignore[operator]
            else:
                depth = head[1][axis] - params.last[axis]  # type: ignore[operator]
            assert int(0.1 * extent) <= depth <= int(0.4 * extent)
        back = params_from_dict(FovCutParams, json.loads(json.dumps(params_to_dict(params))))
        assert back == params
        torch.testing.assert_close(cut.apply(sample, back).image, cut.apply(sample, params).image)
    assert len(seen_borders) == 6  # every border of every axis gets cut
    assert seen_fills == {(0.0,), None, (-2.0,)}  # minimum, edge, the number


def test_patch_is_the_same_region_of_the_whole_volume(make_sample: Callable) -> None:  # type: ignore[type-arg]
    """The cut is in the case's voxels: a patch (also one the cut runs through, and the noise
    after it) is the region of the whole result."""
    sample = make_sample((16, 18, 20))
    pipeline = Compose([RandomFovCut(p=1.0), RandomNoise(std=0.5, p=1.0)])
    noise = RandomNoise(std=0.5).draw(np.random.default_rng(0), Context.of(sample))
    params = (FovCutParams((5, None, 3), (None, 12, None), (-4.0, 4.0)), noise)
    noiseless = (params[0], None)
    whole = pipeline.apply(sample, noiseless)
    assert whole.label is not None
    for center, shape in [((8.0, 9.0, 10.0), (7, 9, 5)), ((4.0, 13.0, 2.0), (5, 5, 5))]:
        patch = pipeline.apply(sample, noiseless, center=center, shape=shape)
        region = tuple(slice(int(c) - n // 2, int(c) - n // 2 + n) for c, n in zip(center, shape))
        torch.testing.assert_close(patch.image, whole.image[(slice(None), *region)])
        assert patch.label is not None
        assert torch.equal(patch.label, whole.label[(slice(None), *region)])
    # the noise acts after the cut: the filled region is background plus noise, as the scan's own
    noisy = pipeline.apply(sample, params)
    torch.testing.assert_close(noisy.image, RandomNoise().transform_image(whole.image, params[1]))
    assert float(noisy.image[0, :5].std()) > 0.2


def test_the_cut_moves_with_the_content(make_sample: Callable) -> None:  # type: ignore[type-arg]
    """Cut below voxel 4 of axis 0, then flip axis 0: the label is 0 in the last 4 output rows
    (and the fill is there), the rest is the flipped label."""
    sample = make_sample((12, 10, 9))
    pipeline = Compose([RandomFlip(p=1.0, axes=[0]), RandomFovCut(p=1.0)])
    flip = RandomFlip(axes=[0]).draw(np.random.default_rng(0), Context.of(sample))
    cut = FovCutParams((4, None, None), (None, None, None), (-7.0, -7.0))
    out = pipeline.apply(sample, (flip, cut))
    assert out.label is not None and sample.label is not None
    flipped = sample.label.flip(1)
    assert not out.label[:, 8:].any()
    assert torch.equal(out.label[:, :8], flipped[:, :8])
    assert bool((out.image[:, 8:] == -7.0).all())


def test_fill_minimum_is_the_case_minimum_and_p_zero_is_the_identity(make_sample: Callable) -> None:  # type: ignore[type-arg]
    sample = make_sample((10, 12, 13))
    cut = RandomFovCut(fill="minimum", p=1.0)
    params = cut.get_params(np.random.default_rng(0), Context.of(sample))
    assert params is not None
    assert params.fill == tuple(s.minimum for s in channel_stats(sample.image))
    never = create_transform("fov_cut", p=0.0)
    assert never.get_params(np.random.default_rng(0), Context.of(sample)) is None
    out = never(sample, np.random.default_rng(0))
    assert out.image is sample.image and out.label is sample.label


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"depth": (0.2, 0.1)}, "depth"),
        ({"depth": (0.0, 1.0)}, "depth"),
        ({"borders": 0}, "borders"),
        ({"fill": "zero"}, "fill"),
        ({"fill": []}, "fill"),
    ],
)
def test_bad_arguments_are_one_line_errors(kwargs: dict, message: str) -> None:  # type: ignore[type-arg]
    with pytest.raises(ValueError, match=message):
        RandomFovCut(**kwargs)
