"""Label names in metric columns: ``dice_hippocampus_left`` instead of ``dice_1``.

A metric column is ``<metric>_<key>``. The key of a label is its name made safe for a column
(:func:`safe_name`: lowercase, runs of anything outside ``[a-z0-9]`` become one ``_``), or the
label value when it has no name, when its name leaves nothing safe, or when an earlier label
already took that key. A region keeps its own name (``WT``, ``TC``, ``ET``; see
:mod:`volseg.regions`).

Where names come from (:func:`dataset_label_names`), first found wins:

* ``data.label_names`` of the config (saved with every run, so ``volseg evaluate``, ``report``,
  ``cv`` and the experiments name a run's columns as training did);
* the MSD / nnU-Net ``dataset.json``: ``"labels": {"0": "background", "1": "hippocampus_left"}``
  (v1) or ``{"background": 0, "hippocampus_left": 1}`` (v2; region entries, whose value is a
  list, are skipped);
* a JSON manifest's ``"label_names": {"1": "liver"}``;
* BraTS, from its file naming: labels 1, 2 and 4 (up to 2021) or 3 (2023+) are
  ``necrotic_core``, ``edema`` and ``enhancing_tumor``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

from volseg.config import DataConfig

__all__ = [
    "BRATS_LABEL_NAMES",
    "config_label_names",
    "dataset_label_names",
    "label_keys",
    "names_beside",
    "read_label_names",
    "safe_name",
]

BRATS_LABEL_NAMES: dict[int, str] = {
    1: "necrotic_core",
    2: "edema",
    3: "enhancing_tumor",  # BraTS 2023+
    4: "enhancing_tumor",  # BraTS up to 2021
}
"""The BraTS label values by name (only the values a dataset declares are used)."""


def safe_name(name: str) -> str:
    """``"Hippocampus Left"`` -> ``"hippocampus_left"``: lowercase ``[a-z0-9_]``, no edge ``_``."""
    return re.sub(r"[^a-z0-9]+", "_", str(name).lower()).strip("_")


def label_keys(labels: Sequence[int], names: Mapping[int, str] | None = None) -> dict[int, str]:
    """The column key of each label: its safe name, else its value (see the module docstring).

    Example:
        >>> label_keys([1, 2, 3], {1: "Left lobe", 2: "left-lobe"})
        {1: 'left_lobe', 2: '2', 3: '3'}
    """
    keys: dict[int, str] = {}
    taken = {str(int(v)) for v in labels}  # a name never shadows another label's value
    for label in labels:
        label = int(label)
        key = safe_name((names or {}).get(label, ""))
        if not key or key in keys.values() or (key in taken and key != str(label)):
            key = str(label)
        keys[label] = key
    return keys


def _names_from(mapping: object, where: str) -> dict[int, str]:
    """``{"1": "liver"}`` (value -> name) or ``{"liver": 1}`` (name -> value; lists skipped)."""
    if not isinstance(mapping, Mapping):
        raise ValueError(f"{where}: expected a mapping of label value to name")
    names: dict[int, str] = {}
    for key, value in mapping.items():
        if str(key).lstrip("-").isdigit():
            names[int(key)] = str(value)
        elif isinstance(value, int) and not isinstance(value, bool):
            names[value] = str(key)
        elif isinstance(value, str) and value.lstrip("-").isdigit():
            names[int(value)] = str(key)
    return names


def read_label_names(path: str | Path) -> dict[int, str]:
    """Label value -> name from a ``dataset.json`` (``labels``) or a manifest (``label_names``).

    Returns ``{}`` when the file names no label; an unreadable file is a ``ValueError`` naming it.
    """
    path = Path(path)
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{path}: unreadable label names ({err})") from None
    if not isinstance(meta, dict):
        return {}
    for field in ("label_names", "labels"):
        if isinstance(meta.get(field), Mapping):
            return _names_from(meta[field], f"{path}: {field}")
    return {}


def dataset_label_names(
    root: str | Path, layout: str, labels: Sequence[int] | None
) -> dict[int, str]:
    """The names a dataset gives its labels (``layout`` as found by ``find_cases``), or ``{}``."""
    root = Path(root)
    if layout == "brats":
        return {v: BRATS_LABEL_NAMES[v] for v in labels or () if v in BRATS_LABEL_NAMES}
    meta = root / "dataset.json" if root.is_dir() else root
    if meta.suffix.lower() == ".json" and meta.is_file():
        return read_label_names(meta)
    return {}


def names_beside(folder: str | Path) -> dict[int, str]:
    """Names from a ``dataset.json`` in ``folder`` or its parent (MSD ``labelsTr/..``) or ``{}``.

    An unreadable file gives ``{}``: the columns then keep the label values.
    """
    folder = Path(folder)
    for candidate in (folder / "dataset.json", folder.parent / "dataset.json"):
        if candidate.is_file():
            try:
                return read_label_names(candidate)
            except ValueError:
                return {}
    return {}


def config_label_names(data: DataConfig) -> dict[int, str]:
    """Label value -> name of a run's ``data`` config (``labels``, ``label_names``), or ``{}``."""
    if data.labels is None or data.label_names is None:
        return {}
    return dict(zip(data.labels, data.label_names, strict=True))
