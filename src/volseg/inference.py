"""Prediction: a scan in, a label map on the scan's own grid out.

``Predictor.from_run(run_dir)`` rebuilds the trained model and its preprocessing from the run's
checkpoint alone (``from_runs`` averages several runs, e.g. cross-validation folds; a ``.onnx``
file from ``volseg export`` works too, run by onnxruntime). ``predict(path)`` reads the scan,
applies the recorded preprocessing, runs the network (whole volume or Gaussian-blended sliding
window, optionally with mirroring test-time augmentation; a 2-D model runs over a 3-D scan
slice by slice along its first array axis), turns the outputs into probabilities (softmax over
classes, or one sigmoid per region), maps them back onto the source grid (undoing
reorientation, resampling and cropping in physical space), and decodes a label map with the
scan's size, spacing, origin and direction and the training label values.

Memory: the network sees one batch of windows at a time; the full-size buffers are the image,
the output ``(K, *spatial)`` and one weight map on the working grid (the activation is taken in
place); ``predict`` then restores and decodes a slab of source rows at a time, so the
probabilities on the source grid never exist whole (see ``docs/inference.md`` for a measured
512x512x300 case).
"""

from __future__ import annotations

import dataclasses
import errno
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from volseg._atomic import atomic_path, check_not_inputs
from volseg._device import resolve_device
from volseg.config import Config, InferConfig
from volseg.data.preprocessing import Grid, PreprocessRecord, preprocess, restore
from volseg.data.preprocessing.slabs import restore_rows
from volseg.decoding import (
    decode_label_slabs,
    decode_labels,
    keep_largest_component,
    probabilities,
    resolve_activation,
)
from volseg.io import Volume, VolumeReadError, read_volume, write_volume
from volseg.nn.layout import to_channels_last
from volseg.nn.network import check_network
from volseg.nn.sliding_window import predict_logits, runs_on
from volseg.regions import get_regions
from volseg.training.checkpoint import load_run

__all__ = [
    "PRECISIONS",
    "Predictor",
    "entropy_map",
    "resolve_precision",
    "uncertainty_score",
    "write_probabilities",
]

PRECISIONS = ("auto", "fp32", "bf16", "fp16")


def resolve_precision(precision: str, train_amp: str) -> str:
    """``fp32``, ``bf16`` or ``fp16``; ``auto`` is what the run trained with (train.runtime.amp)."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision: expected one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision != "auto":
        return precision
    return train_amp if train_amp in ("bf16", "fp16") else "fp32"


class _Autocast(nn.Module):
    """Runs ``model`` under fp16 autocast and hands float32 outputs on (``--precision fp16``)."""

    def __init__(self, model: nn.Module, dtype: torch.dtype) -> None:
        super().__init__()
        self.model, self.dtype = model, dtype

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, ...]:
        device = next(iter(self.model.parameters()), x).device.type
        with torch.autocast(device, dtype=self.dtype):
            out = self.model(x)
        if isinstance(out, (tuple, list)):
            return tuple(o.float() for o in out)
        return out.float()


def write_probabilities(probs: Volume, path: str | Path, labels: Sequence[int]) -> Path:
    """Write probability maps ``(K, *S)``: ``.npz`` as float16 with geometry, else float32 image.

    SimpleITK has no float16 pixel type, so float16 maps go to a compressed NumPy archive with
    ``probabilities`` (float16, ``(K, z, y, x)``), ``spacing``/``origin``/``direction`` (ITK order)
    and ``labels``. Written to a temporary file, then renamed.
    """
    path = Path(path)
    if not path.name.endswith(".npz"):
        return write_volume(probs.with_array(probs.array.astype(np.float32)), path)

    def verify(tmp: Path) -> None:
        with np.load(tmp) as data:
            if data["probabilities"].shape != probs.array.shape:
                raise OSError(errno.EIO, "the file read back differs from what was written")

    with atomic_path(path, ".npz", verify) as tmp:
        np.savez_compressed(
            tmp,
            probabilities=probs.array.astype(np.float16),
            spacing=np.asarray(probs.spacing),
            origin=np.asarray(probs.origin),
            direction=np.asarray(probs.direction),
            labels=np.asarray(labels),
        )
    return path


def entropy_map(probs: Volume, activation: str = "softmax") -> Volume:
    """Voxel-wise predictive entropy of probabilities ``(K, *S)``, scaled to [0, 1].

    Softmax: ``-sum_k p_k ln p_k / ln K``; sigmoid (one channel per region): the mean over
    regions of the binary entropy over ``ln 2``. The probabilities are the averaged ones
    (over ensemble members and mirrored passes when used), so their spread widens the entropy.
    """
    p = np.clip(probs.array.astype(np.float64), 1e-12, 1.0)
    if activation == "sigmoid":
        q = np.clip(1.0 - probs.array.astype(np.float64), 1e-12, 1.0)
        h = -(p * np.log(p) + q * np.log(q)).mean(axis=0) / np.log(2.0)
    else:
        h = -(p * np.log(p)).sum(axis=0) / np.log(max(2, p.shape[0]))
    return probs.with_array(np.clip(h, 0.0, 1.0).astype(np.float32)[None])


def uncertainty_score(entropy: Volume, label: Volume, background: int = 0) -> float:
    """A case's uncertainty: the mean scaled entropy over its predicted foreground.

    NaN when nothing is predicted (an empty prediction is worth a look of its own).
    """
    foreground = label.array[0] != background
    if not foreground.any():
        return float("nan")
    return float(entropy.array[0][foreground].mean())


class Predictor:
    """A trained model (or an ensemble) with the preprocessing and label values it was trained with.

    Args:
        model: one network, or several (an ensemble, e.g. cross-validation folds) whose
            probabilities are averaged on the working grid.
        config: the run's config; ``config.infer`` sets the window, TTA and decoding.
        labels: label values, index ``k`` of a softmax output is ``labels[k]``.
        in_channels: image channels the network expects.

    With ``config.infer.channels_last`` (the default) the models are converted in place by
    :func:`volseg.nn.layout.to_channels_last`.
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
        dims = {check_network(m).spatial_dims for m in models}
        if len(dims) != 1:
            raise ValueError(f"ensemble members take different spatial dims {sorted(dims)}")
        self.spatial_dims = dims.pop()
        onnx = any(type(m).__name__ == "OnnxNetwork" for m in models)
        self.device = (
            torch.device("cpu") if onnx else resolve_device(config.infer.device, "infer.device")
        )
        if config.infer.channels_last:
            models = [to_channels_last(m) for m in models]
        self.models = [m.to(self.device).eval() for m in models]
        self.model = self.models[0]
        self.config = config
        self.labels = list(labels)
        self.in_channels = in_channels
        self.regions = get_regions(config.data.regions) if config.data.regions else None
        self.activation = resolve_activation(config.infer.activation, self.regions)
        self.precision = (
            "fp32" if onnx else resolve_precision(config.infer.precision, config.train.runtime.amp)
        )
        self.bf16 = self.precision == "bf16"

    @classmethod
    def from_run(cls, run_dir: str | Path, **infer_overrides: object) -> Predictor:
        """Load a run directory, a checkpoint file or an exported ``.onnx`` model.

        ``infer_overrides`` replace keys of ``config.infer`` (e.g. ``mirror_axes=(0, 1, 2)``).
        """
        if str(run_dir).endswith(".onnx"):
            from volseg.export import load_onnx

            network, config, labels, in_channels = load_onnx(run_dir)
            config = _with_infer(config, {"channels_last": False, **infer_overrides})
            return cls(network, config, labels, in_channels)
        run = load_run(run_dir)
        config = _with_infer(run.config, infer_overrides)
        return cls(run.model, config, run.labels, run.in_channels)

    @classmethod
    def from_runs(cls, run_dirs: Sequence[str | Path], **infer_overrides: object) -> Predictor:
        """An ensemble of runs (e.g. cross-validation folds): their probabilities are averaged.

        The runs must share labels, input channels, preprocessing and regions (the first run's
        config drives preprocessing and inference); otherwise a ``ValueError`` names the odd run.
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
                ("regions", member.regions, first.regions),
            ):
                if mine != theirs:
                    raise ValueError(
                        f"{run_dir}: {what} {mine} differ from {run_dirs[0]}'s {theirs}"
                    )
        models = [m for member in members for m in member.models]
        return cls(models, first.config, first.labels, first.in_channels)

    def _check(self, image: Volume) -> None:
        if not runs_on(self.spatial_dims, image.ndim):
            raise VolumeReadError(
                f"{image.source}: {image.ndim}-D image given to a {self.spatial_dims}-D model"
            )
        if image.channels != self.in_channels:
            raise VolumeReadError(
                f"{image.source}: {image.channels} channel(s), the model expects {self.in_channels}"
            )

    def _fill(self, channels: int) -> list[float]:
        """Probabilities outside the working grid (e.g. the crop): background."""
        if self.regions:
            return [0.0] * channels
        return [1.0] + [0.0] * (channels - 1)

    def predict_probabilities(self, image: Volume) -> Volume:
        """Probabilities ``(K, *source shape)`` on the source grid (float32).

        ``K`` is the number of classes (softmax) or regions (sigmoid). Ensemble members and
        mirrored passes are averaged; overlapping windows are blended before the activation.
        """
        placed, record = self._working_probabilities(image)
        return restore(placed, record, "linear", self._fill(placed.channels))

    def _working_probabilities(self, image: Volume) -> tuple[Volume, PreprocessRecord]:
        """Probabilities on the working grid and the record that restores them."""
        self._check(image)
        work, _, record = preprocess(image, self.config.preprocess)
        x = torch.from_numpy(work.array)
        del work  # x holds the array; nothing else needs it after the window pass
        total: torch.Tensor | None = None
        for model in self.models:
            logits = predict_logits(
                _Autocast(model, torch.float16) if self.precision == "fp16" else model,
                x,
                self.config.infer,
                model_dims=self.spatial_dims,
                divisor=check_network(model).divisor,
                bf16=self.bf16,
            )
            probs = probabilities(logits, self.activation)
            del logits
            total = probs if total is None else total.add_(probs)
        assert total is not None
        if len(self.models) > 1:
            total.div_(len(self.models))
        del x
        placed = Volume(
            total.numpy(), record.grid.spacing, record.grid.origin, record.grid.direction
        )
        return placed, record

    def _predict_label(self, image: Volume) -> Volume:
        """:meth:`labels_from_probabilities` of :meth:`predict_probabilities`, restored and
        decoded a slab of source rows at a time (the source-grid probabilities never whole)."""
        label, source = self._decode_on_source(*self._working_probabilities(image))
        infer: InferConfig = self.config.infer
        if infer.keep_largest:  # the working-grid probabilities are freed by now
            label = keep_largest_component(label, infer.keep_largest, self.labels[0])
        return Volume(label[None], source.spacing, source.origin, source.direction, image.source)

    def _decode_on_source(
        self, placed: Volume, record: PreprocessRecord
    ) -> tuple[np.ndarray, Grid]:
        fill = self._fill(placed.channels)
        label = decode_label_slabs(
            record.source.shape,
            lambda start, stop: restore_rows(placed, record, start, stop, "linear", fill),
            self.labels,
            self.activation,
            self.config.infer.threshold,
            self.regions,
        )
        return label, record.source

    def labels_from_probabilities(self, probs: Volume) -> Volume:
        """Decode probabilities into a label map, then keep the largest components if asked."""
        infer: InferConfig = self.config.infer
        label = decode_labels(
            probs.array, self.labels, self.activation, infer.threshold, self.regions
        )
        if infer.keep_largest:
            label = keep_largest_component(label, infer.keep_largest, self.labels[0])
        return Volume(label[None], probs.spacing, probs.origin, probs.direction, probs.source)

    def predict(self, image: str | Path | Sequence[str | Path] | Volume) -> Volume:
        """A label map (values = training labels) with the input scan's geometry."""
        volume = image if isinstance(image, Volume) else read_volume(image)
        return self._predict_label(volume)

    def predict_file(
        self,
        image: str | Path | Sequence[str | Path],
        output: str | Path,
        probabilities: str | Path | None = None,
        uncertainty: str | Path | None = None,
        series: str | None = None,
    ) -> Path:
        """Predict and write atomically; refuses to overwrite one of the inputs (resolved
        through symlinks and hard links, before anything is read).

        Args:
            series: for a DICOM folder holding several series, the SeriesInstanceUID to read.
            probabilities: also write the probability maps here (``.npz``: float16, see
                :func:`write_probabilities`).
            uncertainty: also write the entropy map (:func:`entropy_map`, float32) here.
        """
        inputs = [image] if isinstance(image, (str, Path)) else list(image)
        targets = [Path(output)] + ([Path(probabilities)] if probabilities else [])
        targets += [Path(uncertainty)] if uncertainty else []
        check_not_inputs(targets, inputs)
        volume = read_volume(inputs[0] if len(inputs) == 1 else inputs, series=series)
        if not probabilities and not uncertainty:  # slab by slab: no whole probability maps
            return write_volume(self._predict_label(volume), output)
        probs = self.predict_probabilities(volume)
        label = self.labels_from_probabilities(probs)
        if probabilities:
            write_probabilities(probs, probabilities, self.labels)
        if uncertainty:
            write_volume(entropy_map(probs, self.activation), uncertainty)
        return write_volume(label, output)


def _with_infer(config: Config, overrides: dict[str, object]) -> Config:
    if not overrides:
        return config
    return dataclasses.replace(
        config,
        infer=dataclasses.replace(config.infer, **overrides),  # type: ignore[arg-type]
    )
