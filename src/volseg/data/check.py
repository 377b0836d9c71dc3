"""Check a dataset before training: every problem found, each naming the offending file.

:func:`check_dataset` reads one case at a time (keeping only the geometry of earlier files) so
that it runs on datasets much larger than memory. It never stops at the first problem: a user
fixing a dataset wants the whole list at once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from volseg._nifti import count_nonfinite
from volseg.data.layouts import Case, Dataset
from volseg.io import Volume, VolumeReadError, read_volume

__all__ = ["Problem", "check_dataset"]

_MAX_SHOWN = 8  # values listed in a message before "..."
_DENSE_RANGE = 1 << 20  # integer label ranges up to this are scanned without sorting
_CHUNK = 1 << 22  # voxels converted at a time by that scan


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a dataset.

    Attributes:
        path: the offending file (or the dataset root when no file applies).
        message: what is wrong with it, in a few words.
    """

    path: Path
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


@dataclass(frozen=True)
class _Reference:
    """The first readable volume of the dataset, for the spatial-dimension check."""

    ndim: int
    path: Path
    case_id: str


def check_dataset(dataset: Dataset) -> list[Problem]:
    """All problems found in ``dataset``, in case order (images before the label).

    Reported: missing or unreadable files, channel files or label maps on a different grid than
    the case's first channel, a channel count that differs from the dataset's, NaN/Inf image
    voxels, non-integer, negative or undeclared label values, empty label maps, and cases whose
    number of spatial dimensions differs from the first case's.
    """
    problems: list[Problem] = []
    reference: _Reference | None = None
    for case in dataset.cases:
        reference = _check_case(case, dataset, reference, problems)
    return problems


def _check_case(
    case: Case, dataset: Dataset, reference: _Reference | None, problems: list[Problem]
) -> _Reference | None:
    """Append the problems of one case; return the (possibly new) dimension reference."""
    expected = len(dataset.channel_names)
    first: tuple[Path, Volume] | None = None  # geometry of the first readable channel file
    channel_counts: list[tuple[Path, int]] = []
    for path in case.images:
        volume = _read(path, problems)
        if volume is None:
            continue
        channel_counts.append((path, volume.channels))
        _check_finite(path, volume, problems)
        if first is None:
            first = (path, _geometry_only(volume))
        else:
            diff = first[1].grid_difference(volume)
            if diff:
                problems.append(
                    Problem(path, f"grid differs from channel file {first[0]} ({diff})")
                )
        del volume

    _check_channel_count(case, dataset, expected, channel_counts, problems)

    case_dims: tuple[Path, int] | None = (first[0], first[1].ndim) if first else None
    if case.label is not None:
        label = _read(case.label, problems)
        if label is not None:
            if case_dims is None:
                case_dims = (case.label, label.ndim)
            _check_label(case.label, label, dataset.labels, first, problems)
            del label

    if case_dims is None:
        return reference
    if reference is None:
        return _Reference(case_dims[1], case_dims[0], case.case_id)
    if case_dims[1] != reference.ndim:
        problems.append(
            Problem(
                case_dims[0],
                f"{case_dims[1]}-D volume, but case {reference.case_id} is "
                f"{reference.ndim}-D ({reference.path})",
            )
        )
    return reference


def _read(path: Path, problems: list[Problem]) -> Volume | None:
    """The volume at ``path``, or ``None`` after recording why it cannot be read."""
    if not path.exists():
        problems.append(Problem(path, "file not found"))
        return None
    try:
        return read_volume(path, finite=False)  # NaN/Inf are reported by _check_finite
    except VolumeReadError as err:
        message = str(err)
        prefix = f"{path}: "
        problems.append(
            Problem(path, message[len(prefix) :] if message.startswith(prefix) else message)
        )
        return None
    except (ValueError, RuntimeError, OSError) as err:  # odd pixel layouts, I/O failures
        problems.append(Problem(path, f"cannot read image ({err})"))
        return None


def _geometry_only(volume: Volume) -> Volume:
    """The grid of ``volume`` around a zero-stride array, so its voxels can be freed."""
    empty = np.broadcast_to(np.uint8(0), (1, *volume.shape))
    return Volume(empty, volume.spacing, volume.origin, volume.direction, volume.source)


def _check_finite(path: Path, volume: Volume, problems: list[Problem]) -> None:
    """NaN or infinite image voxels poison normalisation and the loss.

    NIfTI files are counted from their raw data: SimpleITK reads their NaN/Inf voxels as 0.
    """
    counts = count_nonfinite(path)
    if counts is not None:
        nan, inf = counts
    elif np.issubdtype(volume.array.dtype, np.inexact):
        nan = int(np.count_nonzero(np.isnan(volume.array)))
        inf = int(np.count_nonzero(np.isinf(volume.array)))
    else:
        return
    if nan or inf:
        problems.append(Problem(path, f"image has {nan} NaN and {inf} Inf voxel(s)"))


def _check_channel_count(
    case: Case,
    dataset: Dataset,
    expected: int,
    channel_counts: Sequence[tuple[Path, int]],
    problems: list[Problem],
) -> None:
    """The case must provide exactly as many channels as the dataset declares."""
    names = ", ".join(dataset.channel_names)
    where = case.images[0] if case.images else dataset.root
    if len(channel_counts) == len(case.images):  # every file read: count real channels
        total = sum(count for _, count in channel_counts)
        if total != expected:
            multi = [p for p, count in channel_counts if count != 1]
            problems.append(
                Problem(
                    multi[0] if multi else where,
                    f"case {case.case_id} has {total} channel(s) in {len(case.images)} "
                    f"file(s), but the dataset has {expected} ({names})",
                )
            )
    elif len(case.images) != expected:
        problems.append(
            Problem(
                where,
                f"case {case.case_id} lists {len(case.images)} image file(s), but the dataset "
                f"has {expected} channel(s) ({names})",
            )
        )


def _check_label(
    path: Path,
    label: Volume,
    declared: tuple[int, ...] | None,
    first: tuple[Path, Volume] | None,
    problems: list[Problem],
) -> None:
    """Channels, grid and values of one label map."""
    if label.channels != 1:
        problems.append(Problem(path, f"label map has {label.channels} channels, expected 1"))
    if first is not None:
        diff = first[1].grid_difference(label)
        if diff:
            problems.append(Problem(path, f"grid differs from image {first[0]} ({diff})"))

    values = _unique_values(label.array)
    if np.issubdtype(values.dtype, np.inexact):
        finite = np.isfinite(values)
        if not finite.all():
            problems.append(Problem(path, "label map has NaN/Inf values"))
        values = values[finite]
        fractional = values[values != np.round(values)]
        if fractional.size:
            problems.append(Problem(path, f"non-integer label values {_show(fractional.tolist())}"))
            values = values[values == np.round(values)]
    ints = sorted({int(v) for v in values.tolist()})
    negative = [v for v in ints if v < 0]
    if negative:
        problems.append(Problem(path, f"negative label values {_show(negative)}"))
    if declared is not None:
        undeclared = [v for v in ints if v >= 0 and v not in declared]
        if undeclared:
            problems.append(
                Problem(
                    path,
                    f"label values {_show(undeclared)} not among the declared labels "
                    f"{list(declared)}",
                )
            )
    if ints == [0] and values.size:
        problems.append(Problem(path, "label map is empty (every voxel is 0)"))


def _unique_values(array: np.ndarray) -> np.ndarray:
    """Sorted distinct values; small integer ranges are scanned slice by slice (no sort)."""
    if array.size == 0:
        return np.unique(array)
    if array.dtype == np.bool_:
        array = array.view(np.uint8)
    if np.issubdtype(array.dtype, np.integer):
        low, high = int(array.min()), int(array.max())
        if high - low < _DENSE_RANGE:
            present = np.zeros(high - low + 1, dtype=bool)
            flat = array.reshape(-1)
            for start in range(0, flat.size, _CHUNK):
                present[flat[start : start + _CHUNK].astype(np.int64) - low] = True
            return np.flatnonzero(present).astype(np.int64) + low
    return np.unique(array)


def _show(values: Sequence[float | int]) -> str:
    """A short list of values for a message."""
    shown = [f"{v:g}" if isinstance(v, float) else str(v) for v in values[:_MAX_SHOWN]]
    more = ", ..." if len(values) > _MAX_SHOWN else ""
    return f"[{', '.join(shown)}{more}]"
