"""The fingerprint's types and its JSON form (``"format": 1``), read back by ``volseg plan``.

Every type is a frozen dataclass; :meth:`Fingerprint.to_json` writes them as nested JSON
objects whose keys are the field names, and :meth:`Fingerprint.from_json` reads them back to an
equal object. Values that do not exist (the intensity of an empty foreground, the components of
an unlabeled case) are ``null``, never NaN, so the file is strict JSON.

Conventions: shapes and spacings are in **array order** ``(z, y, x)`` (``(y, x)`` in 2-D), the
order of :attr:`volseg.io.Volume.shape` and :attr:`~volseg.io.Volume.spacing_zyx`; spacings and
extents in mm; sizes of labels in mL in 3-D and mm² in 2-D (:attr:`DatasetInfo.size_unit`).
The meaning of every field is in ``docs/fingerprint.md``.
"""

from __future__ import annotations

import dataclasses
import json
import re
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from volseg._atomic import atomic_path

__all__ = [
    "FORMAT",
    "AxisSpread",
    "CaseFingerprint",
    "CaseLabel",
    "ChannelStats",
    "ChannelSummary",
    "DatasetInfo",
    "Fingerprint",
    "Intensity",
    "LabelSummary",
    "Outlier",
    "Spread",
    "Summary",
]

FORMAT = 1
"""The version of the JSON form; a reader refuses any other."""


@dataclass(frozen=True)
class Intensity:
    """Statistics of one channel's voxels inside a region (the foreground, or the image).

    Attributes:
        voxels: number of voxels in the region (0: every other field is ``None``).
        mean, std: mean and population standard deviation (``ddof=0``).
        p0_5, p50, p99_5: the 0.5th, 50th and 99.5th percentiles (linear interpolation,
            ``numpy.percentile``'s default).
    """

    voxels: int
    mean: float | None
    std: float | None
    p0_5: float | None
    p50: float | None
    p99_5: float | None


@dataclass(frozen=True)
class ChannelStats:
    """One channel of one case.

    Attributes:
        name: the channel's name (:attr:`volseg.data.layouts.Dataset.channel_names`).
        min, max: the smallest and largest value in the whole image.
        whole_numbers: every value is a whole number (integer-typed or integer-valued floats).
        region: ``"foreground"`` (labels > 0) for a labeled case, ``"image"`` (every voxel) for
            an unlabeled one: where :attr:`intensity` was measured.
        intensity: the statistics inside :attr:`region`.
    """

    name: str
    min: float
    max: float
    whole_numbers: bool
    region: str
    intensity: Intensity


@dataclass(frozen=True)
class CaseLabel:
    """One class (label value) in one case.

    Attributes:
        label: the label value.
        voxels: voxels holding it (0: absent from this case).
        size: their physical size: voxels x voxel volume, in mL (3-D) or mm² (2-D).
        components: connected components (26-connectivity in 3-D, 8 in 2-D).
    """

    label: int
    voxels: int
    size: float
    components: int


@dataclass(frozen=True)
class CaseFingerprint:
    """Everything measured on one case, from one read of each of its files.

    Attributes:
        case_id: the case's name in its dataset.
        images: the image file(s), one per channel file.
        label_file: the label map, or ``None`` for an unlabeled case.
        shape: voxels per axis, array order.
        spacing: mm per voxel, array order.
        anisotropy: largest spacing / smallest spacing.
        extent_mm: ``shape * spacing``, array order.
        orientation: the code of the direction cosines, e.g. ``RAS`` or ``LPS`` (SimpleITK's
            ``DICOMOrientImageFilter.GetOrientationFromDirectionCosines``: the patient
            direction each of the x, y, z axes points to; ITK's identity is ``LPS``); 2-D: the
            first two letters of the direction embedded in 3-D.
        channels: one entry per channel, in channel order.
        foreground_voxels: voxels with a label > 0 (``None`` when unlabeled).
        foreground_fraction: ``foreground_voxels`` / all voxels (``None`` when unlabeled).
        labels: one entry per class of the dataset, in label order (empty when unlabeled).
    """

    case_id: str
    images: tuple[str, ...]
    label_file: str | None
    shape: tuple[int, ...]
    spacing: tuple[float, ...]
    anisotropy: float
    extent_mm: tuple[float, ...]
    orientation: str
    channels: tuple[ChannelStats, ...]
    foreground_voxels: int | None
    foreground_fraction: float | None
    labels: tuple[CaseLabel, ...]


@dataclass(frozen=True)
class Spread:
    """Median, smallest and largest of one number over cases."""

    median: float
    min: float
    max: float


@dataclass(frozen=True)
class AxisSpread:
    """Median, smallest and largest per axis (array order) over cases."""

    median: tuple[float, ...]
    min: tuple[float, ...]
    max: tuple[float, ...]


@dataclass(frozen=True)
class ChannelSummary:
    """One channel over the dataset.

    Attributes:
        name: the channel's name.
        modality: ``"CT"``, ``"MR"`` or ``"other"``, by the rule in :attr:`modality_reason`
            (:func:`volseg.fingerprint.stats.guess_modality`).
        modality_reason: the rule that decided, in words.
        min, max: smallest and largest value over every image.
        intensity: the region voxels of every case pooled: ``voxels``, ``mean`` and ``std``
            exact over all of them; the percentiles over up to
            :data:`~volseg.fingerprint.stats.SAMPLES_PER_CASE` voxels drawn per case (all of a
            smaller region), as nnU-Net does.
    """

    name: str
    modality: str
    modality_reason: str
    min: float
    max: float
    intensity: Intensity


@dataclass(frozen=True)
class LabelSummary:
    """One class over the labeled cases.

    Attributes:
        label: the label value.
        present_in: labeled cases holding at least one voxel of it.
        present_fraction: ``present_in`` / labeled cases.
        size: its size (mL in 3-D, mm² in 2-D) over the cases holding it (``None``: none do).
        components: its connected components over the cases holding it.
    """

    label: int
    present_in: int
    present_fraction: float
    size: Spread | None
    components: Spread | None


@dataclass(frozen=True)
class Outlier:
    """A case, or a class, worth a look before training.

    Attributes:
        case_id: the case, or ``None`` for a finding about the dataset (a rare class).
        kind: ``"orientation"``, ``"spacing"``, ``"intensity"`` or ``"label"``.
        detail: what is unusual, with the numbers and the rule's threshold.
    """

    case_id: str | None
    kind: str
    detail: str


@dataclass(frozen=True)
class DatasetInfo:
    """What was fingerprinted.

    Attributes:
        root: the dataset's folder or manifest.
        layout: the layout it was read with (:func:`volseg.data.layouts.list_layouts`).
        channel_names: the input channels, in order.
        declared_labels: label values the metadata declares (background 0 included), or
            ``None`` when it declares none.
        dims: spatial dimensions, 2 or 3.
        axes: the axis order of every shape and spacing: ``"zyx"`` or ``"yx"``.
        size_unit: the unit of label sizes: ``"mL"`` (3-D) or ``"mm2"`` (2-D).
        cases: number of cases; labeled: how many have a label map.
    """

    root: str
    layout: str
    channel_names: tuple[str, ...]
    declared_labels: tuple[int, ...] | None
    dims: int
    axes: str
    size_unit: str
    cases: int
    labeled: int


@dataclass(frozen=True)
class Summary:
    """The dataset in numbers, over its cases.

    Attributes:
        shape, spacing, extent_mm: per axis, array order.
        anisotropy: largest / smallest spacing of a case.
        orientations: orientation code -> number of cases, most common first.
        foreground_fraction: over labeled cases (``None``: no labeled case).
        channels: one per channel.
        labels: one per class (label > 0): declared ones and any other found.
    """

    shape: AxisSpread
    spacing: AxisSpread
    extent_mm: AxisSpread
    anisotropy: Spread
    orientations: dict[str, int]
    foreground_fraction: Spread | None
    channels: tuple[ChannelSummary, ...]
    labels: tuple[LabelSummary, ...]


# a JSON list of scalars, written over several lines by json.dumps: put it on one line (newlines
# and indentation only occur between tokens; inside a JSON string they are escaped)
_SCALAR_LIST = re.compile(r"\[[^\[\]{}]*\]")


def _one_line(match: re.Match[str]) -> str:
    return re.sub(r"\n\s*", "", re.sub(r",\n\s*", ", ", match.group(0)))


@dataclass(frozen=True)
class Fingerprint:
    """A dataset's fingerprint: what :func:`~volseg.fingerprint.fingerprint_dataset` measured.

    Attributes:
        format: the version of the JSON form, :data:`FORMAT`.
        volseg_version: the volseg that wrote it.
        dataset: what was fingerprinted.
        summary: the dataset over its cases.
        outliers: cases (and classes) that stand out, by the rules of
            :mod:`volseg.fingerprint.outliers`.
        cases: one per case, sorted by ``case_id``.
    """

    format: int
    volseg_version: str
    dataset: DatasetInfo
    summary: Summary
    outliers: tuple[Outlier, ...]
    cases: tuple[CaseFingerprint, ...]

    def to_json(self) -> str:
        """The fingerprint as indented, strict JSON text (no NaN)."""
        text = json.dumps(dataclasses.asdict(self), indent=1, allow_nan=False)
        return _SCALAR_LIST.sub(_one_line, text) + "\n"

    @classmethod
    def from_json(cls, text: str) -> Fingerprint:
        """Read :meth:`to_json`'s text back.

        Raises:
            ValueError: the text is not JSON, has another ``format``, or lacks a field.
        """
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise ValueError(f"fingerprint: not JSON ({err})") from None
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            found = data.get("format") if isinstance(data, dict) else None
            raise ValueError(
                f"fingerprint: format {found!r}; this volseg reads format {FORMAT} "
                "(write it again with volseg fingerprint)"
            )
        return _build(cls, data, "fingerprint")

    def write(self, path: str | Path) -> Path:
        """Write :meth:`to_json` to ``path`` atomically."""
        path = Path(path)
        with atomic_path(path, ".json") as tmp:
            tmp.write_text(self.to_json(), encoding="utf-8")
        return path

    @classmethod
    def read(cls, path: str | Path) -> Fingerprint:
        """Read a fingerprint file; errors name the file."""
        path = Path(path)
        try:
            return cls.from_json(path.read_text(encoding="utf-8"))
        except ValueError as err:
            raise ValueError(f"{path}: {str(err).removeprefix('fingerprint: ')}") from None


def _build(tp: Any, value: Any, where: str) -> Any:
    """``value`` (parsed JSON) as the type ``tp``: dataclasses, tuples, dicts, ``X | None``."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None:
            return None
        (inner,) = [a for a in typing.get_args(tp) if a is not type(None)]
        return _build(inner, value, where)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ValueError(f"fingerprint: {where}: expected an object")
        hints = typing.get_type_hints(tp)
        kwargs = {}
        for f in dataclasses.fields(tp):
            if f.name not in value:
                raise ValueError(f"fingerprint: {where}: missing key {f.name!r}")
            kwargs[f.name] = _build(hints[f.name], value[f.name], f"{where}.{f.name}")
        return typing.cast(Any, tp)(**kwargs)
    if origin is tuple:
        (inner, _) = typing.get_args(tp)
        return tuple(_build(inner, v, f"{where}[{i}]") for i, v in enumerate(value))
    if origin is dict:
        _, inner = typing.get_args(tp)
        return {str(k): _build(inner, v, f"{where}.{k}") for k, v in value.items()}
    if tp is float:
        return float(value)
    if tp is int or tp is bool or tp is str:
        if not isinstance(value, tp) or (tp is int and isinstance(value, bool)):
            raise ValueError(f"fingerprint: {where}: expected {tp.__name__}, got {value!r}")
        return value
    raise TypeError(f"fingerprint: {where}: unsupported type {tp!r}")  # pragma: no cover
