"""Typed, frozen configuration: one dataclass per stage, loaded from and dumped to YAML.

A YAML file mirrors :class:`Config`; unknown keys and wrong types are errors that name the key.
Sizes and spacings follow :mod:`volseg.io`: ``patch_size``/``window`` are in array order
``(z, y, x)``; ``target_spacing`` is in ITK order ``(x, y, z)`` like every spacing on disk.
"""

from __future__ import annotations

import dataclasses
import types
import typing
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
    "config_from_dict",
    "config_to_dict",
    "dump_config",
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

    Attributes:
        orient: reorient to this DICOM-style code (``LPS``, ``RAS``...) before anything else;
            ``None`` keeps the scan's own axes.
        target_spacing: mm in ITK order (x, y, z); ``None`` keeps the scan's spacing.
        crop_nonzero: crop to the bounding box of voxels that are non-zero in any channel.
        normalize: ``zscore_nonzero`` (per channel, over non-zero voxels), ``zscore``,
            ``percentile`` (clip to ``clip_percentiles`` then z-score) or ``none``.
    """

    orient: str | None = "LPS"
    target_spacing: tuple[float, ...] | None = None
    crop_nonzero: bool = True
    normalize: str = "zscore_nonzero"
    clip_percentiles: tuple[float, float] = (0.5, 99.5)


@dataclass(frozen=True)
class AugmentConfig:
    """On-the-fly augmentation; each transform fires with its own probability.

    Attributes:
        flip_axes: array axes that may be mirrored (each with ``flip_p``).
        affine_p: probability of a random rotation + scaling.
        rotate_deg: maximal absolute rotation about each axis, degrees.
        scale_range: isotropic scale factor range.
        elastic_p: probability of a random B-spline deformation.
        elastic_grid: B-spline mesh size per axis (V-Net: 2, a 2x2x2 control grid).
        elastic_sigma: displacement std of control points, voxels (V-Net: 15).
        intensity_p: probability of a random intensity shift/scale (Myronenko).
        shift: shift by up to +/- ``shift`` std; ``scale``: multiply by 1 +/- ``scale``.
        gamma_p: probability of a random gamma (contrast) change in ``gamma_range``.
        noise_std: largest std of additive Gaussian noise (0 disables).
        bias_p: probability of a smooth multiplicative bias field of up to +/- ``bias_strength``.
    """

    flip_axes: tuple[int, ...] = ()
    flip_p: float = 0.5
    affine_p: float = 0.0
    rotate_deg: float = 15.0
    scale_range: tuple[float, float] = (0.85, 1.15)
    elastic_p: float = 0.0
    elastic_grid: int = 2
    elastic_sigma: float = 15.0
    intensity_p: float = 0.0
    shift: float = 0.1
    scale: float = 0.1
    gamma_p: float = 0.0
    gamma_range: tuple[float, float] = (0.7, 1.5)
    noise_std: float = 0.0
    bias_p: float = 0.0
    bias_strength: float = 0.3


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
    """The optimisation loop.

    Attributes:
        patch_size: training patch, array order (z, y, x); padded when the case is smaller.
        foreground_ratio: fraction of patches centred on a foreground voxel.
        amp: ``none`` or ``bf16`` (autocast; on CPU with AVX-512-bf16 about 1.7x faster).
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
    seed: int = 0
    amp: str = "none"
    threads: int = 0
    num_workers: int = 0
    max_minutes: float | None = None


@dataclass(frozen=True)
class InferConfig:
    """Prediction.

    Attributes:
        window: sliding-window size in array order; ``None`` runs the whole volume at once.
        overlap: fraction of the window shared by neighbouring windows.
    """

    window: tuple[int, ...] | None = None
    overlap: float = 0.5
    batch_size: int = 1


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
    """Load a YAML config; ``data.root`` and ``run_dir`` become absolute relative to the file."""
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
