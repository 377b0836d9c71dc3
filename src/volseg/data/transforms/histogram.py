"""V-Net's histogram matching of a training sample to another, randomly chosen, training case.

Milletari et al. (2016) adapt "the intensity distributions of the training volumes used in each
iteration to the ones of other randomly chosen scans". :func:`histogram_table` and
:func:`match_histogram` are ITK's ``HistogramMatchingImageFilter`` (same bins, quantiles and
piecewise-linear map; Nyul et al. 2000) in numpy; :class:`RandomHistogramMatching` applies them
with the tables of whole cases, so a patch is mapped as its case would be.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from volseg.data.transforms.base import Context, IntensityTransform, register_transform

__all__ = [
    "HistogramParams",
    "HistogramTable",
    "RandomHistogramMatching",
    "histogram_table",
    "match_histogram",
]


@dataclass(frozen=True)
class HistogramTable:
    """Landmarks of one channel's intensity distribution, as ITK's histogram matching uses them.

    ``quantiles[0]`` is the threshold (the mean, or the minimum), ``quantiles[1:-1]`` the
    ``points`` quantiles at ``j / (points + 1)`` of the histogram above it, ``quantiles[-1]`` the
    maximum.
    """

    minimum: float
    maximum: float
    quantiles: tuple[float, ...]


def histogram_table(
    values: torch.Tensor | np.ndarray,
    levels: int = 1024,
    points: int = 7,
    threshold_at_mean: bool = True,
) -> HistogramTable:
    """The :class:`HistogramTable` of an intensity array, as ``sitk.HistogramMatchingImageFilter``.

    A ``levels``-bin histogram of the values in ``[threshold, max]`` (first and last bins widened
    to the true min and max), and its quantiles interpolated within bins like ITK's
    ``Histogram::Quantile``.
    """
    data = np.asarray(values, dtype=np.float32).ravel()
    minimum, maximum = float(data.min()), float(data.max())
    threshold = float(np.float32(data.mean(dtype=np.float64))) if threshold_at_mean else minimum
    kept = data[(data >= threshold) & (data <= maximum)].astype(np.float64)
    width = (maximum - threshold) / levels
    if width <= 0:
        return HistogramTable(minimum, maximum, (threshold,) * (points + 1) + (maximum,))
    index = np.clip(np.floor((kept - threshold) / width).astype(np.int64), 0, levels - 1)
    freq = np.bincount(index, minlength=levels).astype(np.float64)
    lower = threshold + width * np.arange(levels)
    upper = lower + width
    lower[0], upper[-1] = minimum, maximum
    total = freq.sum()
    cum = np.cumsum(freq) / total
    cum_before = np.concatenate([[0.0], cum[:-1]])
    out = [threshold]
    for j in range(1, points + 1):
        p = j / (points + 1.0)
        with np.errstate(divide="ignore", invalid="ignore"):
            if p < 0.5:
                hits = np.flatnonzero(cum >= p)
                k = int(hits[0]) if len(hits) else levels - 1
                q = lower[k] + (p - cum_before[k]) / (freq[k] / total) * (upper[k] - lower[k])
            else:
                hits = np.flatnonzero(cum_before <= p)
                k = int(hits[-1]) if len(hits) else 0
                q = upper[k] - (cum[k] - p) / (freq[k] / total) * (upper[k] - lower[k])
        out.append(float(q))
    out.append(maximum)
    return HistogramTable(minimum, maximum, tuple(out))


def match_histogram(
    values: torch.Tensor, source: HistogramTable, reference: HistogramTable
) -> torch.Tensor:
    """Map intensities piecewise linearly from ``source`` landmarks onto ``reference`` ones.

    Below the threshold the map runs linearly from (source min, reference min); at and above the
    source maximum it is the reference maximum (as ITK).
    """
    x = values.detach().cpu().float().numpy()
    out = np.interp(x, source.quantiles, reference.quantiles).astype(np.float32)
    below = x < source.quantiles[0]
    if below.any():
        low_span = source.quantiles[0] - source.minimum
        gradient = (reference.quantiles[0] - reference.minimum) / low_span if low_span else 0.0
        out[below] = reference.minimum + (x[below] - source.minimum) * gradient
    return torch.from_numpy(out)


@dataclass(frozen=True)
class HistogramParams:
    """The reference case (index among the prepared ones) and both cases' tables per channel."""

    reference: int
    source: tuple[HistogramTable, ...]
    target: tuple[HistogramTable, ...]


@register_transform("histogram_matching")
class RandomHistogramMatching(IntensityTransform[HistogramParams]):
    """Match each channel's histogram to that of another training case (V-Net).

    :meth:`prepare` computes the tables of the training cases once (``PatchDataset`` calls it);
    a sample of case ``i`` is matched to a random case ``j != i``. With fewer than two cases the
    transform never fires.

    Warning:
        A volume outside the prepared cases (``context.case`` is ``None``) has its own table
        computed when its parameters are drawn (about 0.1 s for 7 M voxels).

    Args:
        levels: histogram bins (ITK ``NumberOfHistogramLevels``).
        points: matched quantiles (ITK ``NumberOfMatchPoints``).
        threshold_at_mean: ignore values below the mean (background), as ITK's option.
        p: probability of the transform.
    """

    params_type = HistogramParams

    def __init__(
        self, levels: int = 1024, points: int = 7, threshold_at_mean: bool = True, p: float = 1.0
    ) -> None:
        super().__init__(p)
        self.levels, self.points, self.threshold_at_mean = levels, points, threshold_at_mean
        self.tables: list[tuple[HistogramTable, ...]] = []

    def _tables(self, image: torch.Tensor) -> tuple[HistogramTable, ...]:
        return tuple(
            histogram_table(
                channel.float().numpy(), self.levels, self.points, self.threshold_at_mean
            )
            for channel in image
        )

    def prepare(self, images: Sequence[torch.Tensor]) -> None:
        self.tables = [self._tables(image) for image in images]

    def draw(self, rng: np.random.Generator, context: Context) -> HistogramParams | None:
        others = [i for i in range(len(self.tables)) if i != context.case]
        if not others:
            return None
        reference = others[int(rng.integers(len(others)))]
        known = context.case is not None and context.case < len(self.tables)
        source = self.tables[context.case] if known else self._tables(context.image)  # type: ignore[index]
        return HistogramParams(reference, source, self.tables[reference])

    def transform_image(self, image: torch.Tensor, params: HistogramParams) -> torch.Tensor:
        if len(params.target) != image.shape[0]:
            raise ValueError(
                f"histogram_matching: reference has {len(params.target)} channels, "
                f"sample {image.shape[0]}"
            )
        return torch.stack(
            [
                match_histogram(channel, source, target)
                for channel, source, target in zip(image, params.source, params.target)
            ]
        )
