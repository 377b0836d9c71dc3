"""Random transforms as two parts: seeded ``get_params(rng, ...)`` and a deterministic ``apply``.

The parameters are plain data (recorded, replayable). Two ways to use them:

* **Whole-volume transforms on a sample dict** ``{"image": (C, *S), "label": (1, *S)}``
  (:class:`RandomBSplineDeformation`, :class:`RandomHistogramMatching`, :class:`RandomFlip`,
  :class:`RandomCrop`, :class:`RandomAffine`, :class:`RandomIntensityShiftScale`,
  :class:`RandomGamma`, :class:`RandomNoise`, :class:`RandomBiasField`), composed with
  :class:`Compose`, each with its own probability ``p``. Call ``t(sample, rng)``.
* **Patch-level spatial augmentation** (:class:`RandomSpatial`, used by
  :class:`volseg.data.sampling.PatchDataset`): the patch's voxel grid is mapped through flips,
  rotation, scaling and a cubic B-spline displacement into the case's array, and image channels
  (linear) and labels (nearest) are read there with one ``grid_sample`` each. Only patch-sized
  work is done, whatever the case size.

Arrays are ``(C, *spatial)`` tensors in array order (see :mod:`volseg.io`), 2D or 3D. Labels are
always read with nearest-neighbour sampling, so they keep exactly their original values.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from volseg.config import AugmentConfig
from volseg.data.preprocessing import box_overlap

__all__ = [
    "AffineParams",
    "BSplineParams",
    "BiasFieldParams",
    "Compose",
    "CropParams",
    "FlipParams",
    "GammaParams",
    "HistogramParams",
    "HistogramTable",
    "IntensityParams",
    "NoiseParams",
    "RandomAffine",
    "RandomBSplineDeformation",
    "RandomBiasField",
    "RandomCrop",
    "RandomFlip",
    "RandomGamma",
    "RandomHistogramMatching",
    "RandomIntensity",
    "RandomIntensityShiftScale",
    "RandomNoise",
    "RandomSpatial",
    "RandomTransform",
    "ShiftScaleParams",
    "SpatialParams",
    "bspline_basis",
    "bspline_field",
    "crop_or_pad",
    "histogram_table",
    "match_histogram",
    "params_to_dict",
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
            field = bspline_field(torch.from_numpy(params.displacement), self.patch_size)
            coords = coords + torch.movedim(field, 0, -1)
        size = torch.tensor([max(n - 1, 1) for n in shape], dtype=torch.float32)
        normalized = 2.0 * coords / size - 1.0
        return normalized.flip(-1).unsqueeze(0)

    def apply(
        self, image: torch.Tensor, label: torch.Tensor | None, params: SpatialParams
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Read the patch from ``image`` ``(C, *shape)`` and ``label`` ``(1, *shape)``."""
        grid = self.sampling_grid(params, tuple(image.shape[1:]))
        sample: Sample = {"image": image} if label is None else {"image": image, "label": label}
        return _resample(sample, grid)


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


# ---------------------------------------------------------------------------------------------
# Whole-volume transforms on a sample dict {"image": (C, *S), "label": (1, *S)}
# ---------------------------------------------------------------------------------------------

Sample = dict[str, Any]


def _as_tuple(value: int | float | Sequence[Any], dims: int, name: str) -> tuple[Any, ...]:
    """One value per spatial axis: a scalar or a sequence of ``dims`` (or one repeated) values."""
    if isinstance(value, (int, float)):
        return (value,) * dims
    values = tuple(value)
    if len(values) == dims:
        return values
    if len(set(values)) == 1:
        return (values[0],) * dims  # (2, 2, 2) on a 2-D sample means (2, 2)
    raise ValueError(f"{name}={values} has {len(values)} values for a {dims}-D sample")


class RandomTransform:
    """Base class: ``get_params(rng, sample)`` draws (or returns ``None`` to skip), ``apply`` acts.

    Calling the transform does both; the drawn parameters are plain frozen dataclasses, so a
    :class:`Compose` can record them and replay a sample exactly.

    Args:
        p: probability that the transform fires for a sample.
    """

    def __init__(self, p: float = 1.0) -> None:
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"{type(self).__name__}: p={p} is not a probability")
        self.p = p

    def get_params(self, rng: np.random.Generator, sample: Sample) -> Any | None:
        """The parameters for ``sample``, or ``None`` when the transform does not fire."""
        if self.p < 1.0 and rng.random() >= self.p:
            return None
        return self.draw(rng, sample)

    def draw(self, rng: np.random.Generator, sample: Sample) -> Any:
        raise NotImplementedError

    def apply(self, sample: Sample, params: Any) -> Sample:
        raise NotImplementedError

    def __call__(self, sample: Sample, rng: np.random.Generator | None = None) -> Sample:
        rng = rng if rng is not None else np.random.default_rng()
        params = self.get_params(rng, sample)
        return sample if params is None else self.apply(sample, params)


def _spatial(sample: Sample) -> tuple[int, ...]:
    return tuple(int(s) for s in sample["image"].shape[1:])


def _with(sample: Sample, image: torch.Tensor, label: torch.Tensor | None) -> Sample:
    out = dict(sample)
    out["image"] = image
    if label is not None:
        out["label"] = label
    return out


def params_to_dict(params: Any) -> Any:
    """Parameters as JSON-ready plain data (arrays become nested lists)."""
    if dataclasses.is_dataclass(params) and not isinstance(params, type):
        return {f.name: params_to_dict(getattr(params, f.name)) for f in dataclasses.fields(params)}
    if isinstance(params, np.ndarray):
        return params.tolist()
    if isinstance(params, dict):
        return {k: params_to_dict(v) for k, v in params.items()}
    if isinstance(params, (list, tuple)):
        return [params_to_dict(v) for v in params]
    return params


class Compose:
    """Apply transforms in order, each with its own probability; optionally record parameters.

    Args:
        transforms: the transforms, applied first to last.
        record: add ``sample["params"]``, a list of ``(transform name, params)`` for the
            transforms that fired, which :meth:`replay` re-applies exactly.
    """

    def __init__(self, transforms: Sequence[RandomTransform], record: bool = False) -> None:
        self.transforms = list(transforms)
        self.record = record

    def __call__(self, sample: Sample, rng: np.random.Generator | None = None) -> Sample:
        rng = rng if rng is not None else np.random.default_rng()
        log: list[tuple[str, Any]] = []
        for transform in self.transforms:
            params = transform.get_params(rng, sample)
            if params is not None:
                sample = transform.apply(sample, params)
                log.append((type(transform).__name__, params))
        if self.record:
            sample = dict(sample)
            sample["params"] = list(sample.get("params", [])) + log
        return sample

    def replay(self, sample: Sample, log: Sequence[tuple[str, Any]]) -> Sample:
        """Re-apply recorded ``(name, params)`` pairs (from ``sample["params"]``) to ``sample``."""
        by_name = {type(t).__name__: t for t in self.transforms}
        for name, params in log:
            sample = by_name[name].apply(sample, params)
        return sample


# -- spatial ----------------------------------------------------------------------------------


def _identity_plus(field: torch.Tensor) -> torch.Tensor:
    """``grid_sample`` grid ``(1, *S, D)`` for sampling at ``voxel + field`` (array order, voxels).

    Args:
        field: ``(D, *S)`` displacement in voxels, component ``a`` along array axis ``a``.
    """
    dims, shape = field.shape[0], field.shape[1:]
    grid = torch.empty((1, *shape, dims), dtype=torch.float32)
    for axis, n in enumerate(shape):
        step = 2.0 / max(n - 1, 1)
        ramp = torch.arange(n, dtype=torch.float32) * step - 1.0
        view = [1] * dims
        view[axis] = n
        # grid_sample's last axis is (x, y, z): the reverse of array order
        torch.add(ramp.view(view), field[axis], alpha=step, out=grid[0, ..., dims - 1 - axis])
    return grid


def _resample(
    sample: Sample, grid: torch.Tensor, padding: str = "border"
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Read image channels (linear) and label (nearest) at ``grid``; labels pad with 0."""
    image = sample["image"]
    out = F.grid_sample(
        image[None].float(), grid, mode="bilinear", padding_mode=padding, align_corners=True
    )[0]
    label = sample.get("label")
    out_label = None
    if label is not None:
        out_label = F.grid_sample(
            label[None].float(), grid, mode="nearest", padding_mode="zeros", align_corners=True
        )[0].to(label.dtype)
    return out, out_label


def bspline_field(control: torch.Tensor, shape: Sequence[int]) -> torch.Tensor:
    """Dense displacement ``(D, *shape)`` from control-point values ``(D, *[g + 3 per axis])``.

    The field is the tensor product of cubic B-splines (ITK ``BSplineTransform`` of order 3 whose
    mesh of ``g`` cells spans the first to the last voxel centre), evaluated one axis at a time:
    a few small matrix products, then one of the output's size.
    """
    dims = len(shape)
    bases = [bspline_basis(int(n), int(c) - 3) for n, c in zip(shape, control.shape[1:])]
    field = control.float()
    for axis in reversed(
        range(1, dims)
    ):  # the small contractions first: (D, ..., c) -> (D, ..., n)
        field = torch.movedim(
            torch.tensordot(field, bases[axis], dims=([axis + 1], [1])), -1, axis + 1
        )
    # the one full-size product, written contiguously: (n0, c0) @ (D, c0, rest)
    rest = field.shape[2:]
    out = torch.matmul(bases[0], field.reshape(field.shape[0], field.shape[1], -1))
    return out.reshape(field.shape[0], int(shape[0]), *rest)


@dataclass(frozen=True)
class BSplineParams:
    """Control-point displacements ``(D, *[grid + 3])`` in voxels, component per array axis."""

    control: np.ndarray


class RandomBSplineDeformation(RandomTransform):
    """Random dense deformation from a coarse grid of cubic B-spline control points (V-Net).

    Milletari et al. (2016) deform every training volume on the fly with "a 2 x 2 x 2 grid of
    control points and B-spline interpolation", control displacements ~ N(0, 15 voxels); their
    code builds ``sitk.BSplineTransformInitializer(image, [2, 2, 2])``, i.e. a mesh of 2 cells
    and 5 control points per axis. Here ``grid`` is that mesh size (TorchIO's
    ``num_control_points`` is ``grid + 3``). The field is built separably and applied with one
    ``grid_sample`` for the image (linear) and one for the label (nearest, so label values are
    never mixed).

    Args:
        grid: B-spline mesh cells per axis (control points = grid + 3).
        sigma: standard deviation of the control-point displacements.
        units: ``voxel`` or ``mm`` (``mm`` needs ``spacing``).
        spacing: voxel size in array order, for ``units="mm"``.
        p: probability of deforming a sample.
    """

    def __init__(
        self,
        grid: int | Sequence[int] = (2, 2, 2),
        sigma: float = 15.0,
        units: str = "voxel",
        spacing: Sequence[float] | None = None,
        p: float = 1.0,
    ) -> None:
        super().__init__(p)
        if units not in ("voxel", "mm"):
            raise ValueError(f"RandomBSplineDeformation: units={units!r}; use 'voxel' or 'mm'")
        if units == "mm" and spacing is None:
            raise ValueError("RandomBSplineDeformation: units='mm' needs the voxel spacing")
        self.grid = grid
        self.sigma = sigma
        self.units = units
        self.spacing = tuple(spacing) if spacing is not None else None

    def draw(self, rng: np.random.Generator, sample: Sample) -> BSplineParams:
        dims = len(_spatial(sample))
        grid = _as_tuple(self.grid, dims, "grid")
        control = rng.normal(0.0, self.sigma, (dims, *[g + 3 for g in grid]))
        if self.units == "mm":
            spacing = np.asarray(_as_tuple(self.spacing or 1.0, dims, "spacing"), dtype=float)
            control /= spacing.reshape(dims, *[1] * dims)
        return BSplineParams(control.astype(np.float32))

    def apply(self, sample: Sample, params: BSplineParams) -> Sample:
        field = bspline_field(torch.from_numpy(params.control), _spatial(sample))
        return _with(sample, *_resample(sample, _identity_plus(field)))


@dataclass(frozen=True)
class AffineParams:
    """Array-order matrix ``M``: output offset from the centre ``o`` reads input ``M @ o``."""

    matrix: tuple[float, ...]


class RandomAffine(RandomTransform):
    """Random rotation about each axis and isotropic scaling about the volume centre.

    Args:
        degrees: largest absolute rotation about each axis (one angle in 2-D).
        scale: range of the isotropic zoom factor (> 1 enlarges the content).
        spacing: voxel size in array order: rotate in mm, not in voxels, on anisotropic grids.
        p: probability of the transform.
    """

    def __init__(
        self,
        degrees: float = 15.0,
        scale: tuple[float, float] = (0.85, 1.15),
        spacing: Sequence[float] | None = None,
        p: float = 1.0,
    ) -> None:
        super().__init__(p)
        self.degrees, self.scale, self.spacing = degrees, scale, spacing

    def draw(self, rng: np.random.Generator, sample: Sample) -> AffineParams:
        dims = len(_spatial(sample))
        angles = np.deg2rad(rng.uniform(-self.degrees, self.degrees, 1 if dims == 2 else 3))
        matrix = _rotation(angles) / rng.uniform(*self.scale)
        if self.spacing is not None:
            sp = np.asarray(_as_tuple(self.spacing, dims, "spacing"), dtype=float)
            matrix = np.diag(1.0 / sp) @ matrix @ np.diag(sp)
        return AffineParams(tuple(matrix.ravel().tolist()))

    def apply(self, sample: Sample, params: AffineParams) -> Sample:
        shape = _spatial(sample)
        dims = len(shape)
        axes = [torch.arange(n, dtype=torch.float32) - (n - 1) / 2 for n in shape]
        offsets = torch.stack(torch.meshgrid(*axes, indexing="ij"), dim=0)  # (D, *S)
        matrix = torch.tensor(params.matrix, dtype=torch.float32).reshape(dims, dims)
        moved = torch.einsum("ij,j...->i...", matrix, offsets)
        return _with(sample, *_resample(sample, _identity_plus(moved - offsets)))


@dataclass(frozen=True)
class FlipParams:
    """Array axes (spatial, 0-based) to mirror."""

    axes: tuple[int, ...]


class RandomFlip(RandomTransform):
    """Mirror each axis independently with probability ``p`` (Myronenko 2018; Adeniji: 0.75).

    Args:
        p: probability per axis.
        axes: spatial axes that may flip (array order); ``None`` means all.
    """

    def __init__(self, p: float = 0.75, axes: Sequence[int] | None = None) -> None:
        super().__init__(1.0)
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"RandomFlip: p={p} is not a probability")
        self.axis_p = p
        self.axes = tuple(axes) if axes is not None else None

    def draw(self, rng: np.random.Generator, sample: Sample) -> FlipParams:
        axes = self.axes if self.axes is not None else tuple(range(len(_spatial(sample))))
        return FlipParams(tuple(a for a in axes if rng.random() < self.axis_p))

    def apply(self, sample: Sample, params: FlipParams) -> Sample:
        if not params.axes:
            return sample
        dims = [a + 1 for a in params.axes]
        label = sample.get("label")
        return _with(
            sample, sample["image"].flip(dims), None if label is None else label.flip(dims)
        )


@dataclass(frozen=True)
class CropParams:
    """Start of the crop per axis (array order); negative or overhanging parts are zero-padded."""

    start: tuple[int, ...]
    size: tuple[int, ...]


class RandomCrop(RandomTransform):
    """A random crop of a fixed size (zero-padded where the volume is smaller).

    Adeniji et al. take 3 random 144x144x128 crops per volume: :meth:`crops` returns ``n``.

    Args:
        size: crop size in array order.
        foreground_ratio: probability of centring the crop on a random label > 0 voxel.
    """

    def __init__(self, size: Sequence[int], foreground_ratio: float = 0.0) -> None:
        super().__init__(1.0)
        self.size = tuple(int(s) for s in size)
        self.foreground_ratio = foreground_ratio

    def draw(self, rng: np.random.Generator, sample: Sample) -> CropParams:
        shape = _spatial(sample)
        size = _as_tuple(self.size, len(shape), "size")
        label = sample.get("label")
        if label is not None and self.foreground_ratio > 0 and rng.random() < self.foreground_ratio:
            points = torch.nonzero(label[0] > 0)
            if len(points):
                point = points[int(rng.integers(len(points)))].tolist()
                start = tuple(int(c) - s // 2 for c, s in zip(point, size))
                return CropParams(start, size)
        start = tuple(
            int(rng.integers(0, n - s + 1)) if n >= s else -((s - n) // 2)
            for n, s in zip(shape, size)
        )
        return CropParams(start, size)

    def apply(self, sample: Sample, params: CropParams) -> Sample:
        label = sample.get("label")
        return _with(
            sample,
            crop_or_pad(sample["image"], params.start, params.size),
            None if label is None else crop_or_pad(label, params.start, params.size),
        )

    def crops(self, sample: Sample, n: int, rng: np.random.Generator) -> list[Sample]:
        """``n`` independent random crops of one sample."""
        return [self.apply(sample, self.draw(rng, sample)) for _ in range(n)]


def crop_or_pad(
    array: torch.Tensor, start: Sequence[int], size: Sequence[int], fill: float = 0.0
) -> torch.Tensor:
    """The window ``[start, start + size)`` of ``(C, *S)``; parts outside are ``fill``."""
    out = torch.full((array.shape[0], *size), fill, dtype=array.dtype)
    stop = [a + s for a, s in zip(start, size)]
    overlap = box_overlap(start, stop, array.shape[1:])
    if overlap is not None:
        out[overlap[1]] = array[overlap[0]]
    return out


# -- intensity --------------------------------------------------------------------------------


@dataclass(frozen=True)
class ShiftScaleParams:
    """Per-channel shift (in units of the channel's std) and scale."""

    shift: tuple[float, ...]
    scale: tuple[float, ...]


class RandomIntensityShiftScale(RandomTransform):
    """Myronenko's (2018) augmentation: ``x * s + d * std(x)`` per channel.

    ``d ~ U(-shift, shift)``, ``s ~ U(1 - scale, 1 + scale)``; ``std`` over the channel's
    non-zero voxels (1 after :mod:`~volseg.data.preprocessing`'s ``zscore_nonzero``).
    """

    def __init__(self, shift: float = 0.1, scale: float = 0.1, p: float = 1.0) -> None:
        super().__init__(p)
        self.shift, self.scale = shift, scale

    def draw(self, rng: np.random.Generator, sample: Sample) -> ShiftScaleParams:
        channels = int(sample["image"].shape[0])
        return ShiftScaleParams(
            tuple(rng.uniform(-self.shift, self.shift, channels).tolist()),
            tuple(rng.uniform(1 - self.scale, 1 + self.scale, channels).tolist()),
        )

    def apply(self, sample: Sample, params: ShiftScaleParams) -> Sample:
        image = sample["image"].float()
        out = torch.empty_like(image)
        for c, channel in enumerate(image):
            values = channel[channel != 0]
            std = float(values.std()) if values.numel() > 1 else 1.0
            out[c] = channel * params.scale[c] + params.shift[c] * std
        return _with(sample, out, None)


@dataclass(frozen=True)
class GammaParams:
    gamma: float


class RandomGamma(RandomTransform):
    """Contrast change ``((x - lo) / (hi - lo)) ** gamma`` per channel, range kept.

    Args:
        gamma_range: ``gamma`` is log-uniform in this range.
    """

    def __init__(self, gamma_range: tuple[float, float] = (0.7, 1.5), p: float = 1.0) -> None:
        super().__init__(p)
        self.gamma_range = gamma_range

    def draw(self, rng: np.random.Generator, sample: Sample) -> GammaParams:
        low, high = np.log(self.gamma_range[0]), np.log(self.gamma_range[1])
        return GammaParams(float(np.exp(rng.uniform(low, high))))

    def apply(self, sample: Sample, params: GammaParams) -> Sample:
        image = sample["image"].float()
        dims = tuple(range(1, image.ndim))
        low = image.amin(dim=dims, keepdim=True)
        span = (image.amax(dim=dims, keepdim=True) - low).clamp_min(1e-12)
        return _with(sample, ((image - low) / span).clamp(0, 1) ** params.gamma * span + low, None)


@dataclass(frozen=True)
class NoiseParams:
    std: float
    seed: int


class RandomNoise(RandomTransform):
    """Additive Gaussian noise with a std drawn from ``U(0, std)``."""

    def __init__(self, std: float = 0.1, p: float = 1.0) -> None:
        super().__init__(p)
        self.std = std

    def draw(self, rng: np.random.Generator, sample: Sample) -> NoiseParams:
        return NoiseParams(float(rng.uniform(0, self.std)), int(rng.integers(2**31)))

    def apply(self, sample: Sample, params: NoiseParams) -> Sample:
        image = sample["image"].float()
        gen = torch.Generator().manual_seed(params.seed)
        return _with(sample, image + params.std * torch.randn(image.shape, generator=gen), None)


@dataclass(frozen=True)
class BiasFieldParams:
    """Control values ``(*[grid + 3] * D)`` of the log bias field (cubic B-spline)."""

    control: np.ndarray


class RandomBiasField(RandomTransform):
    """Smooth multiplicative field ``exp(b(x))`` (MR inhomogeneity), on intensities above min.

    Args:
        strength: control values of ``b`` are uniform in ``(-strength, strength)``.
        grid: B-spline mesh cells per axis of the field.
    """

    def __init__(self, strength: float = 0.3, grid: int = 1, p: float = 1.0) -> None:
        super().__init__(p)
        self.strength, self.grid = strength, grid

    def draw(self, rng: np.random.Generator, sample: Sample) -> BiasFieldParams:
        dims = len(_spatial(sample))
        control = rng.uniform(-self.strength, self.strength, [self.grid + 3] * dims)
        return BiasFieldParams(control.astype(np.float32))

    def apply(self, sample: Sample, params: BiasFieldParams) -> Sample:
        image = sample["image"].float()
        field = bspline_field(torch.from_numpy(params.control)[None], _spatial(sample))
        dims = tuple(range(1, image.ndim))
        low = image.amin(dim=dims, keepdim=True)
        return _with(sample, (image - low) * torch.exp(field) + low, None)


# -- histogram matching -----------------------------------------------------------------------


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
    ``Histogram::Quantile`` (Nyul et al. 2000).
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
    # between landmarks: linear; at and above the source maximum: the reference maximum
    out = np.interp(x, source.quantiles, reference.quantiles).astype(np.float32)
    below = x < source.quantiles[0]
    if below.any():
        low_span = source.quantiles[0] - source.minimum
        gradient = (reference.quantiles[0] - reference.minimum) / low_span if low_span else 0.0
        out[below] = reference.minimum + (x[below] - source.minimum) * gradient
    return torch.from_numpy(out)


@dataclass(frozen=True)
class HistogramParams:
    """Which reference volume a sample was matched to."""

    reference: int


class RandomHistogramMatching(RandomTransform):
    """Match each channel's histogram to a randomly chosen reference volume (V-Net).

    Milletari et al. (2016) adapt "the intensity distributions of the training volumes used in
    each iteration to the ones of other randomly chosen scans" with histogram matching. This is
    ITK's ``HistogramMatchingImageFilter`` (same bins, quantiles and mapping) in numpy/torch;
    the references' tables are computed once here.

    Warning:
        Each call computes the source's histogram (about 0.1 s for 7 M voxels).

    Args:
        references: ``(C, *S)`` volumes (any spatial size) to match to.
        levels: histogram bins (ITK ``NumberOfHistogramLevels``).
        points: matched quantiles (ITK ``NumberOfMatchPoints``).
        threshold_at_mean: ignore values below the mean (background), as ITK's option.
    """

    def __init__(
        self,
        references: Sequence[torch.Tensor | np.ndarray],
        levels: int = 1024,
        points: int = 7,
        threshold_at_mean: bool = True,
        p: float = 1.0,
    ) -> None:
        super().__init__(p)
        if not references:
            raise ValueError("RandomHistogramMatching: no reference volumes")
        self.levels, self.points, self.threshold_at_mean = levels, points, threshold_at_mean
        self.tables = [[self._table(channel) for channel in reference] for reference in references]

    def _table(self, values: torch.Tensor | np.ndarray) -> HistogramTable:
        return histogram_table(values, self.levels, self.points, self.threshold_at_mean)

    def draw(self, rng: np.random.Generator, sample: Sample) -> HistogramParams:
        return HistogramParams(int(rng.integers(len(self.tables))))

    def apply(self, sample: Sample, params: HistogramParams) -> Sample:
        image = sample["image"].float()
        reference = self.tables[params.reference]
        if len(reference) != image.shape[0]:
            raise ValueError(
                f"RandomHistogramMatching: reference has {len(reference)} channels, "
                f"sample {image.shape[0]}"
            )
        out = torch.stack(
            [
                match_histogram(channel, self._table(channel.numpy()), table)
                for channel, table in zip(image, reference)
            ]
        )
        return _with(sample, out, None)
