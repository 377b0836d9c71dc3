"""Tissue contrast: each labelled tissue brightened or darkened on its own, as sequences differ.

Two T1 sequences (or two scanners) do not scale every tissue alike: scalp fat, muscle and bone
marrow can be much brighter against the brain in one than in the other. Global intensity
transforms (gamma, shift/scale, bias) keep the *order* and *ratios* of tissues; a model trained
on one head then reads a brighter scalp or neck as brain. With the label at hand during training
(SynthSeg's idea, Billot et al. 2023, drawn here as gains on the real image rather than new
intensities), each label value gets its own random gain, blended across the tissue borders by
a Gaussian of a few mm so that no step appears at the reference's edge, which a model could
otherwise learn as a cue.

The gain multiplies the distance above the case's channel minimum (where a scanner's 0 lands
after normalisation, as in ``bias_field``), so air stays air.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from volseg.data.transforms.base import Context, LabelIntensityTransform, register_transform

__all__ = ["RandomTissueContrast", "TissueContrastParams", "tissue_gain_map"]


@dataclass(frozen=True)
class TissueContrastParams:
    """A seed for the gains (one per label value, drawn when the label is seen) and each
    channel's floor."""

    seed: int
    low: tuple[float, ...]


def _gain_of(seed: int, value: int, gain: tuple[float, float]) -> float:
    """The gain of label ``value``: log-uniform in ``gain``, the same for every patch of a case."""
    rng = np.random.default_rng([seed, value])
    return float(math.exp(rng.uniform(math.log(gain[0]), math.log(gain[1]))))


def _smooth(volume: torch.Tensor, spacing: Sequence[float], sigma_mm: float) -> torch.Tensor:
    """Separable Gaussian of ``(1, *S)`` with edge padding (``sigma_mm`` 0: unchanged)."""
    out = volume
    for axis, step in enumerate(spacing):
        sigma = sigma_mm / float(step)
        if sigma < 0.1:
            continue
        radius = max(1, math.ceil(3 * sigma))
        x = torch.arange(-radius, radius + 1, dtype=torch.float32)
        kernel = torch.exp(-0.5 * (x / sigma) ** 2)
        kernel = kernel / kernel.sum()
        moved = out.movedim(axis + 1, -1)
        rows = moved.reshape(-1, 1, moved.shape[-1])
        rows = F.conv1d(F.pad(rows, (radius, radius), mode="replicate"), kernel.view(1, 1, -1))
        out = rows.reshape(moved.shape).movedim(-1, axis + 1)
    return out.contiguous()


def tissue_gain_map(
    label: torch.Tensor,
    spacing: Sequence[float],
    seed: int,
    gain: tuple[float, float],
    sigma_mm: float,
) -> torch.Tensor:
    """``(1, *S)`` gain: each label value's gain, blended across borders by a Gaussian.

    The blend is the sum over label values of gain times the smoothed indicator of that value;
    the indicators sum to one, so inside a tissue the gain is exactly its own.
    """
    values = [int(v) for v in torch.unique(label).tolist()]
    gains = torch.tensor([_gain_of(seed, v, gain) for v in values], dtype=torch.float32)
    out = torch.full(label.shape, float(gains[0]), dtype=torch.float32)
    for value, g in zip(values[1:], gains[1:]):
        inside = _smooth((label == value).float(), spacing, sigma_mm)
        out += (g - gains[0]) * inside
    return out


@register_transform("tissue_contrast")
class RandomTissueContrast(LabelIntensityTransform[TissueContrastParams]):
    """Each label value's tissue scaled by its own gain above the channel minimum.

    ``(x - lo) * G + lo`` where ``G`` is :func:`tissue_gain_map` of the sample's label: a gain
    per label value, log-uniform in ``gain``, drawn from one seed per case (a patch and the
    whole volume agree), blended over ``sigma_mm``.

    Args:
        gain: ``(low, high)`` range of each tissue's gain (log-uniform), ``0 < low <= high``.
        sigma_mm: Gaussian blur of the tissue borders in mm (0: a sharp step).
        p: probability of the transform.
    """

    params_type = TissueContrastParams

    def __init__(
        self, gain: Sequence[float] = (0.5, 2.0), sigma_mm: float = 2.0, p: float = 0.5
    ) -> None:
        super().__init__(p)
        if len(gain) != 2 or not 0.0 < float(gain[0]) <= float(gain[1]):
            raise ValueError(f"tissue_contrast: gain={list(gain)} must be 0 < low <= high")
        if float(sigma_mm) < 0:
            raise ValueError(f"tissue_contrast: sigma_mm={sigma_mm} must be >= 0")
        self.gain = (float(gain[0]), float(gain[1]))
        self.sigma_mm = float(sigma_mm)

    def draw(self, rng: np.random.Generator, context: Context) -> TissueContrastParams:
        low = tuple(s.minimum for s in context.channel_stats())
        return TissueContrastParams(int(rng.integers(2**31)), low)

    def transform_labelled(
        self,
        image: torch.Tensor,
        label: torch.Tensor,
        spacing: Sequence[float],
        params: TissueContrastParams,
    ) -> torch.Tensor:
        image = image.float()
        gain = tissue_gain_map(label, spacing, params.seed, self.gain, self.sigma_mm)
        low = torch.tensor(params.low, dtype=torch.float32).view(-1, *[1] * (image.ndim - 1))
        return (image - low) * gain + low

    def __repr__(self) -> str:
        return f"RandomTissueContrast(gain={self.gain}, sigma_mm={self.sigma_mm}, p={self.p})"
