"""Phantoms with known ground truth: tiny anisotropic volumes with a non-identity direction.

Used by the tests (and anyone checking a pipeline end to end without data): an ellipsoid
"organ" (label 1) containing a smaller ellipsoid (label 2) in a noisy background, written with
a rotated/flipped direction matrix and anisotropic spacing so geometry mistakes show.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from volseg.io import Volume, write_volume

__all__ = ["OBLIQUE_DIRECTION", "make_phantom", "write_phantom_dataset"]

# A proper rotation (det +1) that also swaps axes: x' = -y, y' = x, z' = z, tilted 10 degrees.
_c, _s = np.cos(np.deg2rad(10.0)), np.sin(np.deg2rad(10.0))
OBLIQUE_DIRECTION = tuple(
    (
        np.array([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
        @ np.array([[1.0, 0.0, 0.0], [0.0, _c, -_s], [0.0, _s, _c]])
    )
    .ravel()
    .tolist()
)


def make_phantom(
    shape: tuple[int, ...] = (20, 24, 28),
    spacing: tuple[float, ...] = (0.9, 1.1, 2.0),
    seed: int = 0,
    channels: int = 1,
    nested: bool = False,
    direction: tuple[float, ...] | None = None,
    origin: tuple[float, ...] | None = None,
) -> tuple[Volume, Volume]:
    """An image and its label map on one grid.

    Args:
        shape: spatial shape in array order (2 or 3 axes).
        spacing: ITK order (x, y, z), like every spacing in volseg.
        nested: add label 2 inside label 1.
        direction: defaults to :data:`OBLIQUE_DIRECTION` in 3D and a 90 degree rotation in 2D.

    Returns:
        ``(image, label)``: float32 ``(channels, *shape)`` and uint8 ``(1, *shape)``.
    """
    rng = np.random.default_rng(seed)
    dims = len(shape)
    if direction is None:
        direction = OBLIQUE_DIRECTION if dims == 3 else (0.0, -1.0, 1.0, 0.0)
    if origin is None:
        origin = tuple(float(v) for v in rng.uniform(-50, 50, dims))
    grids = np.meshgrid(*[np.arange(n, dtype=np.float32) for n in shape], indexing="ij")
    center = np.asarray(shape) / 2 + rng.uniform(-1.5, 1.5, dims)
    radii = np.asarray(shape) * rng.uniform(0.22, 0.32, dims)
    r = sum(((g - c) / rad) ** 2 for g, c, rad in zip(grids, center, radii))
    label = (r <= 1.0).astype(np.uint8)
    if nested:
        label[r <= 0.3] = 2
    image = np.empty((channels, *shape), dtype=np.float32)
    for c in range(channels):
        base = 100.0 + 40.0 * c
        image[c] = base * label.astype(np.float32) * (1.0 + 0.2 * c) + 20.0
        image[c] += rng.normal(0.0, 8.0, shape).astype(np.float32)
    make = lambda a: Volume(a, tuple(spacing), tuple(origin), tuple(direction))  # noqa: E731
    return make(image), make(label[None])


def write_phantom_dataset(
    folder: str | Path,
    cases: int = 3,
    shape: tuple[int, ...] = (20, 24, 28),
    spacing: tuple[float, ...] = (0.9, 1.1, 2.0),
    channels: int = 1,
    nested: bool = False,
) -> Path:
    """Write ``cases`` phantoms and a ``manifest.csv`` (case_id, image..., label) into ``folder``.

    Returns the manifest path, usable as ``data.root`` in a config.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    header = ["case_id", *[f"image_{c}" for c in range(channels)], "label"]
    lines = [",".join(header)]
    for i in range(cases):
        image, label = make_phantom(shape, spacing, seed=i, channels=channels, nested=nested)
        names = []
        for c in range(channels):
            name = f"case{i:02d}_{c:04d}.nii.gz"
            write_volume(image.with_array(image.array[c : c + 1]), folder / name)
            names.append(name)
        write_volume(label, folder / f"case{i:02d}_label.nii.gz")
        lines.append(",".join([f"case{i:02d}", *names, f"case{i:02d}_label.nii.gz"]))
    manifest = folder / "manifest.csv"
    manifest.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return manifest
