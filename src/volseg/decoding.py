"""From network outputs to label maps: activation, thresholds, regions, largest components.

One implementation for everything that turns outputs into labels, so validation during training
decodes exactly as :class:`volseg.inference.Predictor` does.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Literal

import numpy as np
import torch
from scipy import ndimage

from volseg.regions import Region, paint_labels, regions_to_labels

__all__ = [
    "Activation",
    "decode_label_slabs",
    "decode_labels",
    "keep_largest_component",
    "probabilities",
    "resolve_activation",
]

Activation = Literal["softmax", "sigmoid"]


def resolve_activation(activation: str, regions: Sequence[Region] | None) -> Activation:
    """``auto`` is sigmoid for region outputs (one channel per overlapping region), else softmax."""
    if activation == "auto":
        return "sigmoid" if regions else "softmax"
    if activation not in ("softmax", "sigmoid"):
        raise ValueError(f"activation must be auto, softmax or sigmoid, got {activation!r}")
    return "sigmoid" if activation == "sigmoid" else "softmax"


def probabilities(logits: torch.Tensor, activation: Activation) -> torch.Tensor:
    """Softmax over the channel axis (0) of ``(K, *S)`` logits, or a sigmoid per channel.

    Consumes ``logits``: both are taken in place (the softmax slab by slab along the first
    spatial axis, each voxel's as in ``logits.softmax(0)``), so a full-size volume is not
    doubled.
    """
    if activation == "sigmoid":
        return logits.sigmoid_()
    if logits.ndim < 2:
        return logits.softmax(0)
    rows = _rows(tuple(logits.shape))
    for start in range(0, logits.shape[1], rows):
        part = logits[:, start : start + rows]
        part.copy_(part.softmax(0))
    return logits


def _thresholds(threshold: Sequence[float] | None, count: int, default: float) -> list[float]:
    if threshold is None:
        return [default] * count
    values = list(threshold)
    if len(values) == 1:
        return values * count
    if len(values) != count:
        raise ValueError(f"infer.threshold: {len(values)} values for {count} classes/regions")
    return values


# voxels decoded at a time: bounds the int64 index temporaries of arg-max and lookup
_DECODE_VOXELS = 1 << 22


def _rows(shape: tuple[int, ...]) -> int:
    """Rows of the first spatial axis of ``(K, *S)`` per slab of about ``_DECODE_VOXELS``."""
    return max(1, _DECODE_VOXELS // max(1, math.prod(shape[2:])))


def _label_dtype(labels: Sequence[int], regions: Sequence[Region] | None) -> type[np.integer]:
    values = [*labels, *(paint_labels(regions) if regions else ())]
    top, bottom = max(values, default=0), min(values, default=0)
    return np.int32 if bottom < 0 or top >= 65536 else np.uint16 if top >= 256 else np.uint8


def decode_labels(
    probs: np.ndarray,
    labels: Sequence[int],
    activation: Activation,
    threshold: Sequence[float] | None = None,
    regions: Sequence[Region] | None = None,
) -> np.ndarray:
    """A label map ``(*S)`` of label values from probabilities ``(K, *S)``.

    * softmax, no threshold: ``labels[argmax]``.
    * softmax or sigmoid with thresholds (sigmoid default 0.5): foreground class ``k >= 1`` is a
      candidate where ``p_k > t_k``; the most probable candidate wins; no candidate: background.
    * regions (sigmoid, e.g. BraTS WT/TC/ET): each region thresholded (default 0.5), then painted
      by :func:`volseg.regions.regions_to_labels` (BraTS: labels 2, 1, 4).

    The map is ``uint8`` when every label value it can hold fits (else ``uint16`` or ``int32``);
    it is decoded in slabs along the first axis, so temporaries stay small.
    """
    return decode_label_slabs(
        probs.shape[1:],
        lambda start, stop: probs[:, start:stop],
        labels,
        activation,
        threshold,
        regions,
        rows=_rows(probs.shape),
    )


def decode_label_slabs(
    shape: Sequence[int],
    read: Callable[[int, int], np.ndarray],
    labels: Sequence[int],
    activation: Activation,
    threshold: Sequence[float] | None = None,
    regions: Sequence[Region] | None = None,
    rows: int | None = None,
) -> np.ndarray:
    """:func:`decode_labels` of probabilities that are read a slab at a time.

    ``read(start, stop)`` returns the ``(K, stop - start, *shape[1:])`` probabilities of rows
    ``start:stop`` of the first axis (e.g. restored onto the source grid just then), so the
    whole ``(K, *shape)`` array never exists. ``rows``: rows per slab (default: about
    4 M voxels).
    """
    shape = tuple(int(n) for n in shape)
    out = np.empty(shape, _label_dtype(labels, regions))
    step = rows if rows is not None else _rows((1, *shape))
    for start in range(0, shape[0], step):
        stop = min(start + step, shape[0])
        out[start:stop] = _decode(read(start, stop), labels, activation, threshold, regions)
    return out


def _decode(
    probs: np.ndarray,
    labels: Sequence[int],
    activation: Activation,
    threshold: Sequence[float] | None,
    regions: Sequence[Region] | None,
) -> np.ndarray:
    if regions:
        ts = _thresholds(threshold, len(regions), 0.5)
        masks = np.stack([p > t for p, t in zip(probs, ts)])
        return regions_to_labels(masks, regions)
    if activation == "softmax" and threshold is None:
        return np.asarray(labels)[probs.argmax(0)]
    ts = _thresholds(threshold, len(labels) - 1, 0.5)
    fg = probs[1:]
    scores = np.where(fg > np.asarray(ts, dtype=fg.dtype).reshape(-1, *[1] * (fg.ndim - 1)), fg, -1)
    best = scores.argmax(0)
    index = np.where(scores.max(0) > -1, best + 1, 0)
    return np.asarray(labels)[index]


def keep_largest_component(
    label: np.ndarray, values: Sequence[int], background: int = 0
) -> np.ndarray:
    """Keep only the largest connected component (full connectivity) of each label in ``values``.

    Other components of that label become ``background``. ``label`` is ``(*S)``; a copy is returned.
    """
    out = label.copy()
    structure = ndimage.generate_binary_structure(label.ndim, label.ndim)
    for value in values:
        components, count = ndimage.label(label == value, structure)
        if count > 1:
            sizes = np.bincount(components.ravel())[1:]
            out[(components > 0) & (components != sizes.argmax() + 1)] = background
    return out
