"""Reading config data written by volseg 0.1: keys that moved, and the old flat augmentation.

:func:`upgrade` turns such data into today's spelling and says what it changed, so files and
checkpoints of earlier runs keep loading (:func:`volseg.config.config_from_dict` warns once with
the list). Nothing else in volseg reads the old spelling.
"""

from __future__ import annotations

import copy
from typing import Any

from volseg._typed import ConfigError

__all__ = ["MOVED_KEYS", "legacy_augment", "move_legacy_keys", "upgrade"]


# Keys that moved when TrainConfig was split by concern: old dotted path -> new dotted path.
# Files and checkpoints written before keep loading; a FutureWarning names the new spelling.
MOVED_KEYS: dict[str, str] = {
    "train.regions": "data.regions",
    "train.optimizer": "train.optimizer.name",
    "train.lr": "train.optimizer.lr",
    "train.momentum": "train.optimizer.momentum",
    "train.weight_decay": "train.optimizer.weight_decay",
    "train.nesterov": "train.optimizer.nesterov",
    "train.grad_clip": "train.optimizer.grad_clip",
    "train.schedule": "train.schedule.name",
    "train.step_size": "train.schedule.step_size",
    "train.step_gamma": "train.schedule.step_gamma",
    "train.poly_power": "train.schedule.poly_power",
    "train.warmup_epochs": "train.schedule.warmup_epochs",
    "train.warmup_start_lr": "train.schedule.warmup_start_lr",
    "train.early_stopping_patience": "train.stopping.patience",
    "train.early_stopping_min_delta": "train.stopping.min_delta",
    "train.max_minutes": "train.stopping.max_minutes",
    "train.amp": "train.runtime.amp",
    "train.device": "train.runtime.device",
    "train.deterministic": "train.runtime.deterministic",
    "train.threads": "train.runtime.threads",
    "train.num_workers": "train.runtime.num_workers",
    "train.log_grad_norms": "train.runtime.log_grad_norms",
}


def move_legacy_keys(data: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """Plain config data with keys of :data:`MOVED_KEYS` moved to their new place.

    Returns the new data (the input is not changed) and one ``"old -> new"`` line per moved key.
    A key is old when it holds a value where a section now stands (``train.optimizer: sgd``)
    or when its name no longer exists in its section.
    """
    out = copy.deepcopy(data)
    moved = []
    for old, new in MOVED_KEYS.items():
        section, key = old.split(".")
        table = out.get(section)
        if not isinstance(table, dict) or key not in table or isinstance(table[key], dict):
            continue
        value = table.pop(key)
        *parents, leaf = new.split(".")
        target = out
        for name in parents:
            target = target.setdefault(name, {})
            if not isinstance(target, dict):
                raise ConfigError(f"{name}: expected a mapping, got {target!r}")
        if leaf in target:
            raise ConfigError(f"{old} and {new} both given; keep {new}")
        target[leaf] = value
        moved.append(f"{old} -> {new}")
    return out, moved


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
    changed (:func:`upgrade` reports the conversion).
    """
    if not any(key in old for key in _LEGACY_AUGMENT_KEYS):
        return old
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


def upgrade(data: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """``data`` in today's spelling, and one ``"old -> new"`` line per change (none: ``[]``)."""
    data, changes = move_legacy_keys(data)
    augment = data.get("augment")
    if isinstance(augment, dict):
        new = legacy_augment(augment)
        if new is not augment:
            old_keys = sorted(set(augment) - set(new))
            changes.append(f"augment.{{{', '.join(old_keys)}}} -> augment.transforms")
            data = {**data, "augment": new}
    return data, changes
