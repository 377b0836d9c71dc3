"""Intensity transforms: shift/scale (Myronenko), gamma, Gaussian noise, smooth bias field.

They change the values of the (already resampled) image, channel by channel; labels are
untouched. Amounts that depend on the data (the std of Myronenko's shift, the range kept by
gamma, the floor of the bias field) come from the *whole case's* statistics
(:class:`~volseg.data.transforms.base.ChannelStats` in the context) and are recorded in the
parameters, so a patch is changed exactly as the same region of the whole volume would be.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from volseg.data.transforms.base import Context, IntensityTransform, register_transform
from volseg.data.transforms.bspline import bspline_field

__all__ = [
    "BiasFieldParams",
    "GammaParams",
    "NoiseParams",
    "RandomBiasField",
    "RandomGamma",
    "RandomIntensityShiftScale",
    "RandomNoise",
    "ShiftScaleParams",
]


def _per_channel(values: Sequence[float], image: torch.Tensor) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float32).view(-1, *[1] * (image.ndim - 1))


@dataclass(frozen=True)
class ShiftScaleParams:
    """Per channel ``x * scale + offset``; ``offset`` is in intensity units (shift x std)."""

    scale: tuple[float, ...]
    offset: tuple[float, ...]


@register_transform("intensity_shift_scale")
class RandomIntensityShiftScale(IntensityTransform[ShiftScaleParams]):
    """Myronenko's (2018) augmentation: ``x * s + d * std`` per channel.

    ``d ~ U(-shift, shift)``, ``s ~ U(1 - scale, 1 + scale)``; ``std`` of the channel over the
    case's non-zero voxels (1 after :mod:`~volseg.data.preprocessing`'s ``zscore_nonzero``).

    Args:
        shift: largest shift, in **channel stds**. scale: largest relative change of scale.
        p: probability of the transform.
    """

    params_type = ShiftScaleParams

    def __init__(self, shift: float = 0.1, scale: float = 0.1, p: float = 1.0) -> None:
        super().__init__(p)
        self.shift, self.scale = float(shift), float(scale)

    def draw(self, rng: np.random.Generator, context: Context) -> ShiftScaleParams:
        stats = context.channel_stats()
        shift = rng.uniform(-self.shift, self.shift, len(stats))
        scale = rng.uniform(1 - self.scale, 1 + self.scale, len(stats))
        offset = [float(d) * s.std for d, s in zip(shift, stats)]
        return ShiftScaleParams(tuple(scale.tolist()), tuple(offset))

    def transform_image(self, image: torch.Tensor, params: ShiftScaleParams) -> torch.Tensor:
        image = image.float()
        return image * _per_channel(params.scale, image) + _per_channel(params.offset, image)


@dataclass(frozen=True)
class GammaParams:
    """``gamma`` and the per-channel range ``[low, high]`` it keeps."""

    gamma: float
    low: tuple[float, ...]
    high: tuple[float, ...]


@register_transform("gamma")
class RandomGamma(IntensityTransform[GammaParams]):
    """Contrast change ``((x - lo) / (hi - lo)) ** gamma * (hi - lo) + lo`` per channel.

    ``lo``/``hi`` are the case's channel minimum and maximum (values below ``lo`` map to ``lo``).

    Args:
        gamma_range: ``gamma`` is log-uniform in this range.
        p: probability of the transform.
    """

    params_type = GammaParams

    def __init__(self, gamma_range: Sequence[float] = (0.7, 1.5), p: float = 1.0) -> None:
        super().__init__(p)
        if len(gamma_range) != 2 or min(gamma_range) <= 0:
            raise ValueError(f"gamma: gamma_range={gamma_range} must be a (low, high) pair > 0")
        self.gamma_range = (float(gamma_range[0]), float(gamma_range[1]))

    def draw(self, rng: np.random.Generator, context: Context) -> GammaParams:
        low, high = np.log(self.gamma_range[0]), np.log(self.gamma_range[1])
        gamma = float(np.exp(rng.uniform(low, high)))
        stats = context.channel_stats()
        return GammaParams(gamma, tuple(s.minimum for s in stats), tuple(s.maximum for s in stats))

    def transform_image(self, image: torch.Tensor, params: GammaParams) -> torch.Tensor:
        image = image.float()
        low = _per_channel(params.low, image)
        span = (_per_channel(params.high, image) - low).clamp_min(1e-12)
        return ((image - low) / span).clamp_min(0) ** params.gamma * span + low


@dataclass(frozen=True)
class NoiseParams:
    """Noise std (intensity units) and the seed of its values."""

    std: float
    seed: int


@register_transform("noise")
class RandomNoise(IntensityTransform[NoiseParams]):
    """Additive Gaussian noise with a std drawn from ``U(0, std)``.

    Args:
        std: largest noise std, intensity units (channel stds after z-scoring).
        p: probability of the transform.
    """

    params_type = NoiseParams

    def __init__(self, std: float = 0.1, p: float = 1.0) -> None:
        super().__init__(p)
        self.std = float(std)

    def draw(self, rng: np.random.Generator, context: Context) -> NoiseParams:
        return NoiseParams(float(rng.uniform(0, self.std)), int(rng.integers(2**31)))

    def transform_image(self, image: torch.Tensor, params: NoiseParams) -> torch.Tensor:
        image = image.float()
        gen = torch.Generator().manual_seed(params.seed)
        return image + params.std * torch.randn(image.shape, generator=gen)


@dataclass(frozen=True)
class BiasFieldParams:
    """Control values ``(*[grid + 3] * D)`` of the log field, and each channel's floor."""

    control: np.ndarray
    low: tuple[float, ...]


@register_transform("bias_field")
class RandomBiasField(IntensityTransform[BiasFieldParams]):
    """Smooth multiplicative field ``(x - lo) * exp(b) + lo`` (MR inhomogeneity).

    ``b`` is a cubic B-spline (:mod:`.bspline`) spanning the output grid, its control values
    uniform in ``(-strength, strength)``; ``lo`` is the case's channel minimum.

    Args:
        strength: largest absolute control value of the log field.
        grid: B-spline mesh cells per axis of the field.
        p: probability of the transform.
    """

    params_type = BiasFieldParams

    def __init__(self, strength: float = 0.3, grid: int = 1, p: float = 1.0) -> None:
        super().__init__(p)
        self.strength, self.grid = float(strength), int(grid)

    def draw(self, rng: np.random.Generator, context: Context) -> BiasFieldParams:
        control = rng.uniform(-self.strength, self.strength, [self.grid + 3] * context.dims)
        low = tuple(s.minimum for s in context.channel_stats())
        return BiasFieldParams(control.astype(np.float32), low)

    def transform_image(self, image: torch.Tensor, params: BiasFieldParams) -> torch.Tensor:
        image = image.float()
        field = bspline_field(torch.from_numpy(params.control)[None], image.shape[1:])
        low = _per_channel(params.low, image)
        return (image - low) * torch.exp(field) + low
