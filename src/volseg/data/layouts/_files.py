"""File-name helpers shared by the layouts (names only: no image is opened)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from volseg.data.layouts.base import Case, LayoutError
from volseg.io import SUPPORTED_SUFFIXES, strip_suffix

_CHANNEL_FILE = re.compile(r"^(?P<case>.+)_(?P<channel>\d{4})$")


def channel_file(name: str) -> tuple[str, int] | None:
    """nnU-Net's ``CASE_XXXX`` (a name without image suffix) -> ``(CASE, XXXX)``, or ``None``."""
    match = _CHANNEL_FILE.match(name)
    return None if match is None else (match["case"], int(match["channel"]))


def strip_channel(name: str) -> str:
    """``CASE_0000`` -> ``CASE`` (nnU-Net's first channel file); any other name unchanged."""
    parsed = channel_file(name)
    return parsed[0] if parsed is not None and parsed[1] == 0 else name


def case_id_of(images: Sequence[str | Path]) -> str:
    """The case id of one case's channel files, named as nnU-Net names it.

    ``hip_008_0000.nii.gz`` -> ``hip_008``; ``(a_0000.nii.gz, a_0001.nii.gz)`` -> ``a``: the
    channel suffix goes when the files are channels 0, 1, ... of one case, in order. Any other
    file keeps its name without the image suffix (``scan_2021.nii.gz`` -> ``scan_2021``).
    """
    names = [strip_suffix(p) for p in images]
    parsed = [channel_file(n) for n in names]
    first = parsed[0]
    if first is not None and parsed == [(first[0], i) for i in range(len(parsed))]:
        return first[0]
    return names[0]


def group_channel_files(files: Sequence[Path]) -> list[tuple[str, tuple[Path, ...]]] | None:
    """Group nnU-Net channel files (``CASE_0000``, ``CASE_0001``, ...) into cases, as nnU-Net does.

    Only when every file is named ``CASE_XXXX`` and the channel numbers found are 0..n-1; each
    case then lists n files (an absent channel file is listed at the path it should have, with
    the suffix of the case's first file). ``None`` when the files are not channel files.
    """
    parsed = [(f, channel_file(strip_suffix(f))) for f in files]
    if not parsed or any(p is None for _, p in parsed):
        return None
    channels = {p[1] for _, p in parsed if p is not None}
    if channels != set(range(len(channels))):
        return None
    suffixes: dict[str, tuple[Path, str]] = {}
    for f, p in parsed:
        if p is not None:
            suffixes.setdefault(p[0], (f.parent, image_suffix(f)))
    return [
        (case, tuple(folder / f"{case}_{c:04d}{suffix}" for c in range(len(channels))))
        for case, (folder, suffix) in sorted(suffixes.items())
    ]


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
