"""Typed, frozen configuration: one dataclass per stage, loaded from and dumped to YAML.

A YAML file mirrors :class:`Config`; unknown keys and wrong types are errors that name the key.
Sizes and spacings follow :mod:`volseg.io`: ``patch_size``/``window`` are in array order
``(z, y, x)``; ``target_spacing`` is in ITK order ``(x, y, z)`` like every spacing on disk.
"""

from __future__ import annotations

import dataclasses
import types
import typing
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar, Union

import yaml

__all__ = [
    "AugmentConfig",
    "Config",
    "ConfigError",
    "DataConfig",
    "InferConfig",
    "LossConfig",
    "ModelConfig",
    "PreprocessConfig",
    "TrainConfig",
    "TransformConfig",
    "config_from_dict",
    "config_to_dict",
    "dump_config",
    "legacy_augment",
    "load_config",
]


class ConfigError(ValueError):
    """A configuration value is missing, unknown or of the wrong type."""


@dataclass(frozen=True)
class DataConfig:
    """Where the cases are and which of them validate.

    Attributes:
        root: dataset folder (MSD/nnU-Net, BraTS, PROMISE12) or a CSV/JSON manifest file.
            Relative paths are resolved against the YAML file's folder.
        layout: ``auto`` or one of :func:`volseg.data.layouts.list_layouts`.
        labels: declared label values including background 0; ``None`` reads them from
            ``dataset.json`` or assumes ``(0, 1)``.
        val_cases: case ids held out for validation; empty picks ``val_fraction`` of the cases.
        val_fraction: fraction of cases (at least one when there are two or more) to validate on.
    """

    root: str = ""
    layout: str = "auto"
    labels: tuple[int, ...] | None = None
    val_cases: tuple[str, ...] = ()
    val_fraction: float = 0.2


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
        orient: reorient to this DICOM-style code (``LPS``, ``RAS``...) before anything else;
            ``None`` keeps the scan's own axes.
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
        crop_size: crop or zero-pad to this size (array order z, y, x) at the end; ``None`` keeps.
        crop_mode: where the ``crop_size`` box sits: ``center`` of the volume or ``foreground``
            (centre of the label's foreground box; the non-zero box when there is no label).
        cache_dir: keep preprocessed cases as arrays here (:mod:`volseg.data.cache`); ``None``
            disables. Not part of the preprocessing itself (not in the cache key).
    """

    n4: bool = False
    n4_shrink: int = 4
    n4_mask: str = "otsu"
    n4_iterations: tuple[int, ...] = (50, 50, 50, 50)
    orient: str | None = "LPS"
    target_spacing: tuple[float, ...] | None = None
    interpolation: str = "linear"
    anisotropy_threshold: float | None = 3.0
    crop_nonzero: bool = True
    clip_window: tuple[float, float] | None = None
    normalize: str = "zscore_nonzero"
    clip_percentiles: tuple[float, float] = (0.5, 99.5)
    crop_size: tuple[int, ...] | None = None
    crop_mode: str = "center"
    cache_dir: str | None = None


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


_LEGACY_AUGMENT_KEYS = [
    "flip_axes",
    "flip_p",
    "affine_p",
    "rotate_deg",
    "scale_range",
    "elastic_p",
    "elastic_grid",
    "elastic_sigma",
    "intensity_p",
    "shift",
    "scale",
    "gamma_p",
    "gamma_range",
    "noise_std",
    "bias_p",
    "bias_strength",
    "histogram_p",
    "histogram_levels",
    "histogram_points",
]


def legacy_augment(old: dict[str, Any]) -> dict[str, Any]:
    """Convert an ``augment`` section with the old flat keys into the ``transforms`` list.

    The conversion (old defaults where a key is missing; a transform appears only when it
    could fire), in the old sampler's order:
    ``flip_axes``/``flip_p`` -> ``flip``; ``affine_p``/``rotate_deg``/``scale_range`` ->
    ``affine`` (``degrees``, ``scale``); ``elastic_p``/``elastic_grid``/``elastic_sigma`` ->
    ``bspline`` (``grid``, ``sigma_voxels``); ``histogram_p``/``histogram_levels``/
    ``histogram_points`` -> ``histogram_matching`` (``levels``, ``points``); ``bias_p``/
    ``bias_strength`` -> ``bias_field`` (``strength`` = 2.75 x ``bias_strength``: the old field
    was trilinear between 3 control values per axis, the cubic B-spline field averages more and
    needs 2.75x the control amplitude for the same std); ``gamma_p``/``gamma_range`` ->
    ``gamma``; ``intensity_p``/``shift``/``scale`` -> ``intensity_shift_scale``; ``noise_std``
    -> ``noise`` (``std``, p = 1). A section without old keys is returned as it is; other keys
    (``crops_per_volume``, unknown ones) are kept for the normal checks. The input is not
    changed; a conversion warns once (``FutureWarning``) with the new spelling.
    """
    if not any(key in old for key in _LEGACY_AUGMENT_KEYS):
        return old
    warnings.warn(
        "augment: flat keys (flip_p, affine_p, elastic_sigma, ...) are deprecated; write "
        "augment.transforms: [{name: flip, p: 0.5, kwargs: {axes: [2]}}, ...]",
        FutureWarning,
        stacklevel=2,
    )
    get: dict[str, Any] = {
        "flip_axes": [], "flip_p": 0.5, "affine_p": 0.0, "rotate_deg": 15.0,
        "scale_range": [0.85, 1.15], "elastic_p": 0.0, "elastic_grid": 2, "elastic_sigma": 15.0,
        "intensity_p": 0.0, "shift": 0.1, "scale": 0.1, "gamma_p": 0.0,
        "gamma_range": [0.7, 1.5], "noise_std": 0.0, "bias_p": 0.0, "bias_strength": 0.3,
        "histogram_p": 0.0, "histogram_levels": 1024, "histogram_points": 7,
    }  # fmt: skip
    get.update({k: v for k, v in old.items() if k in get})
    entries: list[tuple[str, Any, dict[str, Any], bool]] = [
        ("flip", get["flip_p"], {"axes": list(get["flip_axes"])}, bool(get["flip_axes"])),
        ("affine", get["affine_p"],
         {"degrees": get["rotate_deg"], "scale": list(get["scale_range"])}, True),
        ("bspline", get["elastic_p"],
         {"grid": get["elastic_grid"], "sigma_voxels": get["elastic_sigma"]}, True),
        ("histogram_matching", get["histogram_p"],
         {"levels": get["histogram_levels"], "points": get["histogram_points"]}, True),
        ("bias_field", get["bias_p"], {"strength": 2.75 * get["bias_strength"]}, True),
        ("gamma", get["gamma_p"], {"gamma_range": list(get["gamma_range"])}, True),
        ("intensity_shift_scale", get["intensity_p"],
         {"shift": get["shift"], "scale": get["scale"]}, True),
        ("noise", 1.0, {"std": get["noise_std"]}, get["noise_std"] > 0),
    ]  # fmt: skip
    transforms = [
        {"name": name, "p": p, "kwargs": kwargs}
        for name, p, kwargs, used in entries
        if used and p > 0
    ]
    new = {k: v for k, v in old.items() if k not in _LEGACY_AUGMENT_KEYS}
    new["transforms"] = list(new.get("transforms", [])) + transforms
    return new


@dataclass(frozen=True)
class ModelConfig:
    """A registered network and its keyword arguments (see ``volseg.list_models()``)."""

    name: str = "vnet"
    kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class LossConfig:
    """A registered loss and its keyword arguments (see ``volseg.list_losses()``)."""

    name: str = "vnet_dice"
    kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class TrainConfig:
    """The optimisation loop and its recipe (see :mod:`volseg.training.schedules`).

    Attributes:
        epochs: epochs to train; raising it and resuming extends a finished run.
        iterations_per_epoch: optimiser steps per epoch (the global batch each step).
        batch_size: patches per step and per process (DDP: global batch = this x processes).
        patch_size: training patch, array order (z, y, x); padded when the case is smaller.
        foreground_ratio: fraction of patches centred on a foreground voxel.
        optimizer: ``sgd`` (with ``momentum``, V-Net: 0.99), ``adam`` or ``adamw``.
        lr: base learning rate lr0.
        weight_decay: L2 penalty (``adamw``: decoupled decay).
        nesterov: Nesterov momentum for ``sgd``.
        schedule: ``constant``, ``step`` (lr0 * ``step_gamma`` ** (iteration // ``step_size``),
            V-Net: /10 every 25K iterations) or ``poly`` (lr0 * (1 - e / epochs) ** ``poly_power``,
            Myronenko; e = finished epochs).
        warmup_epochs: linear warm-up from ``warmup_start_lr`` to the schedule's value at the end
            of the warm-up, composed with any schedule (0 disables).
        early_stopping_patience: stop after this many epochs without a validation Dice gain of
            more than ``early_stopping_min_delta`` (0 disables).
        grad_clip: clip the global gradient L2 norm to this value (``None`` disables).
        amp: ``none``, ``bf16`` (autocast; on CPU with AVX-512-bf16 about 1.7x faster) or
            ``fp16`` (CUDA only, with a gradient scaler).
        device: ``auto`` (CUDA when available), ``cpu`` or ``cuda``.
        deterministic: ask torch for deterministic kernels (slower on CUDA).
        regions: ``None`` trains a softmax over the exclusive labels; ``brats`` (whole tumour
            {1, 2, 4}, tumour core {1, 4}, enhancing tumour {4}; see :mod:`volseg.regions`) or a
            list of label-value groups trains one sigmoid channel per (overlapping) region.
        log_grad_norms: log per-layer gradient norms each epoch (Drozdzal) with a plot.
        seed: seeds weights, patches and augmentation.
        threads: torch intra-op threads (0 keeps torch's default).
        num_workers: DataLoader worker processes preparing augmented patches.
        max_minutes: stop after the epoch that crosses this wall-clock budget.
    """

    epochs: int = 50
    iterations_per_epoch: int = 20
    batch_size: int = 2
    patch_size: tuple[int, ...] = (64, 64, 64)
    foreground_ratio: float = 0.5
    optimizer: str = "adam"
    lr: float = 1e-3
    momentum: float = 0.99
    weight_decay: float = 0.0
    nesterov: bool = False
    schedule: str = "constant"
    step_size: int = 25000
    step_gamma: float = 0.1
    poly_power: float = 0.9
    warmup_epochs: int = 0
    warmup_start_lr: float = 1e-6
    early_stopping_patience: int = 0
    early_stopping_min_delta: float = 0.0
    grad_clip: float | None = None
    seed: int = 0
    amp: str = "none"
    device: str = "auto"
    deterministic: bool = False
    regions: str | tuple[tuple[int, ...], ...] | None = None
    log_grad_norms: bool = False
    threads: int = 0
    num_workers: int = 0
    max_minutes: float | None = None


@dataclass(frozen=True)
class InferConfig:
    """Prediction (see :mod:`volseg.inference` and :mod:`volseg.nn.sliding_window`).

    Attributes:
        window: sliding-window size in array order; ``None`` runs the whole volume at once.
        overlap: fraction of the window shared by neighbouring windows.
        batch_size: windows per forward pass.
        blend: ``gaussian`` (centre voxels of a window count more) or ``constant``.
        sigma_scale: Gaussian sigma as a fraction of the window size.
        mirror_axes: array axes mirrored for test-time augmentation (every combination is run:
            3 axes cost 8 passes); empty disables TTA.
        activation: ``auto`` (sigmoid for ``train.regions`` runs, else softmax), ``softmax``
            or ``sigmoid``.
        threshold: ``None`` takes the argmax of softmax outputs (0.5 for sigmoid ones); one value
            for every foreground class/region or one per class/region thresholds instead.
        keep_largest: label values whose largest connected component alone is kept.
        channels_last: run nets channels-last end to end (faster convolutions on CPU; see
            :func:`volseg.nn.layout.to_channels_last`).
    """

    window: tuple[int, ...] | None = None
    overlap: float = 0.5
    batch_size: int = 1
    blend: str = "gaussian"
    sigma_scale: float = 0.125
    mirror_axes: tuple[int, ...] = ()
    activation: str = "auto"
    threshold: tuple[float, ...] | None = None
    keep_largest: tuple[int, ...] = ()
    channels_last: bool = True


@dataclass(frozen=True)
class Config:
    """Everything a run needs; saved as ``config.yaml`` in the run directory and checkpoints."""

    data: DataConfig = field(default_factory=DataConfig)
    preprocess: PreprocessConfig = field(default_factory=PreprocessConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    infer: InferConfig = field(default_factory=InferConfig)
    run_dir: str = "runs/default"


T = TypeVar("T")


def _convert(value: Any, hint: Any, where: str) -> Any:
    """Check ``value`` against the type ``hint`` and convert lists to tuples, dicts to classes."""
    origin = typing.get_origin(hint)
    if origin in (Union, types.UnionType):
        options = typing.get_args(hint)
        if value is None:
            if type(None) in options:
                return None
            raise ConfigError(f"{where}: may not be null")
        errors = []
        for option in options:
            if option is type(None):
                continue
            try:
                return _convert(value, option, where)
            except ConfigError as err:
                errors.append(str(err))
        raise ConfigError(errors[0])
    if dataclasses.is_dataclass(hint):
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {type(value).__name__}")
        return _from_dict(hint, value, where)  # type: ignore[arg-type]
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        args = typing.get_args(hint)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_convert(v, args[0], f"{where}[{i}]") for i, v in enumerate(value))
        if len(args) != len(value):
            raise ConfigError(f"{where}: expected {len(args)} values, got {len(value)}")
        return tuple(_convert(v, a, f"{where}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        return dict(value)
    if hint is Any:
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return value
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true or false, got {value!r}")
        return value
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return value
    raise ConfigError(f"{where}: unsupported type {hint}")


def _from_dict(cls: type[T], data: dict[str, Any], where: str) -> T:
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(
            f"{where}: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(names))}"
        )
    kwargs = {k: _convert(v, hints[k], f"{where}.{k}" if where else k) for k, v in data.items()}
    return cls(**kwargs)


def config_from_dict(data: dict[str, Any]) -> Config:
    """A :class:`Config` from nested plain data; raises :class:`ConfigError` naming the key."""
    if isinstance(data.get("augment"), dict):  # configs and checkpoints of the old flat keys
        data = {**data, "augment": legacy_augment(data["augment"])}
    return _from_dict(Config, data, "")


def config_to_dict(config: Any) -> dict[str, Any]:
    """Plain nested data (tuples as lists) for YAML or a checkpoint."""

    def plain(value: Any) -> Any:
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
        if isinstance(value, (list, tuple)):
            return [plain(v) for v in value]
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        return value

    result: dict[str, Any] = plain(config)
    return result


def load_config(path: str | Path) -> Config:
    """Load a YAML config; a relative ``data.root`` is resolved against the file's folder."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: invalid YAML ({err})") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: top level must be a mapping")
    try:
        config = config_from_dict(raw)
    except ConfigError as err:
        raise ConfigError(f"{path}: {err}") from None
    data = config.data
    if data.root and not Path(data.root).is_absolute():
        data = dataclasses.replace(data, root=str((path.parent / data.root).resolve()))
    return dataclasses.replace(config, data=data)


def dump_config(config: Config, path: str | Path) -> None:
    """Write the resolved config as YAML."""
    Path(path).write_text(yaml.safe_dump(config_to_dict(config), sort_keys=False))
