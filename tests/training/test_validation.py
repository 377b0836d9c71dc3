"""Validation predicts as the Predictor does: the same functions, with the run's infer settings."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pytest
import torch

import volseg.inference
import volseg.training.validation as validation
from volseg.config import Config, DataConfig, InferConfig, PreprocessConfig, TrainConfig
from volseg.data.layouts import find_cases
from volseg.data.sampling import load_case
from volseg.data.synthetic import write_phantom_dataset
from volseg.metrics import dice
from volseg.nn import create_model


def test_validation_and_predictor_share_one_prediction_path() -> None:
    assert validation.predict_logits is volseg.inference.predict_logits
    assert validation.decode_labels is volseg.inference.decode_labels
    assert validation.probabilities is volseg.inference.probabilities


@pytest.fixture(scope="module")
def case(tmp_path_factory: pytest.TempPathFactory) -> Any:
    root = write_phantom_dataset(tmp_path_factory.mktemp("data"), cases=1, nested=True)
    config = PreprocessConfig(target_spacing=(1.5, 1.5, 1.5))
    return load_case(find_cases(root).cases[0], config, [0, 1, 2], 1)


def _config(**infer: Any) -> Config:
    return Config(
        data=DataConfig(labels=(0, 1, 2)),
        train=TrainConfig(patch_size=(16, 16, 16)),
        infer=InferConfig(**infer),
    )


def test_validate_passes_the_runs_infer_settings(
    case: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[InferConfig] = []
    original = validation.predict_logits

    def spy(model: Any, image: torch.Tensor, infer: InferConfig, **kwargs: Any) -> torch.Tensor:
        seen.append(infer)
        return original(model, image, infer, **kwargs)

    monkeypatch.setattr(validation, "predict_logits", spy)
    torch.manual_seed(0)
    model = create_model("vnet", in_channels=1, out_channels=3, base_channels=4, kernel_size=3)
    config = _config(window=(16, 16, 16), mirror_axes=(0,), sigma_scale=0.25, overlap=0.25)
    validation.validate(model, [case], config, [0, 1, 2])
    assert seen == [config.infer]


def test_validation_dice_is_the_dice_of_the_decoded_labels(case: Any) -> None:
    """Thresholds change what validation scores, exactly as they change the Predictor's labels."""
    torch.manual_seed(0)
    model = create_model("vnet", in_channels=1, out_channels=3, base_channels=4, kernel_size=3)
    truth = case.target[0].numpy()
    for infer in ({}, {"threshold": (0.34,)}):
        config = _config(**infer)
        scores = validation.validate(model, [case], config, [0, 1, 2])
        logits = validation.predict_logits(
            model.eval(), case.image, config.infer, model_dims=3, divisor=16
        )
        probs = logits.softmax(0).numpy()
        if "threshold" in infer:
            fg = np.where(probs[1:] > 0.34, probs[1:], -1)
            pred = np.where(fg.max(0) > -1, fg.argmax(0) + 1, 0)
        else:
            pred = probs.argmax(0)
        for k in (1, 2):
            assert scores[f"val_dice_{k}"] == [dice(pred == k, truth == k)]
    assert dataclasses.fields(InferConfig)  # the settings validation reads are the Predictor's
