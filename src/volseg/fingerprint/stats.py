"""The numbers of a fingerprint: pure functions on arrays, one case at a time, then pooled.

* :func:`case_stats` measures one case (a :class:`~volseg.io.Volume` of images and its label
  map) and draws its intensity sample;
* :func:`summarize` pools the cases into the dataset's :class:`~volseg.fingerprint.schema.Summary`;
* :func:`guess_modality` is the CT / MR rule, :func:`orientation_code` the direction's code.

Everything is deterministic: the sample of a case is drawn with a generator seeded from its
``case_id`` (CRC-32), so a case gives the same numbers in whichever process and order it is
measured.
"""

from __future__ import annotations

import math
import zlib
from collections import Counter
from collections.abc import Sequence

import numpy as np

from volseg.fingerprint.schema import (
    AxisSpread,
    CaseFingerprint,
    CaseLabel,
    ChannelStats,
    ChannelSummary,
    Intensity,
    LabelSummary,
    Spread,
    Summary,
)
from volseg.io import Volume

__all__ = [
    "CT_MIN_RANGE",
    "MR_NAMES",
    "PERCENTILES",
    "SAMPLES_PER_CASE",
    "align_labels",
    "case_stats",
    "guess_modality",
    "intensity",
    "orientation_code",
    "summarize",
]

PERCENTILES = (0.5, 50.0, 99.5)
SAMPLES_PER_CASE = 10_000
"""Region voxels drawn per case and channel for the dataset's pooled percentiles (nnU-Net's
number); a region this small or smaller is taken whole."""
CT_MIN_RANGE = (-3100.0, -900.0)
"""A CT image's minimum lies here: air is -1000 HU, scanners pad with -1024, -2048 or -3024."""
MR_NAMES = frozenset(
    {
        "mr",
        "mri",
        "t1",
        "t1w",
        "t1ce",
        "t1c",
        "t1gd",
        "t1n",
        "t2",
        "t2w",
        "t2f",
        "flair",
        "pd",
        "pdw",
        "dwi",
        "adc",
        "swi",
    }
)
"""Channel names taken to be MR contrasts (lower case)."""


def orientation_code(direction: Sequence[float], dims: int) -> str:
    """The orientation code (e.g. ``RAS``) of row-major direction cosines.

    SimpleITK's ``DICOMOrientImageFilter.GetOrientationFromDirectionCosines``: each letter is
    the patient direction the x, y, z axis points to (ITK's identity direction is ``LPS``). A
    2-D direction is embedded in 3-D (z unchanged) and the first two letters returned.
    """
    import SimpleITK as sitk

    matrix = np.eye(3)
    matrix[:dims, :dims] = np.asarray(direction, dtype=float).reshape(dims, dims)
    code = str(sitk.DICOMOrientImageFilter.GetOrientationFromDirectionCosines(matrix.ravel()))
    return code[:dims]


def intensity(values: np.ndarray) -> Intensity:
    """Voxel count, mean, std (``ddof=0``) and the 0.5/50/99.5th percentiles of ``values``."""
    values = np.asarray(values, dtype=np.float64).ravel()
    if values.size == 0:
        return Intensity(0, None, None, None, None, None)
    p = np.percentile(values, PERCENTILES)
    return Intensity(
        voxels=int(values.size),
        mean=float(values.mean()),
        std=float(values.std()),
        p0_5=float(p[0]),
        p50=float(p[1]),
        p99_5=float(p[2]),
    )


def _round(value: float) -> float:
    """7 significant digits: a float32 header's precision (1.2000000476837158 -> 1.2)."""
    return float(f"{float(value):.7g}")


def _whole_numbers(array: np.ndarray) -> bool:
    if not np.issubdtype(array.dtype, np.floating):
        return True
    finite = array[np.isfinite(array)]
    return bool(np.all(finite == np.round(finite)))


def _sample(values: np.ndarray, case_id: str, channel: int) -> np.ndarray:
    """Up to :data:`SAMPLES_PER_CASE` of ``values``, drawn with a seed from the case's name."""
    if values.size <= SAMPLES_PER_CASE:
        return values.astype(np.float64)
    rng = np.random.default_rng([zlib.crc32(case_id.encode("utf-8")), channel])
    index = np.sort(rng.choice(values.size, SAMPLES_PER_CASE, replace=False))
    return values[index].astype(np.float64)


def _components(mask: np.ndarray) -> int:
    """Connected components of ``mask``: 26-connectivity in 3-D, 8 in 2-D (full connectivity)."""
    from scipy import ndimage

    structure = ndimage.generate_binary_structure(mask.ndim, mask.ndim)
    return int(ndimage.label(mask, structure=structure)[1])


def case_stats(
    case_id: str,
    image: Volume,
    label: Volume | None,
    channel_names: Sequence[str],
    classes: Sequence[int],
    files: tuple[tuple[str, ...], str | None] = ((), None),
) -> tuple[CaseFingerprint, list[np.ndarray]]:
    """Measure one case.

    Args:
        case_id: the case's name (also seeds its intensity sample).
        image: ``(C, *S)`` images; ``label``: ``(1, *S)`` label map on the same grid, or
            ``None`` for an unlabeled case (intensities are then measured over the whole image).
        channel_names: one per channel of ``image``.
        classes: label values (> 0) to report even when absent; others found are added.
        files: the image paths and label path, recorded as given.

    Returns:
        The case's fingerprint (labels in increasing order) and, per channel, its intensity
        sample (float64) for the dataset's pooled percentiles.
    """
    if len(channel_names) != image.channels:
        raise ValueError(
            f"{image.source}: {image.channels} channel(s), the dataset names "
            f"{len(channel_names)} ({', '.join(channel_names)})"
        )
    spacing = tuple(_round(s) for s in image.spacing_zyx)
    voxel_size = math.prod(spacing) / (1000.0 if image.ndim == 3 else 1.0)
    shape = image.shape
    mask: np.ndarray | None = None
    labels: list[CaseLabel] = []
    if label is not None:
        values = np.asarray(label.array[0])
        mask = values > 0
        present = {int(v) for v in np.unique(values) if v > 0}
        for value in sorted(present | {int(c) for c in classes if c > 0}):
            where = values == value
            voxels = int(np.count_nonzero(where))
            components = _components(where) if voxels else 0
            labels.append(CaseLabel(value, voxels, voxels * voxel_size, components))
    channels, samples = [], []
    for c, name in enumerate(channel_names):
        array = np.asarray(image.array[c])
        region = array[mask] if mask is not None else array.ravel()
        channels.append(
            ChannelStats(
                name=str(name),
                min=float(array.min()),
                max=float(array.max()),
                whole_numbers=_whole_numbers(array),
                region="foreground" if mask is not None else "image",
                intensity=intensity(region),
            )
        )
        samples.append(_sample(region, case_id, c))
    foreground = None if mask is None else int(np.count_nonzero(mask))
    fingerprint = CaseFingerprint(
        case_id=case_id,
        images=files[0],
        label_file=files[1],
        shape=shape,
        spacing=spacing,
        anisotropy=max(spacing) / min(spacing),
        extent_mm=tuple(_round(n * s) for n, s in zip(shape, spacing, strict=True)),
        orientation=orientation_code(image.direction, image.ndim),
        channels=tuple(channels),
        foreground_voxels=foreground,
        foreground_fraction=None if foreground is None else foreground / math.prod(shape),
        labels=tuple(labels),
    )
    return fingerprint, samples


def align_labels(cases: Sequence[CaseFingerprint]) -> list[CaseFingerprint]:
    """Give every labeled case the same classes in the same order (an absent one: 0 voxels)."""
    import dataclasses

    values = sorted({lab.label for c in cases for lab in c.labels})
    out = []
    for case in cases:
        if case.foreground_voxels is None:  # unlabeled
            out.append(case)
            continue
        have = {lab.label: lab for lab in case.labels}
        labels = tuple(have.get(v, CaseLabel(v, 0, 0.0, 0)) for v in values)
        out.append(dataclasses.replace(case, labels=labels))
    return out


def guess_modality(name: str, channels: Sequence[ChannelStats]) -> tuple[str, str]:
    """``("CT" | "MR" | "other", reason)`` for one channel over its cases.

    The rule, first match wins:

    1. **CT** when the channel is named ``CT``; or when in every case its values are whole
       numbers and its minimum lies in :data:`CT_MIN_RANGE` (air is -1000 HU; scanners pad
       with -1024, -2048 or -3024): Hounsfield units.
    2. **MR** when the channel's name is an MR contrast (:data:`MR_NAMES`: t1, t2, flair, ...).
       The voxels cannot tell MR from other images without a physical scale (microscopy,
       perfusion maps: non-negative like MR magnitude images), so the name decides.
    3. **other**: neither; the reason says whether any value is negative (e.g. an image
       already normalised). Like MR, to be normalised per case.
    """
    if name.strip().upper() == "CT":
        return "CT", "the channel is named CT"
    low, high = CT_MIN_RANGE
    if channels and all(c.whole_numbers and low <= c.min <= high for c in channels):
        lowest = min(c.min for c in channels)
        return "CT", (
            f"whole numbers with a minimum in [{low:g}, {high:g}] in every case (lowest "
            f"{lowest:g}): air at -1000 HU"
        )
    if name.strip().lower() in MR_NAMES:
        return "MR", f"the channel is named {name!r}, an MR contrast"
    if channels and all(c.min >= 0 for c in channels):
        return "other", "not HU-like, no negative value (MR, microscopy, perfusion maps alike)"
    return "other", "not HU-like, with negative values (already normalised?)"


def _spread(values: Sequence[float]) -> Spread:
    array = np.asarray(values, dtype=np.float64)
    return Spread(float(np.median(array)), float(array.min()), float(array.max()))


def _axis_spread(rows: Sequence[Sequence[float]]) -> AxisSpread:
    array = np.asarray(rows, dtype=np.float64)
    return AxisSpread(
        tuple(float(v) for v in np.median(array, axis=0)),
        tuple(float(v) for v in array.min(axis=0)),
        tuple(float(v) for v in array.max(axis=0)),
    )


def _pooled(channels: Sequence[ChannelStats], samples: Sequence[np.ndarray]) -> Intensity:
    """Exact pooled count, mean and std (Chan et al.'s combination); sampled percentiles."""
    parts = [c.intensity for c in channels if c.intensity.voxels]
    if not parts:
        return Intensity(0, None, None, None, None, None)
    n = np.array([p.voxels for p in parts], dtype=np.float64)
    means = np.array([p.mean for p in parts], dtype=np.float64)
    stds = np.array([p.std for p in parts], dtype=np.float64)
    total = float(n.sum())
    mean = float((n * means).sum() / total)
    m2 = float((n * stds**2).sum() + (n * (means - mean) ** 2).sum())
    p = np.percentile(np.concatenate([s for s in samples if s.size]), PERCENTILES)
    return Intensity(int(total), mean, math.sqrt(m2 / total), float(p[0]), float(p[1]), float(p[2]))


def summarize(cases: Sequence[CaseFingerprint], samples: Sequence[Sequence[np.ndarray]]) -> Summary:
    """Pool the cases (in the given order) into the dataset's summary.

    Args:
        cases: every case, each with the same channels and the same classes (in order).
        samples: per case, per channel, the intensity sample of :func:`case_stats`.

    The pooled intensities are over the labeled cases' foregrounds when there are labeled
    cases (an unlabeled case's whole image is left out of them), else over the whole images.
    """
    orientations = Counter(c.orientation for c in cases)
    labeled = [c for c in cases if c.foreground_fraction is not None]
    # intensities pooled over one kind of region: the foreground when any case has one
    pool = [j for j, c in enumerate(cases) if c.foreground_fraction is not None or not labeled]
    channels = []
    for i, name in enumerate(c.name for c in cases[0].channels):
        per_case = [c.channels[i] for c in cases]
        modality, reason = guess_modality(name, per_case)
        channels.append(
            ChannelSummary(
                name=name,
                modality=modality,
                modality_reason=reason,
                min=min(c.min for c in per_case),
                max=max(c.max for c in per_case),
                intensity=_pooled([per_case[j] for j in pool], [samples[j][i] for j in pool]),
            )
        )
    labels = []
    for i, value in enumerate(lab.label for lab in (labeled[0].labels if labeled else ())):
        present = [c.labels[i] for c in labeled if c.labels[i].voxels]
        labels.append(
            LabelSummary(
                label=value,
                present_in=len(present),
                present_fraction=len(present) / len(labeled),
                size=_spread([p.size for p in present]) if present else None,
                components=_spread([p.components for p in present]) if present else None,
            )
        )
    return Summary(
        shape=_axis_spread([c.shape for c in cases]),
        spacing=_axis_spread([c.spacing for c in cases]),
        extent_mm=_axis_spread([c.extent_mm for c in cases]),
        anisotropy=_spread([c.anisotropy for c in cases]),
        orientations=dict(sorted(orientations.items(), key=lambda kv: (-kv[1], kv[0]))),
        foreground_fraction=(
            _spread([c.foreground_fraction for c in labeled])  # type: ignore[misc]
            if labeled
            else None
        ),
        channels=tuple(channels),
        labels=tuple(labels),
    )
