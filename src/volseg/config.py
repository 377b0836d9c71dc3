"""Typed, frozen configuration: one dataclass per stage, loaded from and dumped to YAML.

A YAML file mirrors :class:`Config`; unknown keys, wrong types and values outside a ``Literal``
field's choices are errors that name the key (:mod:`volseg._typed` does the checking).
Sizes and spacings follow :mod:`volseg.io`: ``patch_size``/``window`` are in array order
``(z, y, x)``; ``target_spacing`` is in ITK order ``(x, y, z)`` like every spacing on disk.
"""

from __future__ import annotations

import dataclasses
import inspect
import re
import types
import typing
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Union

import yaml

from volseg._legacy_config import MOVED_KEYS, upgrade
from volseg._typed import ConfigError, from_plain, to_plain

__all__ = [
    "RESUMABLE_KEYS",
    "AugmentConfig",
    "Config",
    "ConfigError",
    "DataConfig",
    "InferConfig",
    "LossConfig",
    "ModelConfig",
    "OptimizerConfig",
    "PreprocessConfig",
    "RuntimeConfig",
    "ScheduleConfig",
    "StoppingConfig",
    "TrainConfig",
    "TransformConfig",
    "apply_overrides",
    "check_resumable",
    "config_from_dict",
    "config_to_dict",
    "config_yaml",
    "dump_config",
    "load_config",
    "override_keys",
    "render_config_reference",
]


class _YamlLoader(yaml.SafeLoader):
    """YAML's safe loader that also reads ``1e-3`` as a number (YAML 1.2 does; PyYAML's 1.1
    rules want ``1.0e-3`` and would read ``lr: 1e-3`` as text)."""


_YamlLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?[0-9][0-9_]*(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def _read_yaml(text: str) -> Any:
    """Plain data from YAML text, typed by :class:`_YamlLoader`."""
    return yaml.load(text, Loader=_YamlLoader)  # a SafeLoader: no Python objects


def _positive(key: str, values: tuple[float, ...]) -> None:
    """Sizes, spacings and counts must be finite and > 0 (NaN fails every comparison)."""
    if not values or not all(v > 0 and v != float("inf") for v in values):
        raise ConfigError(f"{key}: every value must be > 0, got {list(values)}")


@dataclass(frozen=True)
class DataConfig:
    """Where the cases are, what their labels mean, and which of them validate.

    Attributes:
        root: dataset folder (MSD/nnU-Net, BraTS, PROMISE12) or a CSV/JSON manifest file.
            A relative path is resolved against the current working directory when the config
            is loaded (:func:`load_config`, ``--set data.root=...``), not the YAML's folder.
        layout: ``auto`` or one of :func:`volseg.data.layouts.list_layouts`.
        channels: input channels to use, by name and in this order (``[t1ce, flair]`` on
            BraTS); ``None`` uses all of the layout's channels in its order. Names are the
            dataset's ``channel_names`` (BraTS: ``t1, t1ce, t2, flair``; MSD: its
            ``dataset.json``); applied by :meth:`volseg.data.layouts.Dataset.select_channels`.
        labels: declared label values including background 0; ``None`` reads them from the
            dataset (``dataset.json``, the BraTS naming) or assumes ``(0, 1)``.
        regions: ``None`` trains a softmax over the exclusive labels; ``brats`` (whole tumour
            {1, 2, 4}, tumour core {1, 4}, enhancing tumour {4}), ``brats2023`` (the same with
            enhancing tumour label 3: BraTS 2023+ files; see :mod:`volseg.regions`) or a list of
            label-value groups trains one sigmoid channel per (overlapping) region. With
            ``labels`` known, every label of every region must be one of them.
        val_cases: case ids held out for validation; empty picks ``val_fraction`` of the cases.
        val_fraction: fraction of cases (at least one when there are two or more) to validate on.
        label_names: one name per entry of ``labels``, in that order (background included), used
            to name metric columns (``dice_hippocampus_left`` for ``dice_1``; see
            :mod:`volseg.metrics.names`); ``None`` reads them from the dataset
            (``dataset.json`` ``labels``, a manifest's ``label_names``, BraTS's known labels) at
            training time, and the run's saved config keeps them.
    """

    root: str = ""
    layout: str = "auto"
    channels: tuple[str, ...] | None = None
    labels: tuple[int, ...] | None = None
    regions: str | tuple[tuple[int, ...], ...] | None = None
    val_cases: tuple[str, ...] = ()
    val_fraction: float = 0.2
    label_names: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if (
            self.label_names is not None
            and self.labels is not None
            and len(self.label_names) != len(self.labels)
        ):
            raise ConfigError(
                f"label_names: {len(self.label_names)} name(s) for the {len(self.labels)} "
                f"labels {list(self.labels)} (one per label, background included)"
            )
        if not 0 <= self.val_fraction < 1:
            raise ConfigError(f"val_fraction: must be in [0, 1), got {self.val_fraction}")
        if self.channels is not None:
            if not self.channels:
                raise ConfigError("channels: name at least one channel, or null for all")
            repeated = sorted({c for c in self.channels if self.channels.count(c) > 1})
            if repeated:
                raise ConfigError(f"channels: {', '.join(repeated)} listed more than once")
        if self.regions is None:
            return
        from volseg.regions import get_regions  # here: a config without regions needs no torch

        try:
            regions = get_regions(self.regions)
        except ValueError as err:
            raise ConfigError(f"regions: {err}") from None
        if self.labels is None:
            return
        missing = sorted({v for r in regions for v in r.labels} - set(self.labels))
        if missing:
            hint = (
                " (BraTS up to 2021, labels 0, 1, 2, 4: regions brats; "
                "BraTS 2023+, labels 0, 1, 2, 3: regions brats2023)"
                if isinstance(self.regions, str)
                else ""
            )
            raise ConfigError(
                f"regions: {self.regions!r} uses label(s) {missing} not in the labels "
                f"{list(self.labels)}{hint}"
            )


@dataclass(frozen=True)
class PreprocessConfig:
    """Deterministic, recorded preprocessing (see :mod:`volseg.data.preprocessing`).

    Steps run in this order: N4, reorient, resample, crop to non-zero, clip, normalise,
    crop/pad to ``crop_size``.

    Attributes:
        n4: N4 bias-field correction on the scan's own grid (V-Net). Slow: use ``cache_dir``.
        n4_shrink: shrink factor for fitting the field (the field is applied at full size).
        n4_mask: voxels N4 fits on: ``otsu`` (Otsu foreground), ``nonzero`` or ``none``.
        n4_iterations: fitting iterations per resolution level (its length = the levels).
        orient: reorient 3-D scans to this DICOM-style code (``LPS``, ``RAS``...) before anything
            else; ``None`` keeps the scan's own axes (2-D images always keep theirs).
        target_spacing: mm in ITK order (x, y, z); ``None`` keeps the scan's spacing. Two
            values on a 3-D scan (a 2-D model's slices) set x and y and keep z.
        interpolation: image resampling, ``linear`` or ``bspline`` (labels: always nearest).
        anisotropy_threshold: when the largest / smallest spacing exceeds this, the thick axis is
            interpolated linearly (no cubic overshoot across thick slices), in-plane with
            ``interpolation``; ``None`` disables.
        crop_nonzero: crop to the bounding box of voxels that are non-zero in any channel.
        clip_window: clip raw intensities to ``[low, high]`` first (a CT window in HU).
        normalize: ``zscore_nonzero`` (per channel, over non-zero voxels), ``zscore``,
            ``percentile`` (clip to ``clip_percentiles`` then z-score) or ``none``.
        clip_percentiles: the ``[low, high]`` percentiles (0-100) ``normalize: percentile``
            clips each channel to.
        crop_size: crop or zero-pad to this size (array order z, y, x) at the end; ``None`` keeps.
        crop_mode: where the ``crop_size`` box sits: ``center`` of the volume or ``foreground``
            (centre of the label's foreground box; the non-zero box when there is no label).
        cache_dir: keep preprocessed cases as arrays here (:mod:`volseg.data.cache`); ``None``
            disables. Not part of the preprocessing itself (not in the cache key).
    """

    n4: bool = False
    n4_shrink: int = 4
    n4_mask: Literal["otsu", "nonzero", "none"] = "otsu"
    n4_iterations: tuple[int, ...] = (50, 50, 50, 50)
    orient: str | None = "LPS"
    target_spacing: tuple[float, ...] | None = None
    interpolation: Literal["linear", "bspline"] = "linear"
    anisotropy_threshold: float | None = 3.0
    crop_nonzero: bool = True
    clip_window: tuple[float, float] | None = None
    normalize: Literal["zscore_nonzero", "zscore", "percentile", "none"] = "zscore_nonzero"
    clip_percentiles: tuple[float, float] = (0.5, 99.5)
    crop_size: tuple[int, ...] | None = None
    crop_mode: Literal["center", "foreground"] = "center"
    cache_dir: str | None = None

    def __post_init__(self) -> None:
        _positive("n4_shrink", (self.n4_shrink,))
        _positive("n4_iterations", self.n4_iterations)
        if self.target_spacing is not None:
            _positive("target_spacing", self.target_spacing)
        if self.crop_size is not None:
            _positive("crop_size", self.crop_size)
        if self.anisotropy_threshold is not None and not self.anisotropy_threshold >= 1:
            raise ConfigError(
                f"anisotropy_threshold: must be >= 1, got {self.anisotropy_threshold}"
            )
        if self.clip_window is not None and not self.clip_window[0] < self.clip_window[1]:
            raise ConfigError(f"clip_window: needs low < high, got {list(self.clip_window)}")
        low, high = self.clip_percentiles
        if not 0 <= low < high <= 100:
            raise ConfigError(f"clip_percentiles: needs 0 <= low < high <= 100, got {[low, high]}")


@dataclass(frozen=True)
class TransformConfig:
    """One registered random transform (see ``volseg.data.transforms.list_transforms()``).

    YAML: ``{name: affine, p: 0.9, kwargs: {degrees: 15, scale: [0.85, 1.15]}}``, the same
    shape as ``model`` and ``loss``. Names are checked where the transforms are built
    (``volseg.data.transforms.build_augmentation``, called by ``PatchDataset``).

    Attributes:
        name: a registered transform name.
        p: probability that it fires for a sample (``flip``: per axis).
        kwargs: the transform's own arguments (its docstring lists them, with units).
    """

    name: str
    p: float = 1.0
    kwargs: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not 0 <= self.p <= 1:
            raise ConfigError(f"p: must be in [0, 1], got {self.p}")


@dataclass(frozen=True)
class AugmentConfig:
    """On-the-fly augmentation: registered transforms applied in order to every sample.

    Spatial transforms (flip, affine, bspline) compose into one sampling grid per patch; the
    intensity ones (histogram_matching, bias_field, gamma, intensity_shift_scale, noise) then
    act in list order. See ``docs/augmentation.md``.

    Attributes:
        transforms: the transforms, first to last.
        crops_per_volume: 0 draws a random case per sample; ``n`` takes ``n`` consecutive
            samples from each case in a shuffled epoch order (Adeniji: 3 crops per volume).
    """

    transforms: tuple[TransformConfig, ...] = ()
    crops_per_volume: int = 0

    def __post_init__(self) -> None:
        if self.crops_per_volume < 0:
            raise ConfigError(f"crops_per_volume: must be >= 0, got {self.crops_per_volume}")


@dataclass(frozen=True)
class ModelConfig:
    """A registered network and its keyword arguments (see ``volseg.list_models()``).

    Attributes:
        name: a registered model name (``docs/models.md``).
        kwargs: the model's own arguments (``base_channels``, ``spatial_dims``...); channel
            counts in and out come from the data.
    """

    name: str = "vnet"
    kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class LossConfig:
    """A registered loss and its keyword arguments (see ``volseg.list_losses()``).

    Attributes:
        name: a registered loss name.
        kwargs: the loss's own arguments (weights, smoothing...).
    """

    name: str = "vnet_dice"
    kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class OptimizerConfig:
    """The optimiser (see :func:`volseg.training.schedules.build_optimizer`).

    Attributes:
        name: ``sgd`` (with ``momentum``, V-Net: 0.99), ``adam`` or ``adamw``.
        lr: base learning rate lr0.
        momentum: SGD momentum (ignored by ``adam`` and ``adamw``).
        weight_decay: L2 penalty (``adamw``: decoupled decay).
        nesterov: Nesterov momentum for ``sgd``.
        grad_clip: clip the global gradient L2 norm to this value (``None`` disables).
    """

    name: Literal["sgd", "adam", "adamw"] = "adam"
    lr: float = 1e-3
    momentum: float = 0.99
    weight_decay: float = 0.0
    nesterov: bool = False
    grad_clip: float | None = None

    def __post_init__(self) -> None:
        if not self.lr > 0:
            raise ConfigError(f"lr: must be > 0, got {self.lr}")
        if not self.weight_decay >= 0:
            raise ConfigError(f"weight_decay: must be >= 0, got {self.weight_decay}")
        if not 0 <= self.momentum < 1:
            raise ConfigError(f"momentum: must be in [0, 1), got {self.momentum}")
        if self.grad_clip is not None and not self.grad_clip > 0:
            raise ConfigError(f"grad_clip: must be > 0 (or null), got {self.grad_clip}")


@dataclass(frozen=True)
class ScheduleConfig:
    """The learning-rate schedule (see :mod:`volseg.training.schedules`).

    Attributes:
        name: ``constant``, ``step`` (lr0 * ``step_gamma`` ** (iteration // ``step_size``),
            V-Net: /10 every 25K iterations) or ``poly`` (lr0 * (1 - e / epochs) **
            ``poly_power``, Myronenko; e = finished epochs).
        step_size: iterations between two decays of the ``step`` schedule.
        step_gamma: factor of each ``step`` decay.
        poly_power: exponent of the ``poly`` schedule.
        warmup_epochs: linear warm-up over the first ``warmup_epochs`` epochs (0 disables),
            composed with any schedule; the main schedule takes over at epoch ``warmup_epochs``
            with its own value there (global epoch: the warm-up is part of ``epochs``).
        warmup_start_lr: the rate of epoch 0.
        warmup_end_lr: the rate of the last warm-up epoch (``warmup_epochs - 1``), reached
            linearly from ``warmup_start_lr`` (Adeniji: 1e-6 -> 1e-5 over 10 epochs, then poly
            from lr0 = 1e-4, a jump). ``None`` warms up towards the main schedule's value at
            epoch ``warmup_epochs`` instead, reaching it there (continuous).
    """

    name: Literal["constant", "step", "poly"] = "constant"
    step_size: int = 25000
    step_gamma: float = 0.1
    poly_power: float = 0.9
    warmup_epochs: int = 0
    warmup_start_lr: float = 1e-6
    warmup_end_lr: float | None = None

    def __post_init__(self) -> None:
        if self.step_size < 1:
            raise ConfigError(f"step_size: must be >= 1, got {self.step_size}")
        if not self.step_gamma > 0 or not self.poly_power >= 0:
            raise ConfigError(
                f"step_gamma must be > 0 and poly_power >= 0, got {self.step_gamma}, "
                f"{self.poly_power}"
            )
        if self.warmup_epochs < 0:
            raise ConfigError(f"warmup_epochs: must be >= 0, got {self.warmup_epochs}")
        if self.warmup_end_lr is not None:
            if self.warmup_end_lr < 0:
                raise ConfigError(f"warmup_end_lr: must be >= 0, got {self.warmup_end_lr}")
            if self.warmup_epochs == 1:
                raise ConfigError(
                    "warmup_end_lr: needs warmup_epochs >= 2 (epoch 0 runs at warmup_start_lr, "
                    "the last warm-up epoch at warmup_end_lr); got warmup_epochs 1"
                )


@dataclass(frozen=True)
class StoppingConfig:
    """When training stops before ``train.epochs``.

    Attributes:
        patience: stop after this many epochs without a gain of ``train.monitor`` of more than
            ``min_delta`` (0 disables). Epochs, not validations: with ``train.validate_every``
            k it stops at the first validation ``patience`` or more epochs after the last gain.
        min_delta: the smallest gain of ``train.monitor`` that counts as one.
        max_minutes: stop after the epoch that crosses this wall-clock budget, counted from
            the start of each invocation (a resumed run gets the whole budget again);
            ``None`` disables.
    """

    patience: int = 0
    min_delta: float = 0.0
    max_minutes: float | None = None

    def __post_init__(self) -> None:
        if self.patience < 0 or not self.min_delta >= 0:
            raise ConfigError(
                f"patience and min_delta: must be >= 0, got {self.patience}, {self.min_delta}"
            )
        if self.max_minutes is not None and not self.max_minutes > 0:
            raise ConfigError(f"max_minutes: must be > 0 (or null), got {self.max_minutes}")


@dataclass(frozen=True)
class RuntimeConfig:
    """Where and how the training loop runs; none of it changes the recipe.

    Attributes:
        amp: ``none``, ``bf16`` (autocast; on CPU with AVX-512-bf16 about 1.7x faster) or
            ``fp16`` (CUDA only, with a gradient scaler).
        device: ``auto`` (CUDA when available), ``cpu`` or ``cuda``.
        deterministic: ask torch for deterministic kernels (slower on CUDA).
        threads: torch intra-op threads (0 keeps torch's default).
        num_workers: DataLoader worker processes preparing augmented patches.
        log_grad_norms: log per-layer gradient norms each epoch (Drozdzal) with a plot.
        reuse_memory: keep freed heap memory for the next tensor of its size (glibc's mmap
            threshold raised and trimming off, :mod:`volseg._allocator`): no page faults for
            every new activation, at the cost of a resident size that stays at the heap's peak.
        flush_denormal: treat subnormal floats (below 1.2e-38) as zero while training: x86
            arithmetic on them is tens of times slower, and gradients reaching a network's last
            layers can be full of them (a U-Net+VAE step at 4x96^3 spent 5.5 s of 14 s in one
            convolution's backward). Restored to what it was when training returns.
    """

    amp: Literal["none", "bf16", "fp16"] = "none"
    device: Literal["auto", "cpu", "cuda"] = "auto"
    deterministic: bool = False
    threads: int = 0
    num_workers: int = 0
    log_grad_norms: bool = False
    reuse_memory: bool = True
    flush_denormal: bool = True

    def __post_init__(self) -> None:
        if self.threads < 0 or self.num_workers < 0:
            raise ConfigError(
                f"threads and num_workers: must be >= 0, got {self.threads}, {self.num_workers}"
            )


Monitor = Literal["val_dice", "val_loss", "val_hd95"]
MetricName = Literal[
    "dice",
    "jaccard",
    "precision",
    "recall",
    "specificity",
    "accuracy",
    "hd",
    "hd95",
    "assd",
    "surface_dice",
    "lesion_dice",
    "lesion_hd95",
    "lesion_precision",
    "lesion_recall",
    "lesion_f1",
    "lesion_count_diff",
    "lesion_volume_diff",
]
"""The names of :data:`volseg.metrics.METRICS` (a test keeps the two equal)."""


@dataclass(frozen=True)
class TrainConfig:
    """The training recipe: what one step sees, how long, and the parts below.

    Attributes:
        epochs: epochs to train; raising it and resuming extends a finished run.
        iterations_per_epoch: optimiser steps per epoch (the global batch each step).
        batch_size: patches per step and per process (DDP: global batch = this x processes).
        patch_size: training patch, array order (z, y, x); padded when the case is smaller.
        foreground_ratio: fraction of patches centred on a foreground voxel.
        seed: seeds weights, patches and augmentation.
        monitor: the validation score that picks ``checkpoint_best.pt`` and drives early
            stopping: ``val_dice`` (mean over labels/regions, higher is better), ``val_loss`` or
            ``val_hd95`` (mean over labels/regions, mm; lower is better).
        val_metrics: metrics validation reports each epoch, per label/region and as their mean
            (``val_<metric>``); Dice always, and what ``monitor`` needs (Adeniji Table 1:
            ``[dice, precision, recall, accuracy]``).
        metric_eps: Adeniji's smoothing eps of Dice, precision and recall (Eqs. 6, 8, 9; the
            paper uses 1) in validation and the training-batch Dice; 0 = the exact ratios.
        compile: train through ``torch.compile(model)`` (compiled on the first step; see
            ``docs/training.md`` for when it pays).
        validate_every: validate every this many epochs (epochs k, 2k, ... counted from 1) and
            always after the last one (``epochs``); other epochs leave the ``val_*`` cells of
            ``log.csv`` blank and keep ``checkpoint_best.pt`` as it is. ``stopping.patience``
            still counts epochs (checked at validations).
        val_max_cases: validate on at most this many of the held-out cases: a subset drawn once
            with ``seed``, the same cases at every validation and after a resume; ``None``
            validates on all of them.
        optimizer, schedule, stopping, runtime: see their classes.
    """

    epochs: int = 50
    iterations_per_epoch: int = 20
    batch_size: int = 2
    patch_size: tuple[int, ...] = (64, 64, 64)
    foreground_ratio: float = 0.5
    seed: int = 0
    monitor: Monitor = "val_dice"
    val_metrics: tuple[MetricName, ...] = ("dice",)
    metric_eps: float = 0.0
    compile: bool = False
    validate_every: int = 1
    val_max_cases: int | None = None
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    stopping: StoppingConfig = field(default_factory=StoppingConfig)
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.iterations_per_epoch < 1:
            raise ConfigError("epochs and iterations_per_epoch: must be >= 1")
        if self.batch_size < 1:
            raise ConfigError(f"batch_size: must be >= 1, got {self.batch_size}")
        if not 1 <= len(self.patch_size) <= 3:
            raise ConfigError(f"patch_size: expected 2 or 3 sizes, got {self.patch_size}")
        _positive("patch_size", self.patch_size)
        if not 0 <= self.foreground_ratio <= 1:
            raise ConfigError(f"foreground_ratio: must be in [0, 1], got {self.foreground_ratio}")
        if not self.metric_eps >= 0:
            raise ConfigError(f"metric_eps: must be >= 0, got {self.metric_eps}")
        if self.validate_every < 1:
            raise ConfigError(f"validate_every: must be >= 1, got {self.validate_every}")
        if self.val_max_cases is not None and self.val_max_cases < 1:
            raise ConfigError(
                f"val_max_cases: must be >= 1 (or null for all), got {self.val_max_cases}"
            )


@dataclass(frozen=True)
class InferConfig:
    """Prediction (see :mod:`volseg.inference` and :mod:`volseg.nn.sliding_window`).

    Validation during training predicts with these same settings, so the validation scores are
    the scores the Predictor will reach on the working grid.

    Attributes:
        window: sliding-window size in array order; ``None`` runs the whole volume at once.
        overlap: fraction of the window shared by neighbouring windows.
        batch_size: windows per forward pass.
        blend: ``gaussian`` (centre voxels of a window count more) or ``constant``.
        sigma_scale: Gaussian sigma as a fraction of the window size.
        mirror_axes: array axes mirrored for test-time augmentation (every combination is run:
            3 axes cost 8 passes); empty disables TTA.
        activation: ``auto`` (sigmoid for ``data.regions`` runs, else softmax), ``softmax``
            or ``sigmoid``.
        threshold: ``None`` takes the argmax of softmax outputs (0.5 for sigmoid ones); one value
            for every foreground class/region or one per class/region thresholds instead.
        keep_largest: label values whose largest connected component alone is kept.
        precision: ``auto`` (what the run trained with, ``train.runtime.amp``: bf16 or fp16
            autocast, else fp32), ``fp32``, ``bf16`` or ``fp16`` (autocast; ``volseg predict
            --precision``). Validation during training runs bf16 or fp32.
        channels_last: run nets channels-last end to end (faster convolutions on CPU; see
            :func:`volseg.nn.layout.to_channels_last`).
        device: ``auto`` (CUDA when available), ``cpu`` or ``cuda`` (``volseg predict
            --device``); windows are copied to a GPU through pinned memory. Exported ``.onnx``
            models run on onnxruntime's CPU provider.
    """

    window: tuple[int, ...] | None = None
    overlap: float = 0.5
    batch_size: int = 1
    blend: Literal["gaussian", "constant"] = "gaussian"
    sigma_scale: float = 0.125
    mirror_axes: tuple[int, ...] = ()
    activation: Literal["auto", "softmax", "sigmoid"] = "auto"
    threshold: tuple[float, ...] | None = None
    keep_largest: tuple[int, ...] = ()
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"
    channels_last: bool = True
    device: Literal["auto", "cpu", "cuda"] = "auto"

    def __post_init__(self) -> None:
        if not 0 <= self.overlap < 1:
            raise ConfigError(f"overlap: must be in [0, 1), got {self.overlap}")
        if self.batch_size < 1:
            raise ConfigError(f"batch_size: must be >= 1, got {self.batch_size}")
        if self.window is not None:
            _positive("window", self.window)
        if not self.sigma_scale > 0:
            raise ConfigError(f"sigma_scale: must be > 0, got {self.sigma_scale}")
        if self.threshold is not None and not all(0 <= t <= 1 for t in self.threshold):
            raise ConfigError(f"threshold: values must be in [0, 1], got {list(self.threshold)}")


@dataclass(frozen=True)
class Config:
    """Everything a run needs; saved as ``config.yaml`` in the run directory and checkpoints.

    Attributes:
        data, preprocess, augment, model, loss, train, infer: see their classes.
        run_dir: the run's folder (relative: to the current working directory).
    """

    data: DataConfig = field(default_factory=DataConfig)
    preprocess: PreprocessConfig = field(default_factory=PreprocessConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    infer: InferConfig = field(default_factory=InferConfig)
    run_dir: str = "runs/default"


def config_from_dict(
    data: dict[str, Any], *, warn_moved: bool = True, source: str = "config"
) -> Config:
    """A :class:`Config` from nested plain data; raises :class:`ConfigError` naming the key.

    Data written by volseg 0.1 (flat ``train.lr``, ``train.amp``, ``train.regions``, flat
    ``augment`` keys) is first brought to today's spelling (:mod:`volseg._legacy_config`), with
    one ``FutureWarning`` naming ``source`` and every change, unless ``warn_moved`` is false
    (checkpoints and exported models: the user cannot edit them).
    """
    data, changes = upgrade(data)
    if changes and warn_moved:
        warnings.warn(
            f"{source}: old spelling read, please update: {'; '.join(changes)}",
            FutureWarning,
            stacklevel=2,
        )
    return from_plain(Config, data, "")


def config_to_dict(config: Any) -> dict[str, Any]:
    """Plain nested data (tuples as lists) for YAML or a checkpoint."""
    result: dict[str, Any] = to_plain(config)
    return result


def load_config(path: str | Path) -> Config:
    """Load a YAML config; a relative ``data.root`` is resolved against the current directory.

    The working directory, not the YAML's folder, is what a user means by a relative path on
    the command line (``volseg train configs/x.yaml`` with ``data.root: data/Task04``); the
    resolved path is absolute, so the run's saved config works from anywhere.
    """
    path = Path(path)
    try:
        raw = _read_yaml(path.read_text(encoding="utf-8")) or {}
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: invalid YAML ({err})") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: top level must be a mapping")
    try:
        config = config_from_dict(raw, source=str(path))
    except ConfigError as err:
        raise ConfigError(f"{path}: {err}") from None
    return _resolve_root(config)


def _resolve_root(config: Config) -> Config:
    """``data.root`` made absolute against the current working directory."""
    root = config.data.root
    if not root or Path(root).is_absolute():
        return config
    return dataclasses.replace(
        config, data=dataclasses.replace(config.data, root=str(Path(root).resolve()))
    )


def config_yaml(config: Config) -> str:
    """The config as YAML text: every key, in the dataclasses' order (loads back equal)."""
    text: str = yaml.safe_dump(config_to_dict(config), sort_keys=False)
    return text


def dump_config(config: Config, path: str | Path) -> None:
    """Write the resolved config as YAML (atomically: see :mod:`volseg._atomic`)."""
    from volseg._atomic import atomic_path

    with atomic_path(path) as tmp:
        tmp.write_text(config_yaml(config), encoding="utf-8")


# --- command-line overrides (``--set key=value``) ----------------------------------------------

RESUMABLE_KEYS: tuple[str, ...] = (
    "data.root",
    "preprocess.cache_dir",
    "train.epochs",
    "train.validate_every",
    "train.val_max_cases",
    "train.stopping",
    "train.runtime.device",
    "train.runtime.deterministic",
    "train.runtime.threads",
    "train.runtime.num_workers",
    "train.runtime.log_grad_norms",
    "train.runtime.reuse_memory",
    "train.runtime.flush_denormal",
    "infer.batch_size",
    "infer.channels_last",
    "infer.device",
)
"""Keys (and sections: every key below them) that ``volseg train --resume RUN --set`` may change.

They say how long and where a run goes on, not what it learns: ``train.epochs`` (a ``poly``
schedule then ends at the new last epoch), the stopping rules (``patience``, ``min_delta``,
the per-invocation ``max_minutes``), how often it validates, the device and threads, and
where the same cases now lie. Everything else (optimiser, patch, augmentation, model...)
changes the run's recipe: train a new run instead.
"""


def _parse_override(text: str) -> tuple[str, Any]:
    """``"train.epochs=3"`` -> ``("train.epochs", 3)``: the value is read by YAML's rules."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key or not all(part.strip() for part in key.split(".")):
        raise ConfigError(f"--set {text!r}: expected KEY=VALUE with a dotted KEY (train.epochs=3)")
    try:
        value = _read_yaml(raw)
    except yaml.YAMLError:
        raise ConfigError(
            f"--set {key}: {raw!r} is not a YAML value (quote text holding ': ' or '#')"
        ) from None
    moved = MOVED_KEYS.get(key)
    if moved is not None and not isinstance(value, dict):  # volseg 0.1 spelling (as upgrade())
        warnings.warn(f"--set {key}: old spelling, please use {moved}", FutureWarning, stacklevel=3)
        key = moved
    return key, value


def _section_class(hint: Any) -> type | None:
    """The dataclass a type hint stands for (``X`` or ``X | None``), else None."""
    if typing.get_origin(hint) in (Union, types.UnionType):
        classes = [
            a for a in typing.get_args(hint) if isinstance(a, type) and dataclasses.is_dataclass(a)
        ]
        return classes[0] if classes else None
    return hint if isinstance(hint, type) and dataclasses.is_dataclass(hint) else None


def _assign(plain: dict[str, Any], key: str, value: Any) -> None:
    """Set the dotted ``key`` of plain config data, checking each part against the classes."""
    parts = key.split(".")
    node: Any = plain
    hint: Any = Config
    for depth, part in enumerate(parts):
        where = ".".join(parts[:depth])
        section = _section_class(hint)
        slot: str | int = part
        if section is not None:
            hints = typing.get_type_hints(section)
            if part not in hints:
                raise ConfigError(
                    f"--set {key}: unknown key {part!r} in {where or 'the config'} "
                    f"(its keys: {', '.join(hints)})"
                )
            hint = hints[part]
        elif isinstance(node, dict):  # a free mapping such as model.kwargs
            hint = Any
        elif isinstance(node, list) and part.isdigit():
            if int(part) >= len(node):
                raise ConfigError(f"--set {key}: {where} has {len(node)} entries, no [{part}]")
            slot = int(part)  # augment.transforms.0.p
            args = typing.get_args(hint)
            hint = args[0] if args else Any
        else:
            raise ConfigError(f"--set {key}: {where} holds {node!r}, not keys")
        if depth == len(parts) - 1:
            node[slot] = value
        elif isinstance(node, dict) and node.get(part) is None:
            node[part] = {}  # a free mapping grows; null sections are filled from the key
            node = node[part]
        else:
            node = node[slot]


def apply_overrides(config: Config, overrides: Sequence[str]) -> Config:
    """``config`` with ``key=value`` overrides applied, checked like a YAML file.

    Keys are the YAML's, dotted (``train.optimizer.lr=3e-4``, ``model.kwargs.base_channels=8``,
    ``augment.transforms.0.p=0.5``); values are read with YAML's rules, so they are typed as
    in a file (``[64,64,32]``, ``null``, ``true``, ``1e-3``). A key of volseg 0.1
    (``train.max_minutes``) goes to its new place with a ``FutureWarning``. An unknown key, a
    wrong type or a value outside its choices raises :class:`ConfigError` naming the key; a
    relative ``data.root`` is resolved against the current directory (as in :func:`load_config`).
    Later overrides win.
    """
    if not overrides:
        return config
    plain = config_to_dict(config)
    for text in overrides:
        _assign(plain, *_parse_override(text))
    try:
        updated = from_plain(Config, plain, "")
    except ConfigError as err:
        raise ConfigError(f"--set: {err}") from None
    return _resolve_root(updated)


def _leaves(key: str, value: Any) -> Iterable[str]:
    if isinstance(value, dict) and value:
        for k, v in value.items():
            yield from _leaves(f"{key}.{k}", v)
    else:
        yield key


def override_keys(overrides: Sequence[str]) -> list[str]:
    """The dotted keys that ``overrides`` set, in today's spelling; a mapping value counts as
    each of its keys (``train.stopping={patience: 5}`` sets ``train.stopping.patience``)."""
    keys: list[str] = []
    for text in overrides:
        keys += _leaves(*_parse_override(text))
    return keys


def check_resumable(overrides: Sequence[str]) -> None:
    """Raise :class:`ConfigError` naming the first key of ``overrides`` outside
    :data:`RESUMABLE_KEYS`."""
    for key in override_keys(overrides):
        if not any(key == k or key.startswith(f"{k}.") for k in RESUMABLE_KEYS):
            raise ConfigError(
                f"--resume: {key} cannot change on resume (it changes the run's recipe); "
                f"start a new run (a resume may change {', '.join(RESUMABLE_KEYS)})"
            )


# --- the reference of every key (docs/config.md) --------------------------------------------


def _attribute_docs(cls: type) -> dict[str, str]:
    """Each field's text from the ``Attributes:`` section of ``cls``'s docstring (one line)."""
    docs: dict[str, list[str]] = {}
    names: list[str] = []
    inside = False
    for line in inspect.cleandoc(cls.__doc__ or "").splitlines():
        if line.strip() == "Attributes:":
            inside = True
            continue
        if not inside or not line.strip():
            continue
        if not line.startswith(" "):  # the next section
            break
        entry = re.match(r"^ {4}(\w+(?:, \w+)*): (.*)$", line)
        if entry:
            names = entry.group(1).split(", ")
            for name in names:
                docs[name] = [entry.group(2)]
        else:
            for name in names:
                docs[name].append(line.strip())
    return {name: " ".join(parts) for name, parts in docs.items()}


def _markdown(text: str) -> str:
    """Docstring markup as Markdown for a table cell."""
    text = re.sub(r":\w+:`~?([^`]+)`", r"`\1`", text)
    return text.replace("``", "`").replace("|", "\\|")


def _type_text(hint: Any) -> str:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (Union, types.UnionType):
        return " or ".join(_type_text(a) for a in args)
    if origin is Literal:
        return ", ".join(f"`{a}`" for a in args)
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return f"list of ({_type_text(args[0])})"
        return f"list of {len(args)} ({_type_text(args[0])})"
    if origin is dict:
        return "mapping"
    names = {float: "number", int: "integer", bool: "bool", str: "text", type(None): "null"}
    if hint in names:
        return names[hint]
    if dataclasses.is_dataclass(hint):
        return "mapping (keys below)"
    return "any" if hint is Any else str(hint)


def _default_text(f: dataclasses.Field[Any]) -> str:
    if f.default is not dataclasses.MISSING:
        value = f.default
    elif f.default_factory is not dataclasses.MISSING:
        value = f.default_factory()
    else:
        return "(required)"
    text = yaml.safe_dump(to_plain(value), default_flow_style=True, width=1000)
    return f"`{text.removesuffix(chr(10)).removesuffix('...').strip()}`"


def _reference_section(cls: type, prefix: str, out: list[str]) -> None:
    hints = typing.get_type_hints(cls)
    docs = _attribute_docs(cls)
    summary = inspect.cleandoc(cls.__doc__ or "").splitlines()[0]
    rows, below = [], []
    for f in dataclasses.fields(cls):
        key = f"{prefix}.{f.name}" if prefix else f.name
        if f.name not in docs:
            raise ValueError(f"{cls.__name__}.{f.name}: not in its docstring's Attributes")
        hint = hints[f.name]
        section = _section_class(hint)
        if section is not None:
            anchor = key.replace(".", "")
            rows.append(f"| `{key}` | section | | see [`{key}`](#{anchor}) |")
            below.append((section, key))
            continue
        meaning = _markdown(docs[f.name])
        entry = typing.get_args(hint)[0] if typing.get_origin(hint) is tuple else None
        if dataclasses.is_dataclass(entry):  # a list of sections: augment.transforms
            below.append((entry, f"{key}.N"))  # type: ignore[arg-type]
            meaning += f" Each entry: see [`{key}.N`](#{key.replace('.', '')}n)."
        rows.append(f"| `{key}` | {_type_text(hints[f.name])} | {_default_text(f)} | {meaning} |")
    out += [f"## `{prefix}`" if prefix else "## top level", "", _markdown(summary), ""]
    out += ["| key | type | default | meaning |", "|---|---|---|---|", *rows, ""]
    for section, key in below:
        _reference_section(section, key, out)


def render_config_reference() -> str:
    """``docs/config.md``: every key with its type, default and meaning, from the dataclasses.

    The meanings are the ``Attributes:`` sections of the classes' docstrings, so the reference
    cannot drift from the code (``volseg config doc -o docs/config.md`` rewrites it; a test
    compares). A field missing from its class's ``Attributes:`` raises ``ValueError``.
    """
    out = [
        "# Configuration reference",
        "",
        "<!-- Generated by `volseg config doc -o docs/config.md` from the dataclasses in",
        "src/volseg/config.py (their docstrings' Attributes sections): edit those, not this. -->",
        "",
        "A YAML config mirrors these keys; a key left out takes its default.",
        "",
        "- `volseg config show CONFIG.yaml [--set ...]` prints a config with every key filled in.",
        "- `train`, `cv`, `experiment` and `config show` take `--set KEY=VALUE` (repeatable) with",
        "  the dotted keys below; values are read with YAML's rules, so they are typed as in a",
        "  file: `--set train.epochs=3 --set train.patch_size=[64,64,32] --set infer.window=null",
        "  --set train.optimizer.lr=1e-3 --set model.kwargs.base_channels=8`. An unknown key or",
        "  a value of the wrong type is an error naming the key.",
        "- `predict` takes `--set infer.KEY=VALUE` (its flags `--window`, `--overlap`... are",
        "  short forms of the same keys).",
        "- `train --resume RUN` takes `--set` (and `--epochs`) for these keys only, the rest",
        "  would change the run's recipe: "
        + ", ".join(f"`{k}`" for k in RESUMABLE_KEYS)
        + " (a section stands for all its keys). `train.stopping.max_minutes` counts from the",
        "  start of each invocation, so a resumed run gets the whole budget again.",
        "- A relative `data.root` is resolved against the current working directory, not the",
        "  YAML's folder.",
        "",
        "Types: `list of (...)` is a YAML list; `mapping` a YAML mapping passed on as keyword",
        "arguments; `a`, `b` lists the allowed values.",
        "",
    ]
    _reference_section(Config, "", out)
    return "\n".join(out).rstrip("\n") + "\n"
