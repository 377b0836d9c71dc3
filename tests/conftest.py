"""Shared fixtures: tiny anisotropic volumes with a non-identity direction."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from volseg.config import (
    Config,
    InferConfig,
    ModelConfig,
    PreprocessConfig,
    TrainConfig,
    config_to_dict,
)
from volseg.data.synthetic import make_phantom
from volseg.io import Volume
from volseg.nn import create_model
from volseg.training.checkpoint import Checkpoint, save_checkpoint

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture
def phantom() -> tuple[Volume, Volume]:
    """A 3-D image + label pair, 20x24x28 voxels, spacing (0.9, 1.1, 2.0), oblique direction."""
    return make_phantom()


@pytest.fixture
def shared_data() -> Path:
    """``../shared/data`` beside the clone; tests using it skip (saying why) without it."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data folder {SHARED_DATA} not present (it sits beside the clone in CI)")
    return SHARED_DATA


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    """An untrained but complete run directory: a small V-Net (4 base channels, 3^3 kernels),
    1.5 mm working grid, 16^3 windows, labels [0, 1]; predicting needs no training to test
    plumbing."""
    config = Config(
        preprocess=PreprocessConfig(target_spacing=(1.5, 1.5, 1.5)),
        model=ModelConfig("vnet", {"base_channels": 4, "kernel_size": 3}),
        train=TrainConfig(patch_size=(16, 16, 16)),
        infer=InferConfig(window=(16, 16, 16)),
    )
    torch.manual_seed(0)
    model = create_model("vnet", in_channels=1, out_channels=2, base_channels=4, kernel_size=3)
    run = tmp_path / "run"
    save_checkpoint(
        Checkpoint(model.state_dict(), config_to_dict(config), [0, 1], 1),
        run / "checkpoint_best.pt",
    )
    return run
