"""Tri-planar overlay pictures of a segmentation over its scan.

matplotlib is imported inside :func:`save_overlay_png`, so importing this module is cheap.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from volseg._atomic import atomic_path
from volseg.data.preprocessing import reorient
from volseg.io import Volume

__all__ = ["disagreement_centre", "save_overlay_png"]

_PREDICTION_COLOUR = "#ff3b30"  # red
_REFERENCE_COLOUR = "#30d158"  # green


def _canonical(volume: Volume) -> Volume:
    """A 3-D volume with its axes permuted and flipped to LPS (direction close to identity).

    :func:`volseg.data.preprocessing.reorient` (``sitk.DICOMOrient``): no interpolation, the
    physical content is unchanged, so the display is the same for a scan stored axially,
    sagittally or flipped. 2-D volumes are returned as they are.
    """
    return reorient(volume, "LPS")


def _centre(label: np.ndarray | None, shape: tuple[int, ...]) -> tuple[int, ...]:
    """Voxel index of the centre of mass of ``label > 0``; the volume centre when empty."""
    if label is not None and np.any(label > 0):
        idx = np.argwhere(label > 0).mean(axis=0)
        return tuple(round(float(v)) for v in idx)
    return tuple(s // 2 for s in shape)


def disagreement_centre(pred: np.ndarray, ref: np.ndarray) -> tuple[int, ...] | None:
    """Per axis, the slice index holding the most voxels where ``pred`` and ``ref`` differ.

    Each axis is chosen on its own (the axial slice with the most disagreement, the coronal one,
    the sagittal one); None when the two label maps agree everywhere.
    """
    differ = np.asarray(pred) != np.asarray(ref)
    if not differ.any():
        return None
    axes = range(differ.ndim)
    return tuple(
        int(np.argmax(differ.sum(axis=tuple(a for a in axes if a != axis)))) for axis in axes
    )


def _window(image: np.ndarray) -> tuple[float, float]:
    """A robust grey window: the 1st and 99th percentiles (min/max when they coincide)."""
    finite = image[np.isfinite(image)]
    if finite.size == 0:
        return 0.0, 1.0
    lo, hi = (float(v) for v in np.percentile(finite, [1.0, 99.0]))
    if hi <= lo:
        lo, hi = float(finite.min()), float(finite.max())
    if hi <= lo:
        hi = lo + 1.0
    return lo, hi


def _draw_label(ax: Any, label_slice: np.ndarray, colour: str, fill: bool) -> None:
    """Contour (and optionally a translucent fill) of every class of a 2-D label slice."""
    classes = [int(c) for c in np.unique(label_slice) if c > 0]
    for c in classes:
        region = (label_slice == c).astype(np.float32)
        if fill:
            rgba = np.zeros((*region.shape, 4), dtype=np.float32)
            rgba[..., :3] = _hex_to_rgb(colour)
            rgba[..., 3] = 0.25 * region
            ax.imshow(rgba, interpolation="nearest")
        if region.min() < region.max():
            ax.contour(region, levels=[0.5], colors=[colour], linewidths=1.0)


def _hex_to_rgb(colour: str) -> tuple[float, float, float]:
    value = colour.lstrip("#")
    r, g, b = (int(value[i : i + 2], 16) / 255.0 for i in (0, 2, 4))
    return r, g, b


def _check_grid(image: Volume, other: Volume | None, what: str) -> None:
    if other is not None and not image.same_grid(other):
        raise ValueError(
            f"{other.source}: {what} is not on the image grid ({image.grid_difference(other)})"
        )


def save_overlay_png(
    image: Volume,
    label: Volume | None,
    path: str | Path,
    reference: Volume | None = None,
    title: str = "",
    where: str = "centre",
) -> Path:
    """Save a PNG of three orthogonal slices with the segmentation drawn over the image.

    The slices pass through the centre of mass of ``label`` (or of ``reference`` when the label is
    absent or empty, else the volume centre). The image is grey with a 1-99 percentile window;
    the prediction is filled and outlined in red, the reference outlined in green. Each panel has
    the physical aspect ratio of its axes. 3-D volumes are shown in LPS order whatever their
    stored axis order (axial: anterior up, patient right on the left; coronal and sagittal:
    superior up). 2-D volumes give one panel. ``where="disagreement"`` puts each slice where
    prediction and reference differ most (:func:`disagreement_centre`), when both are given and
    differ.

    Args:
        image: the image; channel 0 is shown.
        label: the prediction (label map, ``C == 1``) on the image grid, or None.
        path: where to write the PNG; written atomically (temporary file, then rename).
        reference: the ground truth on the image grid, or None.
        title: text above the panels.

    Returns:
        The path written.

    Raises:
        ValueError: when a label map is not on the image grid.
    """
    from matplotlib.figure import Figure  # lazy: keeps `import volseg.report` cheap

    _check_grid(image, label, "label")
    _check_grid(image, reference, "reference")
    image = _canonical(image)
    label = None if label is None else _canonical(label)
    reference = None if reference is None else _canonical(reference)
    img = image.array[0].astype(np.float32, copy=False)
    pred = None if label is None else label.array[0]
    ref = None if reference is None else reference.array[0]
    lo, hi = _window(img)
    centre = _centre(pred if pred is not None and np.any(pred > 0) else ref, img.shape)
    if where == "disagreement" and pred is not None and ref is not None:
        centre = disagreement_centre(pred, ref) or centre
    elif where != "centre":
        raise ValueError(f"where: expected 'centre' or 'disagreement', got {where!r}")
    spacing = image.spacing_zyx  # spacing of the array axes

    panels: list[tuple[str, tuple[slice | int, ...], tuple[int, int], bool]]
    if image.ndim == 3:
        k, j, i = centre
        # (name, index, (row axis, column axis), rows run bottom-to-top)
        panels = [
            ("axial", (k, slice(None), slice(None)), (1, 2), False),
            ("coronal", (slice(None), j, slice(None)), (0, 2), True),
            ("sagittal", (slice(None), slice(None), i), (0, 1), True),
        ]
    else:
        panels = [("slice", (slice(None), slice(None)), (0, 1), False)]

    widths = [img.shape[c] * spacing[c] for _, _, (_, c), _ in panels]
    heights = [img.shape[r] * spacing[r] for _, _, (r, _), _ in panels]
    scale = 3.2 / max(heights)
    fig = Figure(
        figsize=(max(sum(widths) * scale + 0.4, 3.0), max(heights) * scale + 0.6),
        dpi=100,
        layout="constrained",
    )
    axes = fig.subplots(1, len(panels), width_ratios=widths, squeeze=False)[0]
    for ax, (name, index, (r, c), upward) in zip(axes, panels, strict=True):
        ax.imshow(img[index], cmap="gray", vmin=lo, vmax=hi, interpolation="nearest")
        if pred is not None:
            _draw_label(ax, pred[index], _PREDICTION_COLOUR, fill=True)
        if ref is not None:
            _draw_label(ax, ref[index], _REFERENCE_COLOUR, fill=False)
        ax.set_aspect(spacing[r] / spacing[c])
        if upward:
            ax.invert_yaxis()
        ax.set_title(name, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    legend = []
    if pred is not None:
        legend.append("prediction: red")
    if ref is not None:
        legend.append("reference: green")
    heading = " | ".join(part for part in (title, ", ".join(legend)) if part)
    if heading:
        fig.suptitle(heading, fontsize=10)

    path = Path(path)
    with atomic_path(path, ".png") as tmp:
        fig.savefig(tmp, format="png")
    return path
