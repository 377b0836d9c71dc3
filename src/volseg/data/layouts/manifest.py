"""``manifest``: a ``.csv`` or ``.json`` file listing the files of each case.

CSV columns: ``case_id`` (optional: the first image's name), ``image`` or ``image_*`` /
``channel_*`` (one per channel, in order; the part after ``_`` names the channel) and ``label``
(optional, may be empty). JSON: a list of ``{"case_id", "images", "label"}`` objects, or
``{"cases": [...], "labels": [...], "channel_names": [...]}``. Relative paths are taken from the
manifest's folder.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

from volseg.data.layouts._files import read_json, relative, sorted_unique
from volseg.data.layouts.base import Case, Dataset, Layout, LayoutError, register_layout
from volseg.io import strip_suffix

__all__ = ["ManifestLayout"]

_IMAGE_COLUMN = re.compile(r"^(image|image_.+|channel_.+)$")
_Parsed = tuple[list[Case], tuple[str, ...], tuple[int, ...] | None]


@register_layout
class ManifestLayout(Layout):
    """A manifest file: recognised by a ``.csv`` or ``.json`` file given as the root, or by a
    folder holding a ``manifest.csv`` or ``manifest.json`` (``volseg check DIR`` must not list
    the folder's images and ignore the manifest that says what the cases are).
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
            if len(found) != 1:
                raise LayoutError(
                    f"{root}: the manifest layout needs a .csv/.json file "
                    "(or a folder with exactly one manifest.csv or manifest.json)"
                )
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
    return [folder / n for n in ("manifest.csv", "manifest.json") if (folder / n).is_file()]


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
        case_id = cells[id_col] if id_col is not None else strip_suffix(images[0])
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
            case_id = strip_suffix(images[0])
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
