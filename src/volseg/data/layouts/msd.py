"""``msd``: Medical Segmentation Decathlon and nnU-Net (v1 and v2) datasets.

A folder holding ``dataset.json`` plus, depending on the version:

* MSD v1 / nnU-Net v1: a ``training`` list of ``{"image": ..., "label": ...}``, one 4D file per
  case (MSD) or one ``CASE_XXXX`` file per channel (nnU-Net v1's conversion);
* nnU-Net v2: ``imagesTr/CASE_XXXX<file_ending>`` (``XXXX`` = channel) and
  ``labelsTr/CASE<file_ending>``, or an explicit ``"dataset": {case: {"images", "label"}}``.

Channel names come from ``channel_names`` (v2) or ``modality`` (v1); labels from ``labels`` in
either the v1 (``"1": "tumour"``) or the v2 (``"tumour": 1``, regions ``[1, 2]``) form.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from volseg.data.layouts._files import (
    channel_file,
    image_suffix,
    read_json,
    relative,
    sorted_unique,
)
from volseg.data.layouts.base import Case, Dataset, Layout, LayoutError, register_layout
from volseg.io import strip_suffix

__all__ = ["MSDLayout"]


@register_layout
class MSDLayout(Layout):
    """MSD / nnU-Net: recognised by a ``dataset.json`` in the folder."""

    name = "msd"
    rank = 10

    def detect(self, path: Path) -> bool:
        return path.is_dir() and (path / "dataset.json").is_file()

    def find(self, root: Path) -> Dataset:
        """MSD v1 (``training`` list, ``modality``) or nnU-Net v2 (``channel_names``, files)."""
        if root.is_file():
            raise LayoutError(f"{root}: the msd layout needs a folder holding dataset.json")
        meta_path = root / "dataset.json"
        if not meta_path.is_file():
            raise LayoutError(f"{meta_path}: dataset.json not found (msd layout)")
        meta = read_json(meta_path)
        if not isinstance(meta, dict):
            raise LayoutError(f"{meta_path}: top level must be an object")
        where = str(meta_path)

        channel_names: tuple[str, ...] | None = None
        if "channel_names" in meta:
            channel_names = _indexed_names(meta["channel_names"], f"{where}: channel_names")
        elif "modality" in meta:
            channel_names = _indexed_names(meta["modality"], f"{where}: modality")
        labels = _declared_labels(meta["labels"], where) if "labels" in meta else None
        ending = meta.get("file_ending", ".nii.gz")
        if not isinstance(ending, str) or not ending:
            raise LayoutError(f"{where}: file_ending must be a non-empty string")

        if isinstance(meta.get("dataset"), dict):
            cases = _explicit(root, meta["dataset"], where)
            first = min(cases, key=lambda c: c.case_id) if cases else None
            names = channel_names or tuple(str(c) for c in range(len(first.images) if first else 1))
        elif isinstance(meta.get("training"), list):
            names = channel_names or ("0",)
            cases = _v1(root, meta["training"], len(names), where)
        else:
            cases, names = _v2(root, ending, channel_names)
        return Dataset(root, self.name, sorted_unique(cases, meta_path), names, labels)


def _indexed_names(mapping: Any, where: str) -> tuple[str, ...]:
    """``{"0": "T2", "1": "ADC"}`` -> ``("T2", "ADC")``, ordered by the integer key."""
    if not isinstance(mapping, Mapping):
        raise LayoutError(f"{where}: expected a mapping of channel index to name")
    try:
        items = sorted((int(k), str(v)) for k, v in mapping.items())
    except ValueError:
        raise LayoutError(f"{where}: channel keys must be integers, got {list(mapping)}") from None
    if [i for i, _ in items] != list(range(len(items))):
        raise LayoutError(f"{where}: channel indices must be 0..{len(items) - 1}")
    return tuple(name for _, name in items)


def _declared_labels(mapping: Any, where: str) -> tuple[int, ...]:
    """Label values from an MSD v1 (``"1": "tumour"``) or nnU-Net v2 (``"tumour": 1``) mapping.

    Region-based v2 entries (``"whole": [1, 2, 3]``) contribute their values. Background 0 is
    always included.
    """
    if not isinstance(mapping, Mapping):
        raise LayoutError(f"{where}: 'labels' must be a mapping")
    values = {0}
    for key, value in mapping.items():
        if isinstance(value, int) and not isinstance(value, bool):
            values.add(value)
        elif isinstance(value, list) and all(
            isinstance(v, int) and not isinstance(v, bool) for v in value
        ):
            values.update(value)
        elif isinstance(value, str) and str(key).lstrip("-").isdigit():
            values.add(int(key))
        else:
            raise LayoutError(f"{where}: cannot read label entry {key!r}: {value!r}")
    return tuple(sorted(values))


def _explicit(root: Path, entries: dict[str, Any], where: str) -> list[Case]:
    """nnU-Net v2 ``"dataset": {case: {"images": [...], "label": ...}}``."""
    cases = []
    for case_id, entry in entries.items():
        if not isinstance(entry, dict) or not isinstance(entry.get("images"), list):
            raise LayoutError(f"{where}: dataset entry {case_id!r} needs an 'images' list")
        images = tuple(relative(root, v, f"{where}: {case_id}.images") for v in entry["images"])
        label = entry.get("label")
        cases.append(
            Case(
                str(case_id),
                images,
                None if label is None else relative(root, label, f"{where}: {case_id}.label"),
            )
        )
    return cases


def _v1(root: Path, entries: list[Any], channels: int, where: str) -> list[Case]:
    """MSD v1 ``training`` list; one 4D file per case, or nnU-Net v1 ``_0000`` channel files."""
    cases = []
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict) or "image" not in entry:
            raise LayoutError(f"{where}: training[{i}] needs an 'image' entry")
        listed = relative(root, entry["image"], f"{where}: training[{i}].image")
        case_id = strip_suffix(listed)
        suffix = image_suffix(listed) or ".nii.gz"
        split = tuple(listed.with_name(f"{case_id}_{c:04d}{suffix}") for c in range(channels))
        if listed.exists() or not any(p.exists() for p in split):
            images: tuple[Path, ...] = (listed,)
        else:
            images = split
        label = entry.get("label")
        cases.append(
            Case(
                case_id,
                images,
                None if label is None else relative(root, label, f"{where}: training[{i}].label"),
            )
        )
    return cases


def _v2(
    root: Path, ending: str, channel_names: tuple[str, ...] | None
) -> tuple[list[Case], tuple[str, ...]]:
    """nnU-Net v2: cases from ``imagesTr/CASE_XXXX<ending>`` and ``labelsTr/CASE<ending>``."""
    images_dir, labels_dir = root / "imagesTr", root / "labelsTr"
    if not images_dir.is_dir():
        raise LayoutError(f"{images_dir}: imagesTr folder not found (msd layout)")
    case_ids: set[str] = set()
    max_channel = -1
    for f in _files_ending(images_dir, ending):
        parsed = channel_file(f.name[: -len(ending)])
        if parsed is None:
            raise LayoutError(f"{f}: expected an image named CASE_XXXX{ending} (XXXX = channel)")
        case_ids.add(parsed[0])
        max_channel = max(max_channel, parsed[1])
    has_labels = labels_dir.is_dir()
    if has_labels:
        case_ids.update(f.name[: -len(ending)] for f in _files_ending(labels_dir, ending))
    names = channel_names or tuple(str(c) for c in range(max(max_channel + 1, 1)))
    cases = [
        Case(
            case_id,
            tuple(images_dir / f"{case_id}_{c:04d}{ending}" for c in range(len(names))),
            labels_dir / f"{case_id}{ending}" if has_labels else None,
        )
        for case_id in case_ids
    ]
    return cases, names


def _files_ending(folder: Path, ending: str) -> Iterator[Path]:
    """Visible files in ``folder`` whose name ends with ``ending``, sorted."""
    for f in sorted(folder.iterdir(), key=lambda p: p.name):
        if f.is_file() and not f.name.startswith(".") and f.name.endswith(ending):
            yield f
