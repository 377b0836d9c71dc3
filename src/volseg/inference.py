"""Prediction: a scan in, a label map on the scan's own grid out.

``Predictor.from_run(run_dir)`` rebuilds the trained model and its preprocessing from the run's
checkpoint alone. ``predict(path)`` reads the scan, applies the recorded preprocessing, runs the
network (whole volume or sliding window), turns the outputs into class probabilities, maps them
back onto the source grid (undoing reorientation, resampling and cropping in physical space), and
returns a label map with the scan's size, spacing, origin and direction and the training label
values.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from volseg.config import Config, config_from_dict
from volseg.data.preprocessing import preprocess, restore
from volseg.io import Volume, VolumeReadError, read_volume, write_volume
from volseg.nn.sliding_window import sliding_window_forward
from volseg.training.checkpoint import CheckpointError, load_checkpoint
from volseg.training.trainer import build_model

__all__ = ["Predictor", "find_checkpoint"]


def find_checkpoint(run_dir: str | Path) -> Path:
    """The best checkpoint of a run directory (or the last, or ``run_dir`` itself if a file)."""
    run_dir = Path(run_dir)
    if run_dir.is_file():
        return run_dir
    for name in ("checkpoint_best.pt", "checkpoint_last.pt"):
        if (run_dir / name).is_file():
            return run_dir / name
    raise CheckpointError(f"{run_dir}: no checkpoint_best.pt or checkpoint_last.pt in run dir")


class Predictor:
    """A trained model (or an ensemble) with the preprocessing and label values it was trained with.

    Args:
        model: one network, or several (an ensemble, e.g. cross-validation folds) whose class
            probabilities are averaged on the working grid.
    """

    def __init__(
        self,
        model: nn.Module | Sequence[nn.Module],
        config: Config,
        labels: Sequence[int],
        in_channels: int,
    ) -> None:
        models = [model] if isinstance(model, nn.Module) else list(model)
        if not models:
            raise ValueError("Predictor needs at least one model")
        self.models = [m.eval() for m in models]
        self.model = self.models[0]
        self.config = config
        self.labels = list(labels)
        self.in_channels = in_channels
        self.spatial_dims = len(config.train.patch_size)
        self.divisor = int(getattr(self.model, "divisor", 1))

    @classmethod
    def from_run(cls, run_dir: str | Path, **infer_overrides: object) -> Predictor:
        """Load a run directory (or a checkpoint file); ``infer_overrides`` replace infer keys."""
        checkpoint = load_checkpoint(find_checkpoint(run_dir))
        config = config_from_dict(checkpoint.config)
        if infer_overrides:
            config = dataclasses.replace(
                config,
                infer=dataclasses.replace(config.infer, **infer_overrides),  # type: ignore[arg-type]
            )
        model = build_model(config, checkpoint.in_channels, len(checkpoint.labels))
        model.load_state_dict(checkpoint.model)
        return cls(model, config, checkpoint.labels, checkpoint.in_channels)

    @classmethod
    def from_runs(cls, run_dirs: Sequence[str | Path], **infer_overrides: object) -> Predictor:
        """An ensemble of runs (e.g. cross-validation folds): their probabilities are averaged.

        The runs must share labels, input channels and preprocessing (the first run's config
        drives preprocessing and inference); otherwise a ``ValueError`` names the odd run.
        """
        if not run_dirs:
            raise ValueError("from_runs: no run directories given")
        members = [cls.from_run(run_dir, **infer_overrides) for run_dir in run_dirs]
        first = members[0]
        for run_dir, member in zip(run_dirs, members):
            for what, mine, theirs in (
                ("labels", member.labels, first.labels),
                ("in_channels", member.in_channels, first.in_channels),
                ("preprocess config", member.config.preprocess, first.config.preprocess),
                ("spatial dims", member.spatial_dims, first.spatial_dims),
            ):
                if mine != theirs:
                    raise ValueError(
                        f"{run_dir}: {what} {mine} differ from {run_dirs[0]}'s {theirs}"
                    )
        models = [m for member in members for m in member.models]
        return cls(models, first.config, first.labels, first.in_channels)

    def _check(self, image: Volume) -> None:
        if image.ndim != self.spatial_dims:
            raise VolumeReadError(
                f"{image.source}: {image.ndim}-D image given to a {self.spatial_dims}-D model"
            )
        if image.channels != self.in_channels:
            raise VolumeReadError(
                f"{image.source}: {image.channels} channel(s), the model expects {self.in_channels}"
            )

    def predict_probabilities(self, image: Volume) -> Volume:
        """Class probabilities ``(K, *source shape)`` on the source grid (float32)."""
        self._check(image)
        work, _, record = preprocess(image, self.config.preprocess)
        infer = self.config.infer
        amp = self.config.train.amp == "bf16"
        total: torch.Tensor | None = None
        for model in self.models:
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):
                logits = sliding_window_forward(
                    model,
                    torch.from_numpy(work.array),
                    infer.window,
                    infer.overlap,
                    infer.batch_size,
                    int(getattr(model, "divisor", 1)),
                )
            p = torch.softmax(logits.float(), dim=0)
            total = p if total is None else total.add_(p)
        assert total is not None
        probs = (total / len(self.models)).numpy()
        fill = [1.0] + [0.0] * (probs.shape[0] - 1)  # outside the crop: background
        return restore(work.with_array(probs), record, "linear", fill)

    def predict(self, image: str | Path | Sequence[str | Path] | Volume) -> Volume:
        """A label map (values = training labels) with the input scan's geometry."""
        volume = image if isinstance(image, Volume) else read_volume(image)
        probs = self.predict_probabilities(volume)
        index = probs.array.argmax(0)
        dtype = np.uint8 if max(self.labels) < 256 else np.uint16
        values = np.asarray(self.labels, dtype=dtype)[index]
        return Volume(values[None], volume.spacing, volume.origin, volume.direction, volume.source)

    def predict_file(self, image: str | Path | Sequence[str | Path], output: str | Path) -> Path:
        """Predict and write atomically; refuses to overwrite one of the inputs."""
        inputs = [image] if isinstance(image, (str, Path)) else list(image)
        out = Path(output)
        if any(os.path.abspath(p) == os.path.abspath(out) for p in inputs):
            raise ValueError(f"{out}: output would overwrite an input file")
        return write_volume(self.predict(image), out)
