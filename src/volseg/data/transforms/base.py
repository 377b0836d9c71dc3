"""Random transforms as two parts, their composition into one sampling grid, and the registry.

A :class:`RandomTransform` draws its parameters with ``get_params(rng, context)`` (a frozen
dataclass, or ``None`` when it does not fire: probability ``p``) and applies them
deterministically. There are two kinds:

* :class:`SpatialTransform`: ``map_points`` maps points of its output grid (mm offsets from the
  grid centre, array order) to points of its input grid. :class:`Compose` chains the maps of all
  spatial transforms and reads the image (linear) and the label (nearest) once, with one
  ``grid_sample`` each (:mod:`.grid`). A whole volume and a training patch go through the same
  code; for a patch only patch-sized work is done.
* :class:`MaskTransform`: cuts the *input* to a region (a scanner's field of view). Given the
  input voxel at which each output voxel is read (the spatial transforms' mapped points), it says
  which output voxels lie outside the region, where the image is read instead (``clamp``: e.g.
  the region's border values, as at the end of any volume) and the image value written there
  (``fill``, or ``None`` to keep what was read); the label there becomes 0. It is the only kind
  that changes the label's content, so it works on points, not on resampled values: a patch is
  cut exactly as the same region of the whole volume.
* :class:`IntensityTransform`: ``transform_image`` changes the values of the resampled image;
  a :class:`LabelIntensityTransform` is given the resampled label too (a tissue's own contrast).

So in a :class:`Compose` the spatial transforms act first (in list order), then the mask ones
(in list order, on the mapped points, before the one resampling), then the intensity ones (in
list order; they change a filled region as they change the scan's own background).
Parameters are drawn from the :class:`Context` of the *input* case (shape, spacing, per-channel
statistics), never from intermediate results; they are recorded by position in the list, so two
transforms of one class replay correctly.

Registered transforms (``@register_transform("flip")``) are built by name with
:func:`create_transform` and listed by :func:`list_transforms`; training builds its
augmentation from them (:func:`build_augmentation`).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, TypeVar, Union

import numpy as np
import torch

from volseg.config import AugmentConfig, ConfigError
from volseg.data.transforms.grid import regular_points, resample
from volseg.registry import Registry

__all__ = [
    "TRANSFORMS",
    "ChannelStats",
    "Compose",
    "Context",
    "IntensityTransform",
    "LabelIntensityTransform",
    "MaskTransform",
    "RandomTransform",
    "Sample",
    "SpatialTransform",
    "build_augmentation",
    "channel_stats",
    "create_transform",
    "list_transforms",
    "params_from_dict",
    "params_to_dict",
    "register_transform",
]

P = TypeVar("P")


@dataclass(frozen=True)
class Sample:
    """An image and its label on one grid.

    Attributes:
        image: ``(C, *S)`` float tensor, array order, 2-D or 3-D.
        label: ``(1, *S)`` integer tensor or ``None``.
        spacing: voxel size in mm, **array order** (z, y, x); ``None`` means 1 mm.
    """

    image: torch.Tensor
    label: torch.Tensor | None = None
    spacing: tuple[float, ...] | None = None

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(int(n) for n in self.image.shape[1:])

    @property
    def spacing_mm(self) -> tuple[float, ...]:
        if self.spacing is None:
            return (1.0,) * len(self.shape)
        return tuple(float(s) for s in self.spacing)


@dataclass(frozen=True)
class ChannelStats:
    """Intensity statistics of one channel of a whole case (what intensity transforms scale by).

    ``std`` is over the non-zero voxels (1 when fewer than two), as Myronenko's shift.
    """

    minimum: float
    maximum: float
    std: float


def channel_stats(image: torch.Tensor) -> tuple[ChannelStats, ...]:
    """Per-channel :class:`ChannelStats` of ``(C, *S)``."""
    out = []
    for channel in image.float():
        values = channel[channel != 0]
        std = float(values.double().std()) if values.numel() > 1 else 1.0
        out.append(ChannelStats(float(channel.min()), float(channel.max()), std))
    return tuple(out)


@dataclass(frozen=True)
class Context:
    """What ``get_params`` may look at: the input case, not the sample being built.

    Attributes:
        image: the input ``(C, *S)`` (a whole case, or one slice of it for 2-D patches).
        spacing: voxel size in mm, array order.
        shape: spatial shape of the grid the transform writes (the patch, the volume, a crop).
        stats: per-channel statistics of the whole case; ``None``: computed from ``image``
            when a transform asks (:meth:`channel_stats`).
        case: index of the case among the volumes given to :meth:`RandomTransform.prepare`
            (histogram matching picks another one), ``None`` for a volume outside them.
    """

    image: torch.Tensor
    spacing: tuple[float, ...]
    shape: tuple[int, ...]
    stats: tuple[ChannelStats, ...] | None = None
    case: int | None = None

    @classmethod
    def of(cls, sample: Sample, case: int | None = None) -> Context:
        """The context of a whole-volume ``sample``."""
        return cls(sample.image, sample.spacing_mm, sample.shape, None, case)

    def channel_stats(self) -> tuple[ChannelStats, ...]:
        """``stats``, or the statistics of ``image`` when none were given."""
        return self.stats if self.stats is not None else channel_stats(self.image)

    @property
    def dims(self) -> int:
        return len(self.shape)


class RandomTransform(ABC, Generic[P]):
    """Base class: ``get_params`` draws (or returns ``None`` to skip), ``apply`` acts.

    Args:
        p: probability that the transform fires for a sample.
    """

    name: ClassVar[str] = ""  # set by register_transform
    params_type: ClassVar[type]

    def __init__(self, p: float = 1.0) -> None:
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"{type(self).__name__}: p={p} is not a probability")
        self.p = p

    def get_params(self, rng: np.random.Generator, context: Context) -> P | None:
        """The parameters for the case in ``context``, or ``None`` when the transform skips."""
        if self.p < 1.0 and rng.random() >= self.p:
            return None
        return self.draw(rng, context)

    @abstractmethod
    def draw(self, rng: np.random.Generator, context: Context) -> P | None:
        """The parameters once the transform fires (``None``: it cannot act on this case)."""

    def prepare(self, images: Sequence[torch.Tensor]) -> None:
        """See the training cases ``(C, *S)`` once before sampling (default: nothing to do)."""

    def apply(self, sample: Sample, params: P) -> Sample:
        """Apply ``params`` to a whole volume (through the same grid code as patches)."""
        return Compose([self]).apply(sample, (params,))

    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample:
        return Compose([self])(sample, rng)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(p={self.p})"


class SpatialTransform(RandomTransform[P]):
    """A transform of coordinates: output points (mm from the grid centre) -> input points."""

    @abstractmethod
    def map_points(
        self,
        points: torch.Tensor | None,
        params: P,
        shape: tuple[int, ...],
        spacing: tuple[float, ...],
    ) -> torch.Tensor:
        """Map ``(*shape, D)`` mm offsets of the output grid to offsets of the input grid.

        Args:
            points: ``None`` stands for the regular grid ``shape`` (see :func:`regular_points`),
                which lets a transform take a faster path.
            shape: the output grid; spacing: mm per voxel, array order.
        """

    def output_shape(self, shape: tuple[int, ...], params: P) -> tuple[int, ...]:
        """The output grid's shape for input ``shape`` (only crops change it)."""
        return shape


class IntensityTransform(RandomTransform[P]):
    """A transform of image values (labels unchanged)."""

    @abstractmethod
    def transform_image(self, image: torch.Tensor, params: P) -> torch.Tensor:
        """The changed ``(C, *S)`` float image (a new tensor)."""


class LabelIntensityTransform(IntensityTransform[P]):
    """A transform of image values that depends on the label (a tissue class's own contrast).

    :class:`Compose` calls :meth:`transform_labelled` with the resampled label; a sample
    without a label cannot take it.
    """

    @abstractmethod
    def transform_labelled(
        self, image: torch.Tensor, label: torch.Tensor, spacing: Sequence[float], params: P
    ) -> torch.Tensor:
        """The changed ``(C, *S)`` float image, given the ``(1, *S)`` label on its grid."""

    def transform_image(self, image: torch.Tensor, params: P) -> torch.Tensor:
        raise ValueError(f"{self.name or type(self).__name__} needs the label of the sample")


class MaskTransform(RandomTransform[P]):
    """A cut of the input: output voxels read outside a region of the input get a fill value and
    label 0.

    All three methods work in **voxel coordinates of the input** (array order, may be
    fractional): ``voxels`` is ``(*S, D)``, for every output voxel the input voxel it is read
    at (after the spatial transforms), so the cut moves with the content as those transforms
    move it, and a patch and the whole volume agree.
    """

    @abstractmethod
    def outside(self, voxels: torch.Tensor, params: P) -> torch.Tensor:
        """``(*S)`` bool: the output voxels whose input point is cut away."""

    def clamp(self, voxels: torch.Tensor, params: P) -> torch.Tensor:
        """Where the image is read instead of ``voxels`` (default: unchanged)."""
        return voxels

    @abstractmethod
    def fill(self, params: P) -> tuple[float, ...] | None:
        """Per channel image value written outside, or ``None``: keep what was read there."""


class Compose:
    """Transforms applied as one: spatial ones into one grid, mask ones on its points, then
    intensity ones.

    Parameters are a tuple with one entry per transform (``None`` where it did not fire), so a
    recorded tuple replays exactly with :meth:`apply`, whatever the classes in the list.
    """

    def __init__(self, transforms: Sequence[RandomTransform[Any]]) -> None:
        self.transforms = list(transforms)

    def prepare(self, images: Sequence[torch.Tensor]) -> None:
        for transform in self.transforms:
            transform.prepare(images)

    def get_params(self, rng: np.random.Generator, context: Context) -> tuple[Any, ...]:
        """Draw every transform's parameters in list order; ``context.shape`` is the output
        grid of the first transform (the patch, or the volume)."""
        out = []
        for transform in self.transforms:
            params = transform.get_params(rng, context)
            out.append(params)
            if params is not None and isinstance(transform, SpatialTransform):
                shape = transform.output_shape(context.shape, params)
                if shape != context.shape:
                    context = dataclasses.replace(context, shape=shape)
        return tuple(out)

    def apply(
        self,
        sample: Sample,
        params: Sequence[Any],
        center: Sequence[float] | None = None,
        shape: Sequence[int] | None = None,
    ) -> Sample:
        """Apply recorded ``params`` (one per transform) to ``sample``.

        Args:
            center: voxel (array order, may be fractional) of ``sample`` on which the first
                transform's grid is centred; ``None``: the centre of the volume.
            shape: that grid's shape (a patch); ``None``: the volume's own shape.
        """
        if len(params) != len(self.transforms):
            raise ValueError(f"{len(params)} parameters for {len(self.transforms)} transforms")
        spacing = sample.spacing_mm
        fired = [(t, q) for t, q in zip(self.transforms, params) if q is not None]
        spatial = [(t, q) for t, q in fired if isinstance(t, SpatialTransform)]
        masks = [(t, q) for t, q in fired if isinstance(t, MaskTransform)]
        image, label = sample.image, sample.label
        if spatial or masks or center is not None or shape is not None:
            shapes = [tuple(int(n) for n in shape) if shape is not None else sample.shape]
            for transform, q in spatial:
                shapes.append(transform.output_shape(shapes[-1], q))
            points: torch.Tensor | None = None
            for k in reversed(range(len(spatial))):
                transform, q = spatial[k]
                points = transform.map_points(points, q, shapes[k + 1], spacing)
            if points is None:
                points = regular_points(shapes[0], spacing)
            if center is None:
                center = [(n - 1) / 2 for n in sample.shape]
            cuts: list[tuple[torch.Tensor, tuple[float, ...] | None]] = []
            if masks:
                points, cuts = _cut(masks, points, center, spacing)
            image, label = resample(image, label, points, center, spacing)
            for outside, fill in cuts:
                if fill is not None:
                    value = torch.tensor(fill, dtype=image.dtype).view(-1, *[1] * outside.ndim)
                    image = torch.where(outside, value, image)
                if label is not None:
                    label = label.masked_fill(outside, 0)
        for changer, q in fired:
            if isinstance(changer, LabelIntensityTransform):
                if label is None:
                    raise ValueError(f"{changer.name} needs a label: this sample has none")
                image = changer.transform_labelled(image, label, spacing, q)
            elif isinstance(changer, IntensityTransform):
                image = changer.transform_image(image, q)
        return Sample(image, label, sample.spacing)

    def __call__(self, sample: Sample, rng: np.random.Generator, case: int | None = None) -> Sample:
        """Draw parameters for the whole volume ``sample`` and apply them."""
        return self.apply(sample, self.get_params(rng, Context.of(sample, case)))

    def __len__(self) -> int:
        return len(self.transforms)

    def __repr__(self) -> str:
        return f"Compose({self.transforms})"


def _cut(
    masks: Sequence[tuple[MaskTransform[Any], Any]],
    points: torch.Tensor,
    center: Sequence[float],
    spacing: Sequence[float],
) -> tuple[torch.Tensor, list[tuple[torch.Tensor, tuple[float, ...] | None]]]:
    """The points to read at after the masks' ``clamp`` and, per mask, its outside and fill."""
    origin = torch.tensor([float(c) for c in center], dtype=torch.float32)
    step = torch.tensor([float(s) for s in spacing], dtype=torch.float32)
    voxels = origin + points / step  # the input voxel each output voxel is read at
    read = voxels
    cuts = []
    for mask, q in masks:
        cuts.append((mask.outside(voxels, q), mask.fill(q)))
        read = mask.clamp(read, q)
    if read is not voxels:
        points = (read - origin) * step
    return points, cuts


TRANSFORMS = Registry[RandomTransform[Any]]("transform")
T = TypeVar("T", bound=RandomTransform[Any])


def register_transform(name: str) -> Callable[[type[T]], type[T]]:
    """Class decorator: register a transform under ``name`` (its YAML ``name``)."""

    def decorator(cls: type[T]) -> type[T]:
        TRANSFORMS.register(name)(cls)
        cls.name = name
        return cls

    return decorator


def create_transform(name: str, **kwargs: Any) -> RandomTransform[Any]:
    """The transform registered as ``name`` built with ``kwargs`` (e.g. ``p=0.5, axes=[2]``)."""
    return TRANSFORMS.create(name, **kwargs)


def list_transforms() -> list[str]:
    """Names of the registered transforms, sorted."""
    return TRANSFORMS.list()


def build_augmentation(config: AugmentConfig) -> Compose:
    """The :class:`Compose` of ``config.transforms``; a bad entry raises :class:`ConfigError`
    naming it (an unknown name lists :func:`list_transforms`)."""
    transforms: list[RandomTransform[Any]] = []
    for i, entry in enumerate(config.transforms):
        where = f"augment.transforms[{i}]"
        if entry.name not in TRANSFORMS:
            known = ", ".join(list_transforms())
            raise ConfigError(f"{where}.name: unknown transform {entry.name!r}; known: {known}")
        try:
            transforms.append(create_transform(entry.name, p=entry.p, **entry.kwargs))
        except (TypeError, ValueError) as err:
            raise ConfigError(f"{where} ({entry.name}): {err}") from None
    return Compose(transforms)


def params_to_dict(params: Any) -> Any:
    """Parameters as JSON-ready plain data (arrays become nested lists)."""
    if dataclasses.is_dataclass(params) and not isinstance(params, type):
        return {f.name: params_to_dict(getattr(params, f.name)) for f in dataclasses.fields(params)}
    if isinstance(params, np.ndarray):
        return params.tolist()
    if isinstance(params, (list, tuple)):
        return [params_to_dict(v) for v in params]
    return params


def params_from_dict(cls: type[P], data: dict[str, Any]) -> P:
    """The inverse of :func:`params_to_dict` for a parameter dataclass ``cls``."""
    hints = typing.get_type_hints(cls)
    fields = dataclasses.fields(cls)  # type: ignore[arg-type]
    return cls(**{f.name: _from_plain(hints[f.name], data[f.name]) for f in fields})


def _from_plain(hint: Any, value: Any) -> Any:
    if value is None:
        return None
    origin = typing.get_origin(hint)
    if origin in (Union, types.UnionType):
        hint = next(a for a in typing.get_args(hint) if a is not type(None))
        origin = typing.get_origin(hint)
    if hint is np.ndarray:
        return np.asarray(value, dtype=np.float32)
    if dataclasses.is_dataclass(hint):
        return params_from_dict(hint, value)  # type: ignore[arg-type]
    if origin is tuple:
        args = typing.get_args(hint)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_from_plain(args[0], v) for v in value)
        return tuple(_from_plain(a, v) for a, v in zip(args, value))
    if hint is float:
        return float(value)
    return value
