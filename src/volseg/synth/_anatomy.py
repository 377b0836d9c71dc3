"""Helpers shared by the generators built on real anatomy: warping a subject with volseg's
random transforms, and small array utilities (all seeded through the caller's generator)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from scipy import ndimage

from volseg.data.transforms import (
    Compose,
    Context,
    RandomAffine,
    RandomBSplineDeformation,
    RandomTransform,
    Sample,
    params_to_dict,
)
from volseg.io import Volume

__all__ = ["like", "smooth_noise", "subject_warp", "to_json", "warp"]


def subject_warp(
    degrees: float = 8.0,
    scale: Sequence[float] = (0.92, 1.08),
    grid: int = 3,
    sigma_mm: float = 3.0,
) -> Compose:
    """The spatial part of "another subject": a smooth B-spline deformation then a rotation and
    isotropic scaling about the centre (one resampling; label by nearest neighbour)."""
    return Compose(
        [RandomBSplineDeformation(grid=grid, sigma_mm=sigma_mm), RandomAffine(degrees, scale)]
    )


def warp(
    transform: Compose,
    image: np.ndarray,
    label: np.ndarray | None,
    spacing_zyx: Sequence[float],
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray | None, dict[str, Any]]:
    """Apply ``transform`` with parameters drawn from ``rng`` to a whole ``(C, *S)`` volume.

    Returns the float32 image, the label (its dtype, or ``None``) and the drawn parameters.
    """
    sample = Sample(
        torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32)),
        None if label is None else torch.from_numpy(np.ascontiguousarray(label)[None]),
        tuple(float(s) for s in spacing_zyx),
    )
    params = transform.get_params(rng, Context.of(sample))
    out = transform.apply(sample, params)
    out_label = None if out.label is None else out.label[0].numpy()
    return out.image.numpy(), out_label, to_json(transform.transforms, params)


def to_json(transforms: Sequence[RandomTransform[Any]], params: Sequence[Any]) -> dict[str, Any]:
    """Drawn transform parameters as a JSON-ready summary (scalars kept, arrays by their size)."""
    out: dict[str, Any] = {}
    for transform, q in zip(transforms, params):
        key = type(transform).__name__
        if q is None:
            out[key] = None
            continue
        entry: dict[str, Any] = {}
        for k, v in params_to_dict(q).items():
            if isinstance(v, (int, float, str)):
                entry[k] = v
            else:
                arr = np.asarray(v, dtype=float)
                entry[k] = (
                    [round(float(x), 4) for x in arr.ravel()]
                    if arr.size <= 9
                    else f"{arr.size} values, |max| {float(np.abs(arr).max()):.3g}"
                )
        out[key] = entry
    return out


def smooth_noise(
    rng: np.random.Generator, shape: Sequence[int], sigma_vox: float | Sequence[float]
) -> np.ndarray:
    """Gaussian-smoothed white noise scaled to unit std (float32)."""
    field = ndimage.gaussian_filter(rng.standard_normal(tuple(shape)), sigma_vox, mode="wrap")
    return (field / max(float(field.std()), 1e-12)).astype(np.float32)


def like(reference: Volume, array: np.ndarray) -> Volume:
    """``array`` (``*S``) as a single-channel volume on ``reference``'s grid."""
    return Volume(array[None], reference.spacing, reference.origin, reference.direction)
