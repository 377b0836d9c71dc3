from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from volseg.config import Config, DataConfig, InferConfig, PreprocessConfig, TrainConfig
from volseg.data.synthetic import make_phantom
from volseg.inference import Predictor
from volseg.io import Volume, VolumeReadError, write_volume
from volseg.nn import create_model
from volseg.nn.sliding_window import sliding_window_forward


class Threshold(nn.Module):
    """A pointwise 'network': foreground logit = intensity - 70 (the phantom's organ is ~120)."""

    spatial_dims, divisor, in_channels, out_channels, output_kind = 3, 1, 1, 2, "logits"

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv3d(1, 2, 1)
        with torch.no_grad():
            self.conv.weight.zero_()
            self.conv.bias.zero_()
            self.conv.weight[1] = 1.0
            self.conv.bias[1] = -70.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


def _config(**preprocess: object) -> Config:
    return Config(
        preprocess=PreprocessConfig(normalize="none", **preprocess),  # type: ignore[arg-type]
        train=TrainConfig(patch_size=(16, 16, 16)),
    )


def _padded(volume: Volume, pad: int = 2) -> Volume:
    array = np.pad(volume.array, [(0, 0)] + [(pad, pad)] * volume.ndim)
    origin = np.asarray(volume.origin) - volume.direction_matrix @ (
        np.asarray(volume.spacing) * pad
    )
    return Volume(array, volume.spacing, tuple(origin), volume.direction)


def test_prediction_lands_on_the_source_grid(phantom: tuple[Volume, Volume]) -> None:
    """Reorientation + crop + resampling are undone: the output has the input's geometry."""
    image = _padded(phantom[0])
    config = _config(orient="LPS", target_spacing=(1.5, 1.5, 1.5), crop_nonzero=True)
    model = create_model("vnet", in_channels=1, out_channels=3, base_channels=4, kernel_size=3)
    predictor = Predictor(model, config, labels=[0, 1, 4], in_channels=1)
    label = predictor.predict(image)
    assert label.shape == image.shape
    assert label.spacing == image.spacing
    assert label.origin == image.origin
    assert label.direction == image.direction
    assert set(np.unique(label.array)) <= {0, 1, 4}


def test_pointwise_model_reproduces_its_function_exactly(phantom: tuple[Volume, Volume]) -> None:
    """Without resampling, mapping back is exact: a threshold 'net' gives the threshold."""
    image = _padded(phantom[0])
    predictor = Predictor(Threshold(), _config(orient="RAS", crop_nonzero=True), [0, 1], 1)
    label = predictor.predict(image)
    np.testing.assert_array_equal(label.array[0], (image.array[0] > 70).astype(np.uint8))


def test_pointwise_model_after_resampling_agrees_closely(phantom: tuple[Volume, Volume]) -> None:
    image = phantom[0]
    config = _config(orient="LPS", target_spacing=(1.0, 1.0, 1.0), crop_nonzero=False)
    label = Predictor(Threshold(), config, [0, 1], 1).predict(image)
    truth = phantom[1].array > 0
    assert ((label.array > 0) == truth).mean() > 0.97


def test_sliding_window_equals_whole_volume_for_pointwise_net() -> None:
    image = torch.randn(1, 21, 26, 19) * 50 + 70
    whole = sliding_window_forward(Threshold(), image)
    tiled = sliding_window_forward(Threshold(), image, window=(8, 8, 8), overlap=0.5, batch_size=3)
    torch.testing.assert_close(tiled, whole, rtol=1e-6, atol=1e-6)  # float32 averaging only


def test_sliding_window_close_to_whole_volume_for_small_conv_net() -> None:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv3d(1, 4, 3, padding=1), nn.ReLU(), nn.Conv3d(4, 2, 3, padding=1))
    image = torch.randn(1, 24, 24, 24)
    whole = sliding_window_forward(net, image)
    tiled = sliding_window_forward(net, image, window=(12, 12, 12), overlap=0.5)
    # only voxels within the 2-voxel receptive-field border of a window edge may differ
    inner = (slice(None), slice(2, -2), slice(2, -2), slice(2, -2))
    assert (tiled - whole).abs().max() < 1.0
    assert torch.allclose(tiled[inner].mean(), whole[inner].mean(), atol=0.05)


def test_wrong_channel_count_and_dimension_are_clear_errors(tmp_path: Path) -> None:
    predictor = Predictor(Threshold(), _config(), [0, 1], in_channels=1)
    two_channel, _ = make_phantom(shape=(8, 8, 8), channels=2)
    with pytest.raises(VolumeReadError, match="2 channel\\(s\\), the model expects 1"):
        predictor.predict(two_channel)
    flat, _ = make_phantom(shape=(8, 8), spacing=(1.0, 1.0))
    path = write_volume(flat, tmp_path / "flat.nii.gz")
    out = tmp_path / "out.nii.gz"
    with pytest.raises(VolumeReadError, match="flat.nii.gz: 2-D image given to a 3-D model"):
        predictor.predict_file(path, out)
    assert not out.exists()


def test_refuses_to_overwrite_its_input(tmp_path: Path, phantom: tuple[Volume, Volume]) -> None:
    path = write_volume(phantom[0], tmp_path / "scan.nii.gz")
    before = path.read_bytes()
    with pytest.raises(ValueError, match="overwrite the input"):
        Predictor(Threshold(), _config(), [0, 1], 1).predict_file(path, path)
    assert path.read_bytes() == before


def test_infer_config_window_is_used(phantom: tuple[Volume, Volume]) -> None:
    config = _config(orient=None, crop_nonzero=False)
    tiled = Config(
        preprocess=config.preprocess,
        train=config.train,
        infer=InferConfig(window=(8, 8, 8), overlap=0.25),
    )
    a = Predictor(Threshold(), config, [0, 1], 1).predict(phantom[0])
    b = Predictor(Threshold(), tiled, [0, 1], 1).predict(phantom[0])
    np.testing.assert_array_equal(a.array, b.array)


def _save_run(path: Path, model: nn.Module, config: Config) -> Path:
    from volseg.config import config_to_dict
    from volseg.training.checkpoint import Checkpoint, save_checkpoint

    save_checkpoint(
        Checkpoint(model.state_dict(), config_to_dict(config), [0, 1], 1),
        path / "checkpoint_best.pt",
    )
    return path


def test_ensemble_of_runs_averages_probabilities(
    tmp_path: Path, phantom: tuple[Volume, Volume]
) -> None:
    """Two runs: the ensemble's probabilities are the mean of each run's probabilities."""
    from volseg.config import ModelConfig

    config = Config(
        preprocess=PreprocessConfig(orient=None, crop_nonzero=False, normalize="zscore"),
        model=ModelConfig("vnet", {"base_channels": 4, "kernel_size": 3}),
        train=TrainConfig(patch_size=(16, 16, 16)),
    )
    runs = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        model = create_model("vnet", in_channels=1, out_channels=2, base_channels=4, kernel_size=3)
        runs.append(_save_run(tmp_path / f"fold{seed}", model, config))
    single = [Predictor.from_run(r).predict_probabilities(phantom[0]).array for r in runs]
    ensemble = Predictor.from_runs(runs)
    assert len(ensemble.models) == 2
    both = ensemble.predict_probabilities(phantom[0]).array
    np.testing.assert_allclose(both, (single[0] + single[1]) / 2, atol=1e-5)
    assert not np.allclose(single[0], single[1], atol=1e-3)  # the members really differ


def test_ensemble_refuses_runs_with_different_preprocessing(tmp_path: Path) -> None:
    from volseg.config import ModelConfig

    model = create_model("vnet", in_channels=1, out_channels=2, base_channels=4, kernel_size=3)
    base = Config(
        model=ModelConfig("vnet", {"base_channels": 4, "kernel_size": 3}),
        train=TrainConfig(patch_size=(16, 16, 16)),
    )
    other = Config(
        preprocess=PreprocessConfig(target_spacing=(2.0, 2.0, 2.0)),
        model=base.model,
        train=base.train,
    )
    a = _save_run(tmp_path / "a", model, base)
    b = _save_run(tmp_path / "b", model, other)
    with pytest.raises(ValueError, match="preprocess config"):
        Predictor.from_runs([a, b])


def test_region_run_predicts_brats_labels_and_probability_file(
    tmp_path: Path, phantom: tuple[Volume, Volume]
) -> None:
    """A sigmoid-region predictor: intensity > 70 is WT, TC and ET, so everything bright is 4."""
    config = Config(
        preprocess=PreprocessConfig(orient=None, crop_nonzero=False, normalize="none"),
        data=DataConfig(regions="brats"),
        train=TrainConfig(patch_size=(16, 16, 16)),
    )

    class Regions(nn.Module):
        spatial_dims, divisor, in_channels, out_channels, output_kind = 3, 1, 1, 3, "logits"

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return (x - 70.0).repeat(1, 3, 1, 1, 1)

    predictor = Predictor(Regions(), config, [0, 1, 2, 4], 1)
    assert predictor.activation == "sigmoid"
    image = phantom[0]
    path = write_volume(image, tmp_path / "scan.nii.gz")
    out = predictor.predict_file(path, tmp_path / "seg.nii.gz", tmp_path / "p.npz")
    from volseg.io import read_volume

    seg = read_volume(out)
    np.testing.assert_array_equal(seg.array[0], np.where(image.array[0] > 70, 4, 0))
    saved = np.load(tmp_path / "p.npz")
    assert saved["probabilities"].dtype == np.float16 and saved["probabilities"].shape[0] == 3
    np.testing.assert_allclose(saved["spacing"], image.spacing)
    expected = 1 / (1 + np.exp(-(image.array[0].astype(np.float64) - 70)))
    np.testing.assert_allclose(saved["probabilities"][2], expected, atol=1e-3)


def test_tta_prediction_of_symmetric_scan_is_symmetric() -> None:
    """Through the Predictor (identity geometry, no crop): mirrored input -> mirrored labels."""
    torch.manual_seed(0)
    model = create_model("vnet", in_channels=1, out_channels=2, base_channels=4, kernel_size=3)
    rng = np.random.default_rng(0)
    half = rng.normal(size=(1, 16, 16, 8)).astype(np.float32)
    array = np.concatenate([half, half[..., ::-1]], axis=3)
    image = Volume(array, (1.0, 1.0, 1.0), (0.0, 0.0, 0.0), (1, 0, 0, 0, 1, 0, 0, 0, 1))
    config = Config(
        preprocess=PreprocessConfig(orient=None, crop_nonzero=False, normalize="none"),
        train=TrainConfig(patch_size=(16, 16, 16)),
        infer=InferConfig(window=(16, 16, 12), mirror_axes=(2,)),
    )
    probs = Predictor(model, config, [0, 1], 1).predict_probabilities(image).array
    np.testing.assert_allclose(probs, probs[..., ::-1], atol=1e-6)
