"""Spatial transforms: flips, rotation + scaling, B-spline deformation, crops.

Each maps points of its output grid to points of its input grid in **physical mm** (array order,
offsets from the grid centre), so rotations and deformations are rigid and isotropic in space
on anisotropic voxels. :class:`~volseg.data.transforms.base.Compose` chains the maps and reads
image and label once. Units are given per argument: mm, voxels or degrees.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from volseg.data.transforms.base import Context, SpatialTransform, register_transform
from volseg.data.transforms.bspline import bspline_field, bspline_points
from volseg.data.transforms.grid import regular_points, resample

__all__ = [
    "AffineParams",
    "BSplineParams",
    "CropParams",
    "FlipParams",
    "RandomAffine",
    "RandomBSplineDeformation",
    "RandomCrop",
    "RandomFlip",
    "rotation_matrix",
]


def _per_axis(value: Any, dims: int, name: str) -> tuple[Any, ...]:
    """One value per spatial axis: a scalar, ``dims`` values, or one value repeated."""
    if isinstance(value, (int, float)):
        return (value,) * dims
    values = tuple(value)
    if len(values) == dims:
        return values
    if len(set(values)) == 1:
        return (values[0],) * dims  # (2, 2, 2) on a 2-D sample means (2, 2)
    raise ValueError(f"{name}={values} has {len(values)} values for a {dims}-D sample")


def _points(
    points: torch.Tensor | None, shape: tuple[int, ...], spacing: Sequence[float]
) -> torch.Tensor:
    return regular_points(shape, spacing) if points is None else points


def rotation_matrix(angles: Sequence[float]) -> np.ndarray:
    """Rotation in array order: one angle (radians) in 2-D, three (about axes 0, 1, 2) in 3-D."""
    if len(angles) == 1:
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
class FlipParams:
    """Spatial array axes (0-based) mirrored about the grid centre."""

    axes: tuple[int, ...]


@register_transform("flip")
class RandomFlip(SpatialTransform[FlipParams]):
    """Mirror each axis independently (Myronenko 2018; Adeniji et al.: p = 0.75 per axis).

    Args:
        p: probability **per axis**.
        axes: spatial array axes that may flip; ``None`` means all.
    """

    params_type = FlipParams

    def __init__(self, p: float = 0.75, axes: Sequence[int] | None = None) -> None:
        super().__init__(p)
        self.axes = tuple(int(a) for a in axes) if axes is not None else None

    def get_params(self, rng: np.random.Generator, context: Context) -> FlipParams | None:
        return self.draw(rng, context)  # p is per axis, drawn in draw()

    def draw(self, rng: np.random.Generator, context: Context) -> FlipParams | None:
        axes = self.axes if self.axes is not None else tuple(range(context.dims))
        if any(a >= context.dims for a in axes):
            raise ValueError(f"flip: axes {axes} on a {context.dims}-D sample")
        flipped = tuple(a for a in axes if rng.random() < self.p)
        return FlipParams(flipped) if flipped else None

    def map_points(
        self,
        points: torch.Tensor | None,
        params: FlipParams,
        shape: tuple[int, ...],
        spacing: tuple[float, ...],
    ) -> torch.Tensor:
        sign = torch.ones(len(shape))
        sign[list(params.axes)] = -1.0
        return _points(points, shape, spacing) * sign


@dataclass(frozen=True)
class AffineParams:
    """Row-major ``D x D`` matrix ``M`` in mm, array order: output offset ``o`` reads ``M @ o``."""

    matrix: tuple[float, ...]


@register_transform("affine")
class RandomAffine(SpatialTransform[AffineParams]):
    """Random rotation about each axis and isotropic scaling about the grid centre, in mm.

    On anisotropic voxels the rotation is a rotation in space (as SimpleITK's
    ``Euler3DTransform`` resampling), not of the voxel array.

    Args:
        degrees: largest absolute rotation about each axis, **degrees** (one angle in 2-D, about
            each of the three array axes in 3-D).
        scale: range of the isotropic zoom factor (> 1 enlarges the content).
        p: probability of the transform.
    """

    params_type = AffineParams

    def __init__(
        self, degrees: float = 15.0, scale: Sequence[float] = (0.85, 1.15), p: float = 1.0
    ) -> None:
        super().__init__(p)
        if len(scale) != 2 or min(scale) <= 0:
            raise ValueError(f"affine: scale={scale} must be a (low, high) pair of positives")
        self.degrees = float(degrees)
        self.scale = (float(scale[0]), float(scale[1]))

    def draw(self, rng: np.random.Generator, context: Context) -> AffineParams:
        count = 1 if context.dims == 2 else 3
        angles = np.deg2rad(rng.uniform(-self.degrees, self.degrees, count))
        matrix = rotation_matrix(angles.tolist()) / rng.uniform(*self.scale)
        return AffineParams(tuple(matrix.ravel().tolist()))

    def map_points(
        self,
        points: torch.Tensor | None,
        params: AffineParams,
        shape: tuple[int, ...],
        spacing: tuple[float, ...],
    ) -> torch.Tensor:
        dims = len(shape)
        matrix = torch.tensor(params.matrix, dtype=torch.float32).reshape(dims, dims)
        return _points(points, shape, spacing) @ matrix.T


@dataclass(frozen=True)
class BSplineParams:
    """Control-point displacements ``(D, *[grid + 3])`` in **mm**, component per array axis."""

    control: np.ndarray


@register_transform("bspline")
class RandomBSplineDeformation(SpatialTransform[BSplineParams]):
    """Random dense deformation from a coarse grid of cubic B-spline control points (V-Net).

    Milletari et al. (2016) deform every training volume on the fly with "a 2 x 2 x 2 grid of
    control points and B-spline interpolation", control displacements ~ N(0, 15 voxels); their
    code builds ``sitk.BSplineTransformInitializer(image, [2, 2, 2])``, a mesh of 2 cells and 5
    control points per axis. Here ``grid`` is that mesh size (TorchIO's ``num_control_points`` is
    ``grid + 3``). The mesh spans the output grid (a patch, or the whole volume) from the first to
    the last voxel centre, as ITK's ``BSplineTransform`` over that domain. When another spatial
    transform acts after this one (its map runs first), the dense field is read at the moved
    points by linear interpolation, within a small fraction of a voxel of the exact spline.

    Give the displacement std in one unit: ``sigma_mm`` (isotropic in space) or
    ``sigma_voxels`` (per axis: ``sigma_voxels * spacing`` mm, the V-Net paper's unit). Neither
    means V-Net's 15 voxels.

    Args:
        grid: B-spline mesh cells per axis (control points = grid + 3).
        sigma_mm: std of control displacements in **mm**.
        sigma_voxels: std of control displacements in **voxels** of each axis.
        p: probability of deforming a sample.
    """

    params_type = BSplineParams

    def __init__(
        self,
        grid: int | Sequence[int] = 2,
        sigma_mm: float | None = None,
        sigma_voxels: float | None = None,
        p: float = 1.0,
    ) -> None:
        super().__init__(p)
        if sigma_mm is not None and sigma_voxels is not None:
            raise ValueError("bspline: give sigma_mm or sigma_voxels, not both")
        self.grid = grid
        self.sigma_mm = sigma_mm
        self.sigma_voxels = 15.0 if sigma_mm is None and sigma_voxels is None else sigma_voxels

    def draw(self, rng: np.random.Generator, context: Context) -> BSplineParams:
        dims = context.dims
        grid = _per_axis(self.grid, dims, "grid")
        if min(grid) < 1:
            raise ValueError(f"bspline: grid={grid} needs at least one cell per axis")
        if self.sigma_voxels is not None:
            sigma = np.asarray(context.spacing, dtype=float) * self.sigma_voxels
        else:
            sigma = np.full(dims, float(self.sigma_mm or 0.0))
        control = rng.normal(0.0, 1.0, (dims, *[g + 3 for g in grid]))
        control *= sigma.reshape(dims, *[1] * dims)
        return BSplineParams(control.astype(np.float32))

    def map_points(
        self,
        points: torch.Tensor | None,
        params: BSplineParams,
        shape: tuple[int, ...],
        spacing: tuple[float, ...],
    ) -> torch.Tensor:
        control = torch.from_numpy(params.control)
        if points is None:  # the regular grid: moved points in one pass
            return bspline_points(control, shape, spacing)
        field = bspline_field(control, shape)  # (D, *shape), mm
        # points moved by another transform: read the dense field there (linear, clamped at the
        # border); the cubic field varies over whole mesh cells, so this is close to exact
        half = [(n - 1) / 2 for n in shape]
        values = resample(field, None, points, half, spacing)[0]
        return points + torch.movedim(values, 0, -1)


@dataclass(frozen=True)
class CropParams:
    """The crop's ``size`` (voxels) and its centre as a voxel offset from the input's centre."""

    offset: tuple[float, ...]
    size: tuple[int, ...]


@register_transform("crop")
class RandomCrop(SpatialTransform[CropParams]):
    """A random window of fixed size; where it overhangs the input the image takes its border
    values and the label 0 (Adeniji et al. take 3 random 144x144x128 crops per volume).

    Training patches are cut by :class:`~volseg.data.sampling.PatchDataset` (``patch_size``,
    ``crops_per_volume``), which refuses this transform; it is for whole volumes.

    Args:
        size: crop size in **voxels**, array order (one value: every axis).
        p: probability of the crop (otherwise the volume stays whole).
    """

    params_type = CropParams

    def __init__(self, size: int | Sequence[int] = 64, p: float = 1.0) -> None:
        super().__init__(p)
        self.size = size

    def draw(self, rng: np.random.Generator, context: Context) -> CropParams:
        size = tuple(int(s) for s in _per_axis(self.size, context.dims, "size"))
        start = [
            int(rng.integers(0, n - s + 1)) if n >= s else -((s - n) // 2)
            for n, s in zip(context.shape, size)
        ]
        offset = tuple(a + (s - 1) / 2 - (n - 1) / 2 for a, s, n in zip(start, size, context.shape))
        return CropParams(offset, size)

    def output_shape(self, shape: tuple[int, ...], params: CropParams) -> tuple[int, ...]:
        return params.size

    def map_points(
        self,
        points: torch.Tensor | None,
        params: CropParams,
        shape: tuple[int, ...],
        spacing: tuple[float, ...],
    ) -> torch.Tensor:
        shift = torch.tensor(params.offset, dtype=torch.float32) * torch.tensor(spacing)
        return _points(points, shape, spacing) + shift
