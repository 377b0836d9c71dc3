"""File-name helpers shared by the layouts (names only: no image is opened)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from volseg.data.layouts.base import Case, LayoutError
from volseg.io import SUPPORTED_SUFFIXES, strip_suffix


def is_image(path: Path) -> bool:
    """True for a visible, non-temporary file with a suffix volseg can read."""
    name = path.name
    return not name.startswith(".") and name.lower().endswith(SUPPORTED_SUFFIXES) and path.is_file()


def image_files(folder: Path) -> list[Path]:
    """The readable image files directly inside ``folder``, sorted by name."""
    return sorted((p for p in folder.iterdir() if is_image(p)), key=lambda p: p.name)


def subfolders(folder: Path) -> list[Path]:
    """The visible subfolders of ``folder``, sorted by name."""
    return sorted(
        (p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")),
        key=lambda p: p.name,
    )


def image_suffix(path: Path) -> str:
    """The supported (possibly double) suffix of ``path``, as written; ``''`` if none."""
    if not path.name.lower().endswith(SUPPORTED_SUFFIXES):
        return ""
    return path.name[len(strip_suffix(path)) :]


def sorted_unique(cases: Iterable[Case], where: Path) -> tuple[Case, ...]:
    """Cases sorted by id; a repeated id is a :class:`LayoutError`."""
    by_id: dict[str, Case] = {}
    for case in cases:
        if case.case_id in by_id:
            raise LayoutError(f"{where}: case id {case.case_id!r} appears more than once")
        by_id[case.case_id] = case
    return tuple(by_id[k] for k in sorted(by_id))


def relative(base: Path, value: Any, where: str) -> Path:
    """``value`` as a path, relative paths taken from ``base``."""
    if not isinstance(value, str) or not value.strip():
        raise LayoutError(f"{where}: expected a file path, got {value!r}")
    p = Path(value.strip()).expanduser()
    return p if p.is_absolute() else base / p


def read_json(path: Path) -> Any:
    """The parsed JSON file; a :class:`LayoutError` naming ``path`` if it cannot be read."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise LayoutError(f"{path}: invalid JSON ({err})") from None
    except OSError as err:
        raise LayoutError(f"{path}: cannot read ({err.strerror or err})") from None
