"""Find the cases of a dataset on disk, whatever its layout.

A *case* is one subject: one image file per channel (in channel order) and an optional label
map. :func:`find_cases` only looks at file names and the dataset's metadata; it never opens an
image, so it is cheap. Files that the layout promises but that are absent are still listed (with
the path they should have) so that :func:`volseg.data.check.check_dataset` can report them.

Supported layouts (see :func:`list_layouts`):

* ``msd``: Medical Segmentation Decathlon / nnU-Net (v1 and v2): ``dataset.json``,
  ``imagesTr/`` and ``labelsTr/``.
* ``manifest``: a ``.csv`` or ``.json`` file listing the files of each case.
* ``brats``: one folder per case holding ``<case>_t1``, ``_t1ce``, ``_t2``, ``_flair`` and
  ``_seg`` files.
* ``promise12``: ``CaseNN.mhd`` and ``CaseNN_segmentation.mhd``.
* ``folder``: every image file of a folder is one single-channel, unlabeled case (prediction).
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from volseg.io import SUPPORTED_SUFFIXES, strip_suffix

__all__ = ["Case", "Dataset", "LayoutError", "find_cases", "list_layouts"]

_LAYOUTS = ("msd", "manifest", "brats", "promise12", "folder")
_BRATS_CHANNELS = ("t1", "t1ce", "t2", "flair")
_BRATS_LABELS = (0, 1, 2, 4)
_PROMISE12_LABELS = (0, 1)
_PROMISE12_CASE = re.compile(r"^Case\d+$")
_NNUNET_CHANNEL = re.compile(r"^(?P<case>.+)_(?P<channel>\d{4})$")
_IMAGE_COLUMN = re.compile(r"^(image|image_.+|channel_.+)$")


class LayoutError(ValueError):
    """A dataset cannot be found or understood; the message names the path and the problem."""


@dataclass(frozen=True)
class Case:
    """One subject.

    Attributes:
        case_id: unique name of the case within its dataset.
        images: one file per channel, in channel order (a path may not exist yet).
        label: the label map, or ``None`` for unlabeled (prediction-only) cases.
    """

    case_id: str
    images: tuple[Path, ...]
    label: Path | None


@dataclass(frozen=True)
class Dataset:
    """The cases found under ``root`` and what the metadata declares about them.

    Attributes:
        root: the folder (or manifest file) the cases were found in.
        layout: the layout name, one of :func:`list_layouts`.
        cases: the cases, sorted by ``case_id``.
        channel_names: one name per input channel, in channel order.
        labels: declared label values including background 0, or ``None`` when unknown.
    """

    root: Path
    layout: str
    cases: tuple[Case, ...]
    channel_names: tuple[str, ...]
    labels: tuple[int, ...] | None


def list_layouts() -> list[str]:
    """The layout names :func:`find_cases` accepts (besides ``auto``)."""
    return list(_LAYOUTS)


def find_cases(root: str | Path, layout: str = "auto") -> Dataset:
    """Find the cases of the dataset at ``root``.

    Args:
        root: a dataset folder, a ``.csv``/``.json`` manifest, or (``folder``) one image file.
        layout: one of :func:`list_layouts`, or ``auto`` to detect it from the files present.

    Raises:
        LayoutError: naming the path when ``root`` is missing, the layout is unknown, the
            metadata is malformed, or no case is found.
    """
    path = Path(root).expanduser()
    if layout != "auto" and layout not in _LAYOUTS:
        raise LayoutError(
            f"{path}: unknown layout {layout!r}; expected auto or one of {', '.join(_LAYOUTS)}"
        )
    if not path.exists():
        raise LayoutError(f"{path}: dataset root not found")
    if layout == "auto":
        layout = _detect_layout(path)
    finders = {
        "msd": _find_msd,
        "manifest": _find_manifest,
        "brats": _find_brats,
        "promise12": _find_promise12,
        "folder": _find_folder,
    }
    dataset = finders[layout](path)
    if not dataset.cases:
        raise LayoutError(f"{path}: no cases found ({layout} layout)")
    return dataset


# -- detection --------------------------------------------------------------------------------


def _detect_layout(path: Path) -> str:
    """The layout of ``path``, judged from file names only."""
    if path.is_file():
        if path.suffix.lower() in (".csv", ".json"):
            return "manifest"
        if _is_image(path):
            return "folder"
        raise LayoutError(
            f"{path}: cannot detect a layout for this file; expected a .csv/.json manifest "
            "or an image"
        )
    if (path / "dataset.json").is_file():
        return "msd"
    if any(_promise12_images(path)):
        return "promise12"
    for sub in _subfolders(path):
        if any(_channel_tag(f) == "flair" for f in _image_files(sub)):
            return "brats"
    return "folder"


# -- helpers ----------------------------------------------------------------------------------


def _is_image(path: Path) -> bool:
    """True for a visible, non-temporary file with a suffix volseg can read."""
    name = path.name
    return not name.startswith(".") and name.lower().endswith(SUPPORTED_SUFFIXES) and path.is_file()


def _image_files(folder: Path) -> list[Path]:
    """The readable image files directly inside ``folder``, sorted by name."""
    return sorted((p for p in folder.iterdir() if _is_image(p)), key=lambda p: p.name)


def _subfolders(folder: Path) -> list[Path]:
    """The visible subfolders of ``folder``, sorted by name."""
    return sorted(
        (p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")),
        key=lambda p: p.name,
    )


def _image_suffix(path: Path) -> str:
    """The supported (possibly double) suffix of ``path``, as written; ``''`` if none."""
    return path.name[len(strip_suffix(path)) :] if _has_suffix(path) else ""


def _has_suffix(path: Path) -> bool:
    return path.name.lower().endswith(SUPPORTED_SUFFIXES)


def _sorted_unique(cases: Iterable[Case], where: Path) -> tuple[Case, ...]:
    """Cases sorted by id; a repeated id is a :class:`LayoutError`."""
    by_id: dict[str, Case] = {}
    for case in cases:
        if case.case_id in by_id:
            raise LayoutError(f"{where}: case id {case.case_id!r} appears more than once")
        by_id[case.case_id] = case
    return tuple(by_id[k] for k in sorted(by_id))


def _relative(base: Path, value: Any, where: str) -> Path:
    """``value`` as a path, relative paths taken from ``base``."""
    if not isinstance(value, str) or not value.strip():
        raise LayoutError(f"{where}: expected a file path, got {value!r}")
    p = Path(value.strip()).expanduser()
    return p if p.is_absolute() else base / p


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise LayoutError(f"{path}: invalid JSON ({err})") from None
    except OSError as err:
        raise LayoutError(f"{path}: cannot read ({err.strerror or err})") from None


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


# -- msd / nnU-Net ----------------------------------------------------------------------------


def _find_msd(root: Path) -> Dataset:
    """MSD v1 (``training`` list, ``modality``) or nnU-Net v2 (``channel_names``, files)."""
    if root.is_file():
        raise LayoutError(f"{root}: the msd layout needs a folder holding dataset.json")
    meta_path = root / "dataset.json"
    if not meta_path.is_file():
        raise LayoutError(f"{meta_path}: dataset.json not found (msd layout)")
    meta = _read_json(meta_path)
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
        cases = _msd_explicit(root, meta["dataset"], where)
        first = min(cases, key=lambda c: c.case_id) if cases else None
        names = channel_names or tuple(str(c) for c in range(len(first.images) if first else 1))
    elif isinstance(meta.get("training"), list):
        names = channel_names or ("0",)
        cases = _msd_v1(root, meta["training"], len(names), where)
    else:
        cases, names = _msd_v2(root, ending, channel_names)
    return Dataset(root, "msd", _sorted_unique(cases, meta_path), names, labels)


def _msd_explicit(root: Path, entries: dict[str, Any], where: str) -> list[Case]:
    """nnU-Net v2 ``"dataset": {case: {"images": [...], "label": ...}}``."""
    cases = []
    for case_id, entry in entries.items():
        if not isinstance(entry, dict) or not isinstance(entry.get("images"), list):
            raise LayoutError(f"{where}: dataset entry {case_id!r} needs an 'images' list")
        images = tuple(_relative(root, v, f"{where}: {case_id}.images") for v in entry["images"])
        label = entry.get("label")
        cases.append(
            Case(
                str(case_id),
                images,
                None if label is None else _relative(root, label, f"{where}: {case_id}.label"),
            )
        )
    return cases


def _msd_v1(root: Path, entries: list[Any], channels: int, where: str) -> list[Case]:
    """MSD v1 ``training`` list; one 4D file per case, or nnU-Net v1 ``_0000`` channel files."""
    cases = []
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict) or "image" not in entry:
            raise LayoutError(f"{where}: training[{i}] needs an 'image' entry")
        listed = _relative(root, entry["image"], f"{where}: training[{i}].image")
        case_id = strip_suffix(listed)
        suffix = _image_suffix(listed) or ".nii.gz"
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
                None if label is None else _relative(root, label, f"{where}: training[{i}].label"),
            )
        )
    return cases


def _msd_v2(
    root: Path, ending: str, channel_names: tuple[str, ...] | None
) -> tuple[list[Case], tuple[str, ...]]:
    """nnU-Net v2: cases from ``imagesTr/CASE_XXXX<ending>`` and ``labelsTr/CASE<ending>``."""
    images_dir, labels_dir = root / "imagesTr", root / "labelsTr"
    if not images_dir.is_dir():
        raise LayoutError(f"{images_dir}: imagesTr folder not found (msd layout)")
    case_ids: set[str] = set()
    max_channel = -1
    for f in _files_ending(images_dir, ending):
        match = _NNUNET_CHANNEL.match(f.name[: -len(ending)])
        if match is None:
            raise LayoutError(f"{f}: expected an image named CASE_XXXX{ending} (XXXX = channel)")
        case_ids.add(match["case"])
        max_channel = max(max_channel, int(match["channel"]))
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


# -- manifest ---------------------------------------------------------------------------------


def _find_manifest(root: Path) -> Dataset:
    """A ``.csv`` or ``.json`` manifest; a folder is searched for ``manifest.csv|json``."""
    path = root
    if root.is_dir():
        found = [root / n for n in ("manifest.csv", "manifest.json") if (root / n).is_file()]
        if len(found) != 1:
            raise LayoutError(
                f"{root}: the manifest layout needs a .csv/.json file "
                "(or a folder with exactly one manifest.csv or manifest.json)"
            )
        path = found[0]
    suffix = path.suffix.lower()
    if suffix == ".csv":
        cases, names, labels = _manifest_csv(path)
    elif suffix == ".json":
        cases, names, labels = _manifest_json(path)
    else:
        raise LayoutError(f"{path}: a manifest must be a .csv or .json file")
    return Dataset(path, "manifest", _sorted_unique(cases, path), names, labels)


def _manifest_csv(path: Path) -> tuple[list[Case], tuple[str, ...], tuple[int, ...] | None]:
    """Columns ``case_id``, ``image`` / ``image_*`` / ``channel_*`` (in order), ``label``."""
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            rows = list(csv.reader(handle))
    except OSError as err:
        raise LayoutError(f"{path}: cannot read ({err.strerror or err})") from None
    rows = [r for r in rows if any(cell.strip() for cell in r)]
    if not rows:
        raise LayoutError(f"{path}: empty manifest")
    header = [h.strip() for h in rows[0]]
    image_cols = [i for i, h in enumerate(header) if _IMAGE_COLUMN.match(h)]
    if not image_cols:
        raise LayoutError(
            f"{path}: no image column; expected 'image' or 'image_*'/'channel_*' in the header"
        )
    id_col = header.index("case_id") if "case_id" in header else None
    label_col = header.index("label") if "label" in header else None
    names = tuple(
        header[i] if header[i] == "image" else header[i].split("_", 1)[1] for i in image_cols
    )
    base = path.parent
    cases = []
    for n, row in enumerate(rows[1:], start=2):
        cells = [c.strip() for c in row] + [""] * (len(header) - len(row))
        where = f"{path}: line {n}"
        images = tuple(
            _relative(base, cells[i], f"{where}, column {header[i]}") for i in image_cols
        )
        case_id = cells[id_col] if id_col is not None else strip_suffix(images[0])
        if not case_id:
            raise LayoutError(f"{where}: empty case_id")
        label_text = cells[label_col] if label_col is not None else ""
        label = _relative(base, label_text, f"{where}, column label") if label_text else None
        cases.append(Case(case_id, images, label))
    return cases, names, None


def _manifest_json(path: Path) -> tuple[list[Case], tuple[str, ...], tuple[int, ...] | None]:
    """A list of cases, or ``{"cases": [...], "labels": [...], "channel_names": [...]}``."""
    data = _read_json(path)
    labels: tuple[int, ...] | None = None
    names: tuple[str, ...] | None = None
    if isinstance(data, dict):
        if not isinstance(data.get("cases"), list):
            raise LayoutError(f"{path}: expected a list of cases or an object with 'cases'")
        if data.get("labels") is not None:
            raw = data["labels"]
            if not isinstance(raw, list) or not all(
                isinstance(v, int) and not isinstance(v, bool) for v in raw
            ):
                raise LayoutError(f"{path}: 'labels' must be a list of integers")
            labels = tuple(sorted({0, *raw}))
        if data.get("channel_names") is not None:
            raw = data["channel_names"]
            if not isinstance(raw, list) or not raw:
                raise LayoutError(f"{path}: 'channel_names' must be a non-empty list")
            names = tuple(str(v) for v in raw)
        entries = data["cases"]
    elif isinstance(data, list):
        entries = data
    else:
        raise LayoutError(f"{path}: expected a list of cases or an object with 'cases'")
    base = path.parent
    cases = []
    for i, entry in enumerate(entries):
        where = f"{path}: cases[{i}]"
        if not isinstance(entry, dict):
            raise LayoutError(f"{where}: expected an object")
        raw_images = entry.get("images", entry.get("image"))
        if isinstance(raw_images, str):
            raw_images = [raw_images]
        if not isinstance(raw_images, list) or not raw_images:
            raise LayoutError(f"{where}: needs a non-empty 'images' list")
        images = tuple(_relative(base, v, f"{where}.images") for v in raw_images)
        case_id = entry.get("case_id")
        if case_id is None:
            case_id = strip_suffix(images[0])
        label = entry.get("label")
        cases.append(
            Case(
                str(case_id),
                images,
                None if label is None else _relative(base, label, f"{where}.label"),
            )
        )
    if names is None:
        first = min(cases, key=lambda c: c.case_id) if cases else None
        names = tuple(str(c) for c in range(len(first.images) if first else 1))
    return cases, names, labels


# -- brats ------------------------------------------------------------------------------------


def _channel_tag(path: Path) -> str:
    """The ``_t1``/``_flair``/``_seg`` tag at the end of a BraTS file name (lower case)."""
    stem = strip_suffix(path)
    return stem.rsplit("_", 1)[-1].lower() if "_" in stem else ""


def _find_brats(root: Path) -> Dataset:
    """One folder per case with ``<case>_t1``, ``_t1ce``, ``_t2``, ``_flair`` and ``_seg``."""
    if root.is_file():
        raise LayoutError(f"{root}: the brats layout needs a folder of case folders")
    wanted = (*_BRATS_CHANNELS, "seg")
    found: list[tuple[Path, dict[str, Path]]] = []
    for folder in _subfolders(root):
        tagged: dict[str, Path] = {}
        for f in _image_files(folder):
            tag = _channel_tag(f)
            if tag in wanted:
                if tag in tagged:
                    raise LayoutError(f"{f}: second _{tag} file in {folder} ({tagged[tag].name})")
                tagged[tag] = f
        if tagged:
            found.append((folder, tagged))
    any_seg = any("seg" in tagged for _, tagged in found)
    cases = []
    for folder, tagged in found:
        case_id = folder.name
        images = tuple(
            tagged.get(tag, folder / f"{case_id}_{tag}.nii.gz") for tag in _BRATS_CHANNELS
        )
        label = tagged.get("seg", folder / f"{case_id}_seg.nii.gz") if any_seg else None
        cases.append(Case(case_id, images, label))
    return Dataset(root, "brats", _sorted_unique(cases, root), _BRATS_CHANNELS, _BRATS_LABELS)


# -- promise12 --------------------------------------------------------------------------------


def _promise12_images(root: Path) -> Iterator[Path]:
    """``CaseNN.mhd`` files in ``root`` and its immediate subfolders (``TrainingData_Part1``)."""
    if not root.is_dir():
        return
    for folder in (root, *_subfolders(root)):
        for f in sorted(folder.glob("*.mhd"), key=lambda p: p.name):
            if _PROMISE12_CASE.match(f.name[: -len(".mhd")]) and f.is_file():
                yield f


def _find_promise12(root: Path) -> Dataset:
    """``CaseNN.mhd`` with ``CaseNN_segmentation.mhd`` next to it (no labels in the test set)."""
    if root.is_file():
        raise LayoutError(f"{root}: the promise12 layout needs a folder")
    images = list(_promise12_images(root))
    segs = [f.with_name(f"{f.name[: -len('.mhd')]}_segmentation.mhd") for f in images]
    any_seg = any(s.is_file() for s in segs)
    cases = [
        Case(f.name[: -len(".mhd")], (f,), s if any_seg else None)
        for f, s in zip(images, segs, strict=True)
    ]
    return Dataset(root, "promise12", _sorted_unique(cases, root), ("T2",), _PROMISE12_LABELS)


# -- folder -----------------------------------------------------------------------------------


def _find_folder(root: Path) -> Dataset:
    """Every image file in ``root`` (or ``root`` itself) is a single-channel unlabeled case."""
    files = [root] if root.is_file() else _image_files(root)
    if root.is_file() and not _is_image(root):
        raise LayoutError(f"{root}: not an image file volseg can read")
    cases = [Case(strip_suffix(f), (f,), None) for f in files]
    return Dataset(root, "folder", _sorted_unique(cases, root), ("image",), None)
