"""Every registered transform: seeded parameters, JSON round trip, replay, labels, 2-D and 3-D;
Compose keyed by position; building from config (including the old flat keys)."""

from __future__ import annotations

import json
from collections.abc import Callable

import numpy as np
import pytest
import torch

from volseg._legacy_config import legacy_augment
from volseg.config import AugmentConfig, ConfigError, config_from_dict
from volseg.data.transforms import (
    TRANSFORMS,
    Compose,
    Context,
    IntensityTransform,
    MaskTransform,
    RandomAffine,
    RandomTransform,
    Sample,
    SpatialTransform,
    build_augmentation,
    create_transform,
    list_transforms,
    params_from_dict,
    params_to_dict,
)

SHAPES = {2: (14, 17), 3: (10, 12, 13)}
CASES = [(name, dims) for name in list_transforms() for dims in (2, 3)]


def _transform(name: str, sample: Sample) -> RandomTransform:  # type: ignore[type-arg]
    """``name`` with its defaults, always firing, prepared with the sample and a second case."""
    transform = create_transform(name, p=1.0)
    transform.prepare([sample.image, sample.image * 2 + 1])
    return transform


def _params(transform: RandomTransform, sample: Sample, seed: int):  # type: ignore[no-untyped-def,type-arg]
    return transform.get_params(np.random.default_rng(seed), Context.of(sample, case=0))


def test_registry_holds_the_documented_transforms() -> None:
    assert list_transforms() == [
        "affine", "bias_field", "bspline", "crop", "flip", "fov_cut", "gamma",
        "histogram_matching", "intensity_shift_scale", "noise", "tissue_contrast",
    ]  # fmt: skip
    for name in list_transforms():
        cls = TRANSFORMS.get(name)
        kinds = (SpatialTransform, MaskTransform, IntensityTransform)
        assert cls.name == name and issubclass(cls, kinds)


@pytest.mark.parametrize("name,dims", CASES)
def test_same_seed_same_parameters(name: str, dims: int, make_sample: Callable) -> None:  # type: ignore[type-arg]
    sample = make_sample(SHAPES[dims])
    transform = _transform(name, sample)
    a, b = _params(transform, sample, 3), _params(transform, sample, 3)
    assert a is not None
    assert params_to_dict(a) == params_to_dict(b)


@pytest.mark.parametrize("name,dims", CASES)
def test_params_round_trip_through_json(name: str, dims: int, make_sample: Callable) -> None:  # type: ignore[type-arg]
    sample = make_sample(SHAPES[dims])
    transform = _transform(name, sample)
    params = _params(transform, sample, 1)
    back = params_from_dict(transform.params_type, json.loads(json.dumps(params_to_dict(params))))
    assert type(back) is type(params)
    assert params_to_dict(back) == params_to_dict(params)
    out, again = transform.apply(sample, params), transform.apply(sample, back)
    torch.testing.assert_close(again.image, out.image)


@pytest.mark.parametrize("name,dims", CASES)
def test_replay_labels_and_shapes(name: str, dims: int, make_sample: Callable) -> None:  # type: ignore[type-arg]
    sample = make_sample(SHAPES[dims])
    pipeline = Compose([_transform(name, sample), RandomAffine(degrees=10, p=0.5)])
    params = pipeline.get_params(np.random.default_rng(2), Context.of(sample, case=0))
    out = pipeline.apply(sample, params)
    again = pipeline.apply(sample, params)
    torch.testing.assert_close(again.image, out.image)
    assert out.label is not None and again.label is not None
    assert torch.equal(again.label, out.label)
    assert out.label.dtype == sample.label.dtype  # type: ignore[union-attr]
    assert set(out.label.unique().tolist()) <= {0, 2, 7}
    assert out.image.ndim == dims + 1 and out.image.shape[0] == 2
    if name != "crop":
        assert out.image.shape == sample.image.shape


def test_two_transforms_of_one_class_replay_by_position(make_blob: Callable) -> None:  # type: ignore[type-arg]
    sample = Sample(torch.from_numpy(make_blob((20, 22, 24))[None]), spacing=(2.0, 1.0, 1.5))
    small, large = RandomAffine(degrees=2, scale=(1, 1)), RandomAffine(degrees=40, scale=(1, 1))
    pipeline = Compose([small, large])
    params = pipeline.get_params(np.random.default_rng(0), Context.of(sample))
    angles = [np.arccos(np.clip((np.trace(np.reshape(p.matrix, (3, 3))) - 1) / 2, -1, 1))
              for p in params]  # fmt: skip
    assert angles[0] < np.deg2rad(2 * np.sqrt(3)) < angles[1]  # each drew with its own range
    out = pipeline.apply(sample, params)
    swapped = pipeline.apply(sample, params[::-1])
    assert not torch.allclose(out.image, swapped.image)  # the order of the entries matters
    manual = small.apply(sample, params[0])
    # composing into one grid is applying them in turn (less one interpolation)
    sequential = large.apply(manual, params[1])
    assert (out.image - sequential.image).abs().max() < 0.05


def test_probability_zero_never_fires(make_sample: Callable) -> None:  # type: ignore[type-arg]
    sample = make_sample(SHAPES[2])
    for name in list_transforms():
        transform = _transform(name, sample)
        transform.p = 0.0
        assert _params(transform, sample, 0) is None
        out = transform(sample, np.random.default_rng(0))
        assert out.image is sample.image and out.label is sample.label


def test_build_augmentation_names_the_bad_entry() -> None:
    config = config_from_dict({"augment": {"transforms": [{"name": "flip"}, {"name": "rot"}]}})
    with pytest.raises(ConfigError, match=r"augment.transforms\[1\].name: unknown transform 'rot'"):
        build_augmentation(config.augment)
    good = config_from_dict(
        {"augment": {"transforms": [{"name": "affine", "p": 0.9, "kwargs": {"degrees": 15}}]}}
    )
    (affine,) = build_augmentation(good.augment).transforms
    assert isinstance(affine, RandomAffine) and affine.p == 0.9 and affine.degrees == 15


OLD_DEMO = {
    "flip_axes": [2], "flip_p": 0.5, "affine_p": 0.9, "rotate_deg": 15.0,
    "scale_range": [0.85, 1.15], "elastic_p": 0.5, "elastic_grid": 3, "elastic_sigma": 2.0,
    "intensity_p": 0.9, "shift": 0.3, "scale": 0.3, "gamma_p": 0.5, "gamma_range": [0.6, 1.6],
    "noise_std": 0.15, "bias_p": 0.5, "bias_strength": 0.4, "crops_per_volume": 0,
}  # fmt: skip


def test_legacy_flat_keys_convert_to_the_list() -> None:
    new = legacy_augment(OLD_DEMO)
    assert "flip_p" in OLD_DEMO  # pure: the input is not changed
    assert new["crops_per_volume"] == 0
    assert [(t["name"], t["p"]) for t in new["transforms"]] == [
        ("flip", 0.5), ("affine", 0.9), ("bspline", 0.5), ("bias_field", 0.5), ("gamma", 0.5),
        ("intensity_shift_scale", 0.9), ("noise", 1.0),
    ]  # fmt: skip
    assert new["transforms"][2]["kwargs"] == {"grid": 3, "sigma_voxels": 2.0}
    assert new["transforms"][3]["kwargs"] == {"strength": 2.75 * 0.4}
    assert legacy_augment(new) is new  # already new: unchanged, no warning
    with pytest.warns(FutureWarning, match=r"augment\.\{.*flip_p.*\} -> augment\.transforms"):
        config = config_from_dict({"augment": OLD_DEMO})
    names = [t.name for t in build_augmentation(config.augment).transforms]
    assert names == [t["name"] for t in new["transforms"]]
    vnet = legacy_augment({"elastic_p": 1.0, "histogram_p": 1.0})
    assert [t["name"] for t in vnet["transforms"]] == ["bspline", "histogram_matching"]
    assert vnet["transforms"][0]["kwargs"] == {"grid": 2, "sigma_voxels": 15.0}
    assert AugmentConfig().transforms == ()
