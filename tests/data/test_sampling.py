from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from volseg.config import AugmentConfig, ConfigError, PreprocessConfig, TransformConfig
from volseg.data import transforms
from volseg.data.preprocessing import preprocess
from volseg.data.sampling import LoadedCase, PatchDataset, build_loader, labels_to_indices
from volseg.data.synthetic import make_phantom
from volseg.data.transforms import HistogramParams, RandomAffine, list_transforms


def _cases(n: int) -> list[LoadedCase]:
    cases = []
    for i in range(n):
        image, label = make_phantom(shape=(16, 18, 20), seed=i)
        work, work_label, record = preprocess(image, PreprocessConfig(orient=None), label)
        assert work_label is not None
        target = labels_to_indices(work_label.array, [0, 1], "phantom")
        points = np.argwhere(target[0] > 0)
        cases.append(
            LoadedCase(
                f"c{i}", torch.from_numpy(work.array), torch.from_numpy(target), points, record
            )
        )
    return cases


AUGMENT = AugmentConfig(
    transforms=(
        TransformConfig("flip", 0.5, {"axes": [0, 1, 2]}),
        TransformConfig("bspline", 0.5, {"sigma_voxels": 2.0}),
        TransformConfig("histogram_matching", 0.5),
        TransformConfig("intensity_shift_scale", 0.5),
    )
)
HISTOGRAM = AugmentConfig(transforms=(TransformConfig("histogram_matching", 1.0),))


def test_sample_params_replay_the_sample() -> None:
    data = PatchDataset(_cases(3), (8, 8, 8), AUGMENT, 0.5, 6, seed=1)
    data.set_epoch(2)
    image, target = data[4]
    again = data.apply(data.sample_params(4))
    torch.testing.assert_close(again[0], image)
    assert torch.equal(again[1], target)
    data.set_epoch(3)
    assert not torch.equal(data[4][0], image)  # another epoch, other samples


def test_histogram_matching_uses_another_case() -> None:
    data = PatchDataset(_cases(3), (8, 8, 8), HISTOGRAM, 0.5, 20, seed=0)
    for i in range(20):
        params = data.sample_params(i)
        (histogram,) = params.transforms
        assert isinstance(histogram, HistogramParams) and histogram.reference != params.case


def test_crops_per_volume_walk_cases_in_blocks() -> None:
    augment = AugmentConfig(crops_per_volume=3)
    data = PatchDataset(_cases(4), (8, 8, 8), augment, 0.5, 12, seed=0)
    cases = [data.sample_params(i).case for i in range(12)]
    blocks = [cases[i : i + 3] for i in range(0, 12, 3)]
    assert all(len(set(b)) == 1 for b in blocks)
    assert sorted(b[0] for b in blocks) == [0, 1, 2, 3]


def test_param_log_writes_one_line_per_sample(tmp_path: Path) -> None:
    log = tmp_path / "params.jsonl"
    data = PatchDataset(_cases(2), (8, 8, 8), AUGMENT, 0.5, 4, seed=0, param_log=log)
    for batch in build_loader(data, batch_size=2):
        assert batch[0].shape == (2, 1, 8, 8, 8) and batch[1].shape == (2, 1, 8, 8, 8)
    lines = [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines()]
    assert [entry["index"] for entry in lines] == [0, 1, 2, 3]
    assert {"case_id", "slice", "center", "transforms"} <= set(lines[0])
    names = [entry["name"] for entry in lines[0]["transforms"]]
    assert names == ["flip", "bspline", "histogram_matching", "intensity_shift_scale"]


def test_workers_follow_set_epoch() -> None:
    data = PatchDataset(_cases(2), (8, 8, 8), AUGMENT, 0.5, 2, seed=0)
    loader = build_loader(data, batch_size=2, num_workers=1)
    seen = []
    for epoch in (1, 2):
        data.set_epoch(epoch)
        seen.append(next(iter(loader))[0])
        data_copy = data.apply(data.sample_params(0))[0]
        torch.testing.assert_close(seen[-1][0], data_copy)
    assert not torch.equal(seen[0], seen[1])


def test_2d_patches_of_3d_cases_are_slices() -> None:
    """Without augmentation a 2-D patch is the window of its slice around the centre voxel."""
    cases = _cases(2)
    data = PatchDataset(cases, (5, 7), AugmentConfig(), 1.0, samples_per_epoch=12, seed=0)
    compared, slices = 0, set()
    for index in range(12):
        params = data.sample_params(index)
        z, (cy, cx) = params.slice, params.center
        image, target = data.apply(params)
        assert image.shape == (1, 5, 7) and target.shape == (1, 5, 7)
        case = cases[params.case]
        assert case.target[0, z].any()  # foreground oversampling picks a foreground slice
        y0, x0 = int(cy) - 2, int(cx) - 3  # foreground centres are voxels: no interpolation
        if y0 >= 0 and x0 >= 0 and y0 + 5 <= case.image.shape[2] and x0 + 7 <= case.image.shape[3]:
            torch.testing.assert_close(image, case.image[:, z, y0 : y0 + 5, x0 : x0 + 7])
            assert torch.equal(target, case.target[:, z, y0 : y0 + 5, x0 : x0 + 7])
            compared += 1
        slices.add((params.case, z))
    assert compared >= 6 and len(slices) > 1


def test_2d_patches_of_3d_cases_rotate_in_the_slice_plane() -> None:
    augment = AugmentConfig(transforms=(TransformConfig("affine", 1.0, {"degrees": 30}),))
    data = PatchDataset(_cases(2), (6, 6), augment, 0.5, samples_per_epoch=2, seed=0)
    params = data.sample_params(0)
    (affine,) = params.transforms
    assert len(affine.matrix) == 4  # one in-plane rotation of the slice
    image, target = data.apply(params)
    assert image.shape == (1, 6, 6) and target.shape == (1, 6, 6)


def test_unknown_transform_name_fails_at_construction() -> None:
    augment = AugmentConfig(transforms=(TransformConfig("flp", 0.5),))
    with pytest.raises(ConfigError, match=r"augment.transforms\[0\].name.*'flp'") as err:
        PatchDataset(_cases(1), (8, 8, 8), augment, 0.5, 2, seed=0)
    assert ", ".join(list_transforms()) in str(err.value)
    crop = AugmentConfig(transforms=(TransformConfig("crop", 1.0, {"size": 8}),))
    with pytest.raises(ConfigError, match="crop"):
        PatchDataset(_cases(1), (8, 8, 8), crop, 0.5, 2, seed=0)
    bad = AugmentConfig(transforms=(TransformConfig("affine", 1.0, {"degree": 5}),))
    with pytest.raises(ConfigError, match=r"transforms\[0\] \(affine\).*degree"):
        PatchDataset(_cases(1), (8, 8, 8), bad, 0.5, 2, seed=0)


def test_sampler_calls_the_registered_transforms(monkeypatch: pytest.MonkeyPatch) -> None:
    """PatchDataset builds its augmentation from the registry's classes and runs their code."""
    calls = {"draw": 0, "map_points": 0}
    draw, map_points = RandomAffine.draw, RandomAffine.map_points

    def spy_draw(self, rng, context):  # type: ignore[no-untyped-def]
        calls["draw"] += 1
        return draw(self, rng, context)

    def spy_map(self, points, params, shape, spacing):  # type: ignore[no-untyped-def]
        calls["map_points"] += 1
        return map_points(self, points, params, shape, spacing)

    monkeypatch.setattr(RandomAffine, "draw", spy_draw)
    monkeypatch.setattr(RandomAffine, "map_points", spy_map)
    assert transforms.TRANSFORMS.get("affine") is RandomAffine
    augment = AugmentConfig(transforms=(TransformConfig("affine", 1.0),))
    data = PatchDataset(_cases(1), (8, 8, 8), augment, 0.5, 3, seed=0)
    assert isinstance(data.transforms.transforms[0], RandomAffine)
    for i in range(3):
        data[i]
    assert calls == {"draw": 3, "map_points": 3}


def test_a_logged_sample_replays_from_its_json_line(tmp_path: Path) -> None:
    log = tmp_path / "params.jsonl"
    data = PatchDataset(_cases(2), (8, 8, 8), AUGMENT, 0.5, 3, seed=4, param_log=log)
    image, target = data[2]
    params = data.params_from_dict(json.loads(log.read_text(encoding="utf-8").splitlines()[0]))
    assert params.index == 2 and len(params.transforms) == len(AUGMENT.transforms)
    again = data.apply(params)
    torch.testing.assert_close(again[0], image)
    assert torch.equal(again[1], target)
