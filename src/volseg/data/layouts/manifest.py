"""``manifest``: a ``.csv`` or ``.json`` file listing the files of each case.

CSV columns: ``case_id`` (optional, see below), ``image`` or ``image_*`` /
``channel_*`` (one per channel, in order; the part after ``_`` names the channel) and ``label``
(optional, may be empty). JSON: a list of ``{"case_id", "images", "label"}`` objects, or
``{"cases": [...], "labels": [...], "channel_names": [...]}``. Relative paths are taken from the
manifest's folder. Without a ``case_id``, a case is named from its image files
(:func:`~volseg.data.layouts.case_id_of`: ``a_0000.nii.gz`` -> ``a``).

A folder is a manifest dataset when it holds one: ``manifest.csv``/``manifest.json``, or any
other ``.csv`` with an image column or ``.json`` list of cases (``cases.csv``); ``dataset.json``
is MSD's, and a CSV such as ``metrics.csv``, BraTS's ``name_mapping.csv`` or a run's
``cases.csv`` (with a ``prediction`` column) is not a manifest.
"""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

from volseg.data.layouts._files import case_id_of, read_json, relative, sorted_unique
from volseg.data.layouts.base import Case, Dataset, Layout, LayoutError, register_layout

__all__ = ["ManifestLayout"]

_IMAGE_COLUMN = re.compile(r"^(image|image_.+|channel_.+)$")
_Parsed = tuple[list[Case], tuple[str, ...], tuple[int, ...] | None]


@register_layout
class ManifestLayout(Layout):
    """A manifest file: recognised by a ``.csv`` or ``.json`` file given as the root, or by a
    folder holding one (``volseg check DIR`` must not list the folder's images and ignore the
    manifest that says what the cases are).
    """

    name = "manifest"
    rank = 20

    def detect(self, path: Path) -> bool:
        if path.is_dir():
            return bool(_manifests_in(path))
        return path.is_file() and path.suffix.lower() in (".csv", ".json")

    def find(self, root: Path) -> Dataset:
        path = root
        if root.is_dir():
            found = _manifests_in(root)
            if not found:
                raise LayoutError(
                    f"{root}: no manifest in this folder (a .csv with an image column, or a "
                    ".json list of cases)"
                )
            if len(found) > 1:
                listed = ", ".join(f.name for f in found)
                raise LayoutError(f"{root}: several manifests ({listed}); give one of them")
            path = found[0]
        suffix = path.suffix.lower()
        if suffix == ".csv":
            cases, names, labels = _read_csv(path)
        elif suffix == ".json":
            cases, names, labels = _read_json(path)
        else:
            raise LayoutError(f"{path}: a manifest must be a .csv or .json file")
        return Dataset(path, self.name, sorted_unique(cases, path), names, labels)


def _manifests_in(folder: Path) -> list[Path]:
    """The manifests directly in ``folder``, sorted by name (``dataset.json`` is MSD's)."""
    found = []
    for f in sorted(folder.iterdir(), key=lambda p: p.name):
        if (
            f.suffix.lower() in (".csv", ".json")
            and f.name != "dataset.json"
            and not f.name.startswith(".")
            and f.is_file()
            and (f.stem == "manifest" or _looks_like_manifest(f))
        ):
            found.append(f)
    return found


def _looks_like_manifest(path: Path) -> bool:
    """A CSV whose header has an image column, or a JSON list of cases (or ``{"cases": [...]}``)."""
    try:
        if path.suffix.lower() == ".csv":
            with path.open(newline="", encoding="utf-8-sig") as handle:
                header = next((r for r in csv.reader(handle) if any(c.strip() for c in r)), [])
            names = [h.strip() for h in header]
            # a run's cases.csv (case, image, prediction, reference) lists predictions, not cases
            return "prediction" not in names and any(_IMAGE_COLUMN.match(h) for h in names)
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, csv.Error, json.JSONDecodeError):
        return False
    if isinstance(data, dict):
        data = data.get("cases")
    return (
        isinstance(data, list)
        and bool(data)
        and isinstance(data[0], dict)
        and ("images" in data[0] or "image" in data[0])
    )


def _read_csv(path: Path) -> _Parsed:
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
        images = tuple(relative(base, cells[i], f"{where}, column {header[i]}") for i in image_cols)
        case_id = cells[id_col] if id_col is not None else case_id_of(images)
        if not case_id:
            raise LayoutError(f"{where}: empty case_id")
        label_text = cells[label_col] if label_col is not None else ""
        label = relative(base, label_text, f"{where}, column label") if label_text else None
        cases.append(Case(case_id, images, label))
    return cases, names, None


def _read_json(path: Path) -> _Parsed:
    """A list of cases, or ``{"cases": [...], "labels": [...], "channel_names": [...]}``."""
    data = read_json(path)
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
        images = tuple(relative(base, v, f"{where}.images") for v in raw_images)
        case_id = entry.get("case_id")
        if case_id is None:
            case_id = case_id_of(images)
        label = entry.get("label")
        cases.append(
            Case(
                str(case_id),
                images,
                None if label is None else relative(base, label, f"{where}.label"),
            )
        )
    if names is None:
        first = min(cases, key=lambda c: c.case_id) if cases else None
        names = tuple(str(c) for c in range(len(first.images) if first else 1))
    return cases, names, labels
