"""Overlapping label regions (BraTS): label maps <-> one channel per region.

Some tasks score *regions* that nest rather than exclusive labels. In BraTS the label map holds
necrotic core 1, oedema 2 and enhancing tumour 4, and the regions judged are

* whole tumour ``WT = {1, 2, 4}``,
* tumour core ``TC = {1, 4}``,
* enhancing tumour ``ET = {4}``.

From BraTS 2023 on the enhancing tumour is label **3** (labels 0, 1, 2, 3): the named set
``brats2023`` (:data:`BRATS2023_REGIONS`) is ``WT = {1, 2, 3}``, ``TC = {1, 3}``, ``ET = {3}``.
The ``brats`` layout reports which convention its files follow in ``Dataset.labels``.

A network for regions ends in one sigmoid channel per region (Myronenko 2018; Adeniji), trained
against the region masks from :func:`labels_to_regions`; its probabilities go back to one label map
with :func:`regions_to_labels`. Regions are data (:class:`Region`), so other nested sets work the
same way. Channel order is the order of the tuple: :data:`BRATS_REGIONS` is ``(WT, TC, ET)``.
Named sets: :func:`region_sets`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
import torch

__all__ = [
    "BRATS2023_REGIONS",
    "BRATS_REGIONS",
    "Region",
    "batch_labels_to_regions",
    "get_regions",
    "labels_to_regions",
    "paint_labels",
    "region_sets",
    "regions_to_labels",
]

ArrayT = TypeVar("ArrayT", np.ndarray, torch.Tensor)


@dataclass(frozen=True)
class Region:
    """A named set of labels scored as one foreground: ``Region("TC", (1, 4))``."""

    name: str
    labels: tuple[int, ...]


BRATS_REGIONS: tuple[Region, ...] = (
    Region("WT", (1, 2, 4)),
    Region("TC", (1, 4)),
    Region("ET", (4,)),
)

# BraTS 2023+ (GLI, MEN, MET, PED, SSA): enhancing tumour is label 3 instead of 4.
BRATS2023_REGIONS: tuple[Region, ...] = (
    Region("WT", (1, 2, 3)),
    Region("TC", (1, 3)),
    Region("ET", (3,)),
)

_NAMED = {"brats": BRATS_REGIONS, "brats2023": BRATS2023_REGIONS}


def region_sets() -> list[str]:
    """The names :func:`get_regions` accepts (``data.regions: brats2023``), sorted."""
    return sorted(_NAMED)


def get_regions(
    regions: str | Sequence[Region] | Sequence[Sequence[int]],
) -> tuple[Region, ...]:
    """The regions of a name (one of :func:`region_sets`), of :class:`Region` objects, or of
    label groups.

    Label groups (``data.regions: [[1, 2], [2]]`` in a config) become regions named ``r0``,
    ``r1``, ... in their order.
    """
    if isinstance(regions, str):
        try:
            return _NAMED[regions.lower()]
        except KeyError:
            known = ", ".join(region_sets())
            raise ValueError(f"unknown region set {regions!r}; known: {known}") from None
    items: tuple[Any, ...] = tuple(regions)
    if items and all(isinstance(r, Region) and r.labels for r in items):
        return items
    if items and all(not isinstance(g, (str, Region)) and len(g) for g in items):
        return tuple(Region(f"r{i}", tuple(int(v) for v in g)) for i, g in enumerate(items))
    raise ValueError(f"regions must be a name, Regions or non-empty label groups, got {items}")


def paint_labels(regions: str | Sequence[Region]) -> tuple[int, ...]:
    """The label each region paints in :func:`regions_to_labels`: its one label in no later region.

    BraTS ``(WT, TC, ET)`` paints ``(2, 1, 4)``; ``brats2023`` paints ``(2, 1, 3)``. Regions must
    be ordered so that each region owns exactly one label that no later region contains (nested
    regions, largest first, or disjoint ones); anything else raises ``ValueError``.
    """
    regs = get_regions(regions)
    painted = []
    for i, region in enumerate(regs):
        later = {lab for r in regs[i + 1 :] for lab in r.labels}
        own = [lab for lab in region.labels if lab not in later]
        if len(own) != 1:
            raise ValueError(
                f"region {region.name} {region.labels} owns labels {own} not in any later region; "
                "regions_to_labels needs exactly one (order nested regions largest first)"
            )
        painted.append(own[0])
    return tuple(painted)


def _isin(label: ArrayT, values: tuple[int, ...]) -> ArrayT:
    if isinstance(label, torch.Tensor):
        return torch.isin(label, torch.tensor(values, device=label.device, dtype=label.dtype))
    return np.isin(label, values)


def labels_to_regions(label: ArrayT, regions: str | Sequence[Region] = "brats") -> ArrayT:
    """Region masks of a label map: ``(1, *S)`` or ``(*S)`` -> boolean ``(R, *S)``.

    Works on numpy arrays and torch tensors (result on the same device). A leading axis of
    length 1 is read as the channel axis and replaced by the R regions.

    Example: BraTS labels ``[0, 1, 2, 4]`` give WT ``[F, T, T, T]``, TC ``[F, T, F, T]``,
    ET ``[F, F, F, T]``.
    """
    regs = get_regions(regions)
    if label.ndim >= 2 and label.shape[0] == 1:
        label = label[0]
    masks = [_isin(label, r.labels) for r in regs]
    if isinstance(label, torch.Tensor):
        return torch.stack(masks, 0)
    return np.stack(masks, 0)


def batch_labels_to_regions(
    labels: torch.Tensor, regions: str | Sequence[Region] = "brats"
) -> torch.Tensor:
    """Batched :func:`labels_to_regions`: ``(B, 1, *S)`` int -> boolean ``(B, R, *S)``."""
    if labels.ndim < 3 or labels.shape[1] != 1:
        raise ValueError(f"labels must be (B, 1, *spatial), got shape {tuple(labels.shape)}")
    regs = get_regions(regions)
    return torch.cat([_isin(labels, r.labels) for r in regs], 1)


def regions_to_labels(
    region_probs: ArrayT, regions: str | Sequence[Region] = "brats", threshold: float = 0.5
) -> ArrayT:
    """One label map from region probabilities: ``(R, *S)`` -> ``(*S)``.

    Each region is thresholded (``p > threshold``) and painted in channel order with the label
    from :func:`paint_labels`, later regions over earlier ones. For BraTS: WT -> 2, then TC -> 1,
    then ET -> 4, i.e. ET is 4, TC without ET is 1, WT without TC is 2, the rest 0. Boolean masks
    (``R`` region masks) work too (``True > 0.5``).

    Returns:
        numpy ``uint8`` (``int32`` if a label exceeds 255) or torch ``int64``, shape ``(*S)``.
    """
    regs = get_regions(regions)
    painted = paint_labels(regs)
    if region_probs.shape[0] != len(regs):
        raise ValueError(
            f"region_probs has {region_probs.shape[0]} channels, expected {len(regs)} "
            f"({', '.join(r.name for r in regs)})"
        )
    if isinstance(region_probs, torch.Tensor):
        out_t = torch.zeros(region_probs.shape[1:], dtype=torch.int64, device=region_probs.device)
        for channel, value in zip(region_probs, painted, strict=True):
            out_t[channel > threshold] = value
        return out_t
    dtype = np.uint8 if max(painted) <= 255 and min(painted) >= 0 else np.int32
    out = np.zeros(region_probs.shape[1:], dtype=dtype)
    for channel, value in zip(region_probs, painted, strict=True):
        out[channel > threshold] = value
    return out
