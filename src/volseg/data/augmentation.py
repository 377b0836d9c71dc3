"""Random transforms as two parts: seeded ``get_params(rng, ...)`` and a deterministic ``apply``.

The parameters are plain data (recorded, replayable). Spatial augmentation is applied while a
patch is cut out: the patch's voxel grid is mapped through flips, rotation, scaling and a cubic
B-spline displacement into the case's array, and image channels (linear) and labels (nearest)
are read there with one ``grid_sample`` each. Only patch-sized work is done, whatever the case size.

Arrays are ``(C, *spatial)`` tensors in array order (see :mod:`volseg.io`), 2D or 3D.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from volseg.config import AugmentConfig

__all__ = [
    "IntensityParams",
    "RandomIntensity",
    "RandomSpatial",
    "SpatialParams",
    "bspline_basis",
]


def bspline_basis(length: int, mesh: int) -> torch.Tensor:
    """Cubic B-spline weights ``(length, mesh + 3)`` for a field over ``length`` samples.

    The ``mesh`` cells span the samples end to end (as ITK's ``BSplineTransform`` with mesh size
    ``mesh`` and order 3 over the same domain); ``mesh + 3`` control points support them.
    """
    t = torch.linspace(0.0, float(mesh), length, dtype=torch.float64)
    cell = torch.clamp(t.floor().long(), max=mesh - 1)
    u = t - cell
    weights = torch.stack(
        [
            (1 - u) ** 3 / 6,
            (3 * u**3 - 6 * u**2 + 4) / 6,
            (-3 * u**3 + 3 * u**2 + 3 * u + 1) / 6,
            u**3 / 6,
        ],
        dim=1,
    )
    basis = torch.zeros(length, mesh + 3, dtype=torch.float64)
    for k in range(4):
        basis[torch.arange(length), cell + k] = weights[:, k]
    return basis.float()


def _rotation(angles: np.ndarray) -> np.ndarray:
    """Rotation matrix in array order: one angle in 2D, three (about each axis) in 3D."""
    if angles.size == 1:
        c, s = math.cos(angles[0]), math.sin(angles[0])
        return np.array([[c, -s], [s, c]])
    matrix = np.eye(3)
    for axis, angle in enumerate(angles):
        c, s = math.cos(angle), math.sin(angle)
        i, j = [a for a in range(3) if a != axis]
        rot = np.eye(3)
        rot[i, i], rot[i, j], rot[j, i], rot[j, j] = c, -s, s, c
        matrix = rot @ matrix
    return matrix


@dataclass(frozen=True)
class SpatialParams:
    """Where and how one patch is read from a case (voxel units, array order)."""

    center: tuple[float, ...]
    matrix: tuple[float, ...]  # D*D row-major: patch offset -> source offset (rotation/scale/flip)
    displacement: np.ndarray | None  # (D, *[mesh + 3] * D) control-point displacements, voxels


class RandomSpatial:
    """Patch extraction with random flips, rotation, isotropic scaling and B-spline deformation."""

    def __init__(self, config: AugmentConfig, patch_size: tuple[int, ...]) -> None:
        self.config = config
        self.patch_size = tuple(patch_size)
        self._basis = [bspline_basis(n, config.elastic_grid) for n in self.patch_size]

    def get_params(self, rng: np.random.Generator, center: tuple[float, ...]) -> SpatialParams:
        cfg, dims = self.config, len(self.patch_size)
        matrix = np.eye(dims)
        if cfg.affine_p > 0 and rng.random() < cfg.affine_p:
            n_angles = 1 if dims == 2 else 3
            angles = np.deg2rad(rng.uniform(-cfg.rotate_deg, cfg.rotate_deg, n_angles))
            scale = rng.uniform(*cfg.scale_range)
            matrix = _rotation(angles) / scale
        flips = np.ones(dims)
        for axis in cfg.flip_axes:
            if rng.random() < cfg.flip_p:
                flips[axis] = -1.0
        matrix = matrix * flips[None, :]
        displacement = None
        if cfg.elastic_p > 0 and rng.random() < cfg.elastic_p:
            control = (dims, *([cfg.elastic_grid + 3] * dims))
            displacement = rng.normal(0.0, cfg.elastic_sigma, control).astype(np.float32)
        return SpatialParams(
            tuple(float(c) for c in center), tuple(matrix.ravel().tolist()), displacement
        )

    def sampling_grid(self, params: SpatialParams, shape: tuple[int, ...]) -> torch.Tensor:
        """The ``grid_sample`` grid ``(1, *patch, D)`` (x, y, z order, align_corners=True)."""
        dims = len(self.patch_size)
        axes = [torch.arange(n, dtype=torch.float32) - (n - 1) / 2 for n in self.patch_size]
        offsets = torch.stack(torch.meshgrid(*axes, indexing="ij"), dim=-1)  # (*patch, D)
        matrix = torch.tensor(params.matrix, dtype=torch.float32).reshape(dims, dims)
        coords = offsets @ matrix.T + torch.tensor(params.center, dtype=torch.float32)
        if params.displacement is not None:
            field = torch.from_numpy(params.displacement)
            for axis, basis in enumerate(self._basis):  # contract each control axis with B(t)
                field = torch.tensordot(field, basis, dims=([axis + 1], [1]))
                field = torch.movedim(field, -1, axis + 1)
            coords = coords + torch.movedim(field, 0, -1)
        size = torch.tensor([max(n - 1, 1) for n in shape], dtype=torch.float32)
        normalized = 2.0 * coords / size - 1.0
        return normalized.flip(-1).unsqueeze(0)

    def apply(
        self, image: torch.Tensor, label: torch.Tensor | None, params: SpatialParams
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Read the patch from ``image`` ``(C, *shape)`` and ``label`` ``(1, *shape)``."""
        grid = self.sampling_grid(params, tuple(image.shape[1:]))
        out = F.grid_sample(
            image[None].float(), grid, mode="bilinear", padding_mode="border", align_corners=True
        )[0]
        out_label = None
        if label is not None:
            out_label = F.grid_sample(
                label[None].float(), grid, mode="nearest", padding_mode="zeros", align_corners=True
            )[0].to(label.dtype)
        return out, out_label


@dataclass(frozen=True)
class IntensityParams:
    """Per-channel intensity changes of one patch."""

    shift: tuple[float, ...] | None
    scale: tuple[float, ...] | None
    gamma: float | None
    noise_std: float
    noise_seed: int
    bias: np.ndarray | None  # (*[3] * D) log-field control values


class RandomIntensity:
    """Myronenko's shift/scale, gamma, smooth bias field and Gaussian noise (on z-scored data)."""

    def __init__(self, config: AugmentConfig) -> None:
        self.config = config

    def get_params(self, rng: np.random.Generator, channels: int, dims: int) -> IntensityParams:
        cfg = self.config
        shift = scale = None
        if cfg.intensity_p > 0 and rng.random() < cfg.intensity_p:
            shift = tuple(rng.uniform(-cfg.shift, cfg.shift, channels).tolist())
            scale = tuple(rng.uniform(1 - cfg.scale, 1 + cfg.scale, channels).tolist())
        gamma = None
        if cfg.gamma_p > 0 and rng.random() < cfg.gamma_p:
            low, high = cfg.gamma_range
            gamma = float(math.exp(rng.uniform(math.log(low), math.log(high))))
        bias = None
        if cfg.bias_p > 0 and rng.random() < cfg.bias_p:
            bias = rng.uniform(-1.0, 1.0, [3] * dims).astype(np.float32) * cfg.bias_strength
        noise = float(rng.uniform(0, cfg.noise_std)) if cfg.noise_std > 0 else 0.0
        return IntensityParams(shift, scale, gamma, noise, int(rng.integers(2**31)), bias)

    def apply(self, image: torch.Tensor, params: IntensityParams) -> torch.Tensor:
        """Apply to a ``(C, *spatial)`` float patch; returns a new tensor."""
        out = image.clone()
        low = out.amin()
        if params.bias is not None:
            field = torch.from_numpy(params.bias)[None, None]
            mode = "trilinear" if field.ndim == 5 else "bilinear"
            field = F.interpolate(field, size=out.shape[1:], mode=mode, align_corners=True)[0]
            out = (out - low) * torch.exp(field) + low
        if params.gamma is not None:
            high = out.amax()
            span = float(high - low) or 1.0
            out = ((out - low) / span).clamp_min(0) ** params.gamma * span + low
        if params.scale is not None and params.shift is not None:
            scale = torch.tensor(params.scale).view(-1, *[1] * (out.ndim - 1))
            shift = torch.tensor(params.shift).view(-1, *[1] * (out.ndim - 1))
            out = out * scale + shift
        if params.noise_std > 0:
            gen = torch.Generator().manual_seed(params.noise_seed)
            out = out + params.noise_std * torch.randn(out.shape, generator=gen)
        return out
