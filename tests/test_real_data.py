"""Checks on the real scans in ``../shared/data`` (skipped, saying why, when it is absent)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from volseg.config import Config, InferConfig, PreprocessConfig, TrainConfig
from volseg.inference import Predictor
from volseg.io import read_volume, write_volume
from volseg.nn import create_model


def test_nrrd_ct_round_trip_and_mask_grid(shared_data: Path, tmp_path: Path) -> None:
    image = read_volume(shared_data / "pyradiomics" / "brain1_image.nrrd")
    label = read_volume(shared_data / "pyradiomics" / "brain1_label.nrrd")
    assert image.same_grid(label)
    assert max(image.spacing) / min(image.spacing) > 8  # strongly anisotropic (6.5 vs 0.78 mm)
    back = read_volume(write_volume(image, tmp_path / "b.nii.gz"))
    np.testing.assert_array_equal(back.array, image.array)
    assert back.same_grid(image)


def test_prediction_on_a_real_anisotropic_scan_keeps_its_geometry(shared_data: Path) -> None:
    image = read_volume(shared_data / "pyradiomics" / "brain1_image.nrrd")
    config = Config(
        preprocess=PreprocessConfig(target_spacing=(4.0, 4.0, 4.0)),
        train=TrainConfig(patch_size=(16, 16, 16)),
        infer=InferConfig(window=(32, 32, 32)),
    )
    torch.manual_seed(0)
    model = create_model("vnet", in_channels=1, out_channels=2, base_channels=4, kernel_size=3)
    mask = Predictor(model, config, [0, 1], 1).predict(image)
    assert mask.shape == image.shape
    assert (mask.spacing, mask.origin, mask.direction) == (
        image.spacing,
        image.origin,
        image.direction,
    )
