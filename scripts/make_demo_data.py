"""Build the small demo dataset bundled in ``src/volseg/demo_data/`` (brain extraction).

Run once by developers from the repository root::

    python scripts/make_demo_data.py [--source ../shared/data/colin27] [--out src/volseg/demo_data]

Input: the Colin27 T1 head scan ``ch2.nii.gz`` (with skull) and its brain-extracted version
``ch2bet.nii.gz`` from the Debian package ``mricron-data`` 1.2.20211006 (BSD-3-Clause, C. Rorden).
The brain mask is ``ch2bet > 0``.

Output (deterministic; every random draw comes from one seeded generator):

* ``train/colin27_t1.nii.gz`` + ``train/colin27_brain.nii.gz``: the scan at 2 mm isotropic, same
  physical extent, origin and direction as the original.
* ``heldout/<name>_t1.nii.gz`` + ``heldout/<name>_brain.nii.gz`` for three variants that imitate
  other heads and scanners. Each is made from the 1 mm originals with one spatial transform applied
  to image (linear) and mask (nearest) together, so the mask stays exact for the new image:

  - ``colin27_deformed``: B-spline deformation + rotation, bias field, gamma; 1.5 x 1.5 x 3.0 mm.
  - ``colin27_reoriented``: rotation, scale 0.93, sagittal axis order (permuted direction with
    flips), Rician noise, intensity x 3.7 + 40; 1.2 x 1.2 x 2.4 mm.
  - ``colin27_lowres``: 3 mm isotropic, scale 1.07, lower contrast, brighter scalp and skull.

* ``PROVENANCE.md`` and ``LICENSE``.
"""

from __future__ import annotations

import argparse
import json
import textwrap
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

SEED = 20240917
REPO = Path(__file__).resolve().parents[1]
DEFAULT_SOURCE = REPO.parent / "shared" / "data" / "colin27"
DEFAULT_OUT = REPO / "src" / "volseg" / "demo_data"

# Sagittal acquisition: index axis i runs anterior (-y in LPS), j runs inferior (-z), k runs left
# (+x). Columns of the direction matrix are the index axes; row-major as ITK stores it.
SAGITTAL_DIRECTION = (0.0, 0.0, 1.0, -1.0, 0.0, 0.0, 0.0, -1.0, 0.0)


@dataclass(frozen=True)
class Grid:
    """An output sampling grid in ITK (x, y, z) order."""

    size: tuple[int, int, int]
    spacing: tuple[float, float, float]
    origin: tuple[float, float, float]
    direction: tuple[float, ...]


def physical_centre(image: sitk.Image) -> np.ndarray:
    """Physical position of the centre of the image's field of view."""
    centre_index = (np.asarray(image.GetSize(), dtype=float) - 1.0) / 2.0
    return np.asarray(image.TransformContinuousIndexToPhysicalPoint(centre_index.tolist()))


def covering_grid(
    image: sitk.Image,
    spacing: tuple[float, float, float],
    direction: tuple[float, ...] | None,
    fov_scale: float = 1.0,
) -> Grid:
    """A grid with the given spacing and direction covering the field of view of ``image``.

    The field of view is the box spanned by the voxel corners, times ``fov_scale``; the new grid
    is centred on it.
    """
    direction = tuple(image.GetDirection()) if direction is None else direction
    new_dir = np.asarray(direction, dtype=float).reshape(3, 3)
    if not np.allclose(new_dir.T @ new_dir, np.eye(3), atol=1e-9):
        raise ValueError("direction must be orthonormal")
    size = np.asarray(image.GetSize(), dtype=float)
    corners = [
        image.TransformContinuousIndexToPhysicalPoint([c - 0.5 for c in corner])
        for corner in np.array(np.meshgrid(*[[0.0, s] for s in size])).reshape(3, -1).T.tolist()
    ]
    local = np.asarray(corners) @ new_dir  # coordinates along the new index axes
    lo, hi = local.min(axis=0), local.max(axis=0)
    sp = np.asarray(spacing, dtype=float)
    new_size = np.maximum(1, np.round(fov_scale * (hi - lo) / sp)).astype(int)
    centre_local = (lo + hi) / 2.0
    origin_local = centre_local - sp * (new_size - 1) / 2.0
    origin = new_dir @ origin_local
    return Grid(
        size=tuple(int(v) for v in new_size),  # type: ignore[arg-type]
        spacing=tuple(float(v) for v in sp),  # type: ignore[arg-type]
        origin=tuple(float(v) for v in origin),  # type: ignore[arg-type]
        direction=tuple(float(v) for v in direction),
    )


def resample_pair(
    t1: sitk.Image, mask: sitk.Image, grid: Grid, transform: sitk.Transform
) -> tuple[np.ndarray, np.ndarray, sitk.Image]:
    """Resample image (linear) and mask (nearest) onto ``grid`` with one transform.

    ``transform`` maps output physical points to input physical points (ITK convention).

    Returns:
        The image as float32 ``(Z, Y, X)``, the mask as uint8 ``(Z, Y, X)``, and an empty
        reference image carrying the grid's geometry.
    """
    reference = sitk.Image(list(grid.size), sitk.sitkUInt8)
    reference.SetSpacing(grid.spacing)
    reference.SetOrigin(grid.origin)
    reference.SetDirection(grid.direction)
    image = sitk.Resample(
        sitk.Cast(t1, sitk.sitkFloat32),
        reference,
        transform,
        sitk.sitkLinear,
        0.0,
        sitk.sitkFloat32,
    )
    label = sitk.Resample(mask, reference, transform, sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8)
    return sitk.GetArrayFromImage(image), sitk.GetArrayFromImage(label), reference


def random_rotation(rng: np.random.Generator, degrees: float) -> tuple[np.ndarray, float]:
    """A random unit axis and an angle of about ``degrees`` (in radians, random sign)."""
    axis = rng.normal(size=3)
    axis /= np.linalg.norm(axis)
    angle = np.deg2rad(degrees * rng.uniform(0.9, 1.1)) * rng.choice([-1.0, 1.0])
    return axis, float(angle)


def similarity(
    centre: np.ndarray, axis: np.ndarray, angle: float, head_scale: float
) -> sitk.Similarity3DTransform:
    """Rotate and scale the head by ``head_scale`` about ``centre`` (as seen in the output).

    The ITK transform maps output points to input points, so it scales by ``1 / head_scale``.
    """
    transform = sitk.Similarity3DTransform()
    transform.SetCenter(centre.tolist())
    transform.SetRotation(axis.tolist(), angle)
    transform.SetScale(1.0 / head_scale)
    return transform


def smooth_field(rng: np.random.Generator, shape: tuple[int, ...], coarse: int = 4) -> np.ndarray:
    """A smooth random field in [-1, 1] on ``shape``, from a coarse random grid (cubic)."""
    field = rng.uniform(-1.0, 1.0, size=(coarse,) * len(shape))
    zoom = [s / coarse for s in shape]
    out = ndimage.zoom(field, zoom, order=3, mode="nearest")[tuple(slice(0, s) for s in shape)]
    out -= out.mean()
    return out / max(float(np.abs(out).max()), 1e-6)


def make_train(t1: sitk.Image, mask: sitk.Image) -> tuple[np.ndarray, np.ndarray, sitk.Image]:
    """The training pair: 2 mm isotropic, same extent, origin frame and direction."""
    grid = covering_grid(t1, (2.0, 2.0, 2.0), None)
    image, label, ref = resample_pair(t1, mask, grid, sitk.Transform(3, sitk.sitkIdentity))
    return np.clip(np.round(image), 0, 255).astype(np.uint8), label, ref


def make_deformed(
    t1: sitk.Image, mask: sitk.Image, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, sitk.Image, dict[str, object]]:
    """B-spline deformation + rotation, bias field 0.8..1.2, gamma; 1.5 x 1.5 x 3.0 mm."""
    centre = physical_centre(t1)
    axis, angle = random_rotation(rng, 9.0)
    rigid = similarity(centre, axis, angle, 1.0)
    bspline = sitk.BSplineTransformInitializer(t1, [4, 4, 4], 3)
    n_params = len(bspline.GetParameters())
    displacement_sd = 4.0  # mm, per control point and axis
    params = np.clip(rng.normal(0.0, displacement_sd, size=n_params), -10.0, 10.0)
    bspline.SetParameters(params.tolist())
    composite = sitk.CompositeTransform([rigid, bspline])  # bspline applied first, then rigid
    grid = covering_grid(t1, (1.5, 1.5, 3.0), None)
    image, label, ref = resample_pair(t1, mask, grid, composite)
    gamma = 0.75
    bias_amplitude = 0.2
    image = 255.0 * (np.clip(image, 0, None) / 255.0) ** gamma
    image *= 1.0 + bias_amplitude * smooth_field(rng, image.shape)
    params_out = {
        "rotation_axis": axis.round(4).tolist(),
        "rotation_deg": round(float(np.rad2deg(angle)), 2),
        "bspline_mesh": [4, 4, 4],
        "bspline_displacement_sd_mm": displacement_sd,
        "bspline_max_coefficient_mm": round(float(np.abs(params).max()), 2),
        "gamma": gamma,
        "bias_field_range": [1.0 - bias_amplitude, 1.0 + bias_amplitude],
    }
    return np.clip(np.round(image), 0, 32767).astype(np.int16), label, ref, params_out


def make_reoriented(
    t1: sitk.Image, mask: sitk.Image, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, sitk.Image, dict[str, object]]:
    """Rotation ~15 deg, head x 0.93, sagittal axis order, Rician noise, x 3.7 + 40."""
    centre = physical_centre(t1)
    axis, angle = random_rotation(rng, 15.0)
    head_scale = 0.93
    transform = similarity(centre, axis, angle, head_scale)
    # A smaller head fits a smaller field of view (same margins; keeps the bundle small).
    grid = covering_grid(t1, (1.2, 1.2, 2.4), SAGITTAL_DIRECTION, fov_scale=0.95)
    image, label, ref = resample_pair(t1, mask, grid, transform)
    noise_sd = 4.0  # on the 0..255 scale of the original
    real = image + rng.normal(0.0, noise_sd, size=image.shape)
    imag = rng.normal(0.0, noise_sd, size=image.shape)
    image = np.sqrt(real**2 + imag**2)  # Rician magnitude, non-negative
    scale, offset = 3.7, 40.0
    image = scale * image + offset
    params_out = {
        "rotation_axis": axis.round(4).tolist(),
        "rotation_deg": round(float(np.rad2deg(angle)), 2),
        "head_scale": head_scale,
        "rician_noise_sd": noise_sd,
        "intensity": f"{scale} * I + {offset}",
    }
    return np.clip(np.round(image), 0, 32767).astype(np.int16), label, ref, params_out


def make_lowres(
    t1: sitk.Image, mask: sitk.Image, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, sitk.Image, dict[str, object]]:
    """3 mm isotropic, head x 1.07, lower contrast, brighter non-brain tissue (scalp, skull)."""
    # Intensity change of the non-brain tissue, on the 1 mm grid before resampling: a smooth
    # weight (0 in the brain, 1 well outside it) so the edge is not a step.
    t1_array = sitk.GetArrayFromImage(t1).astype(np.float32)
    brain = sitk.GetArrayFromImage(mask).astype(np.float32)
    outside = 1.0 - ndimage.gaussian_filter(brain, sigma=1.5)
    skull_gain = 1.5
    changed = t1_array * (1.0 + (skull_gain - 1.0) * outside)
    changed_image = sitk.GetImageFromArray(changed)
    changed_image.CopyInformation(t1)

    centre = physical_centre(t1)
    axis, angle = random_rotation(rng, 6.0)
    head_scale = 1.07
    transform = similarity(centre, axis, angle, head_scale)
    grid = covering_grid(t1, (3.0, 3.0, 3.0), None, fov_scale=1.07)  # the whole larger head
    image, label, ref = resample_pair(changed_image, mask, grid, transform)
    gamma, gain = 0.6, 0.75  # compresses the bright range: lower grey/white contrast
    image = gain * 255.0 * (np.clip(image, 0, None) / 255.0) ** gamma
    params_out = {
        "rotation_axis": axis.round(4).tolist(),
        "rotation_deg": round(float(np.rad2deg(angle)), 2),
        "head_scale": head_scale,
        "non_brain_gain": skull_gain,
        "contrast": f"{gain} * 255 * (I / 255) ** {gamma}",
    }
    return np.clip(np.round(image), 0, 255).astype(np.uint8), label, ref, params_out


LICENSE_TEXT = """\
The files in this folder are derived from the Colin27 template images ch2.nii.gz and
ch2bet.nii.gz distributed with MRIcron (Debian package mricron-data 1.2.20211006, files under
usr/share/mricron/templates/). The Debian package gives their licence as BSD-3-Clause, copyright
Chris Rorden; the notice follows.

Colin27 itself is the average of 27 T1-weighted scans of one subject acquired at the Montreal
Neurological Institute (MNI): C. J. Holmes, R. Hoge, L. Collins, R. Woods, A. W. Toga and
A. C. Evans, "Enhancement of MR images using registration for signal averaging", Journal of
Computer Assisted Tomography 22(2):324-333, 1998.

-------------------------------------------------------------------------------------------------
BSD 3-Clause License

Copyright (c) Chris Rorden (MRIcron)
All rights reserved.

Redistribution and use in source and binary forms, with or without modification, are permitted
provided that the following conditions are met:

1. Redistributions of source code must retain the above copyright notice, this list of
   conditions and the following disclaimer.

2. Redistributions in binary form must reproduce the above copyright notice, this list of
   conditions and the following disclaimer in the documentation and/or other materials provided
   with the distribution.

3. Neither the name of the copyright holder nor the names of its contributors may be used to
   endorse or promote products derived from this software without specific prior written
   permission.

THIS SOFTWARE IS PROVIDED BY THE COPYRIGHT HOLDERS AND CONTRIBUTORS "AS IS" AND ANY EXPRESS OR
IMPLIED WARRANTIES, INCLUDING, BUT NOT LIMITED TO, THE IMPLIED WARRANTIES OF MERCHANTABILITY AND
FITNESS FOR A PARTICULAR PURPOSE ARE DISCLAIMED. IN NO EVENT SHALL THE COPYRIGHT HOLDER OR
CONTRIBUTORS BE LIABLE FOR ANY DIRECT, INDIRECT, INCIDENTAL, SPECIAL, EXEMPLARY, OR CONSEQUENTIAL
DAMAGES (INCLUDING, BUT NOT LIMITED TO, PROCUREMENT OF SUBSTITUTE GOODS OR SERVICES; LOSS OF USE,
DATA, OR PROFITS; OR BUSINESS INTERRUPTION) HOWEVER CAUSED AND ON ANY THEORY OF LIABILITY, WHETHER
IN CONTRACT, STRICT LIABILITY, OR TORT (INCLUDING NEGLIGENCE OR OTHERWISE) ARISING IN ANY WAY OUT
OF THE USE OF THIS SOFTWARE, EVEN IF ADVISED OF THE POSSIBILITY OF SUCH DAMAGE.
"""

PROVENANCE_HEAD = """\
# volseg demo data: brain extraction on Colin27

A small real dataset for the demo and the tests: T1 head scan with skull (`*_t1.nii.gz`) -> brain
mask (`*_brain.nii.gz`, uint8 0/1). One subject, so the held-out cases are the same head changed
by known transforms that imitate other heads, scanners and orientations; they test robustness to
geometry and intensity changes, not generalisation to new anatomy.

## Source

- Package: Debian `mricron-data` 1.2.20211006 (`apt-get download mricron-data`), files
  `usr/share/mricron/templates/ch2.nii.gz` (Colin27 T1 with skull, uint8, 181 x 217 x 181, 1 mm)
  and `usr/share/mricron/templates/ch2bet.nii.gz` (the same scan brain-extracted).
- Brain mask: `ch2bet > 0`.
- Licence: BSD-3-Clause, Chris Rorden (MRIcron); see `LICENSE`. Colin27: Holmes et al. 1998, MNI.

## How it was made

From the repository root, with the originals in `../shared/data/colin27/`:

    python scripts/make_demo_data.py

The script is deterministic (numpy generator seeded with {seed}). Every file is made from the
1 mm originals in one resampling step: one spatial transform applied to the image (linear) and the
mask (nearest neighbour), so each mask lies on its image's grid and matches it exactly. Output
grids are centred on the original field of view. Directions are ITK/LPS, row-major.

## Files
"""

DESCRIPTIONS = {
    "train/colin27": (
        "Training pair. T1 resampled to 2 mm isotropic (linear), same physical extent, direction "
        "and centre as the original; stored uint8 like the original."
    ),
    "heldout/colin27_deformed": (
        "Random smooth B-spline deformation (4 x 4 x 4 mesh) composed with a small rotation, "
        "gamma change and a smooth multiplicative bias field; anisotropic 1.5 x 1.5 x 3.0 mm "
        "(thick axial slices); stored int16."
    ),
    "heldout/colin27_reoriented": (
        "Rotated and scaled to a smaller head (x 0.93); stored in sagittal axis order (the "
        "direction matrix is a permutation with flips, the physical content is unchanged); "
        "1.2 x 1.2 x 2.4 mm; Rician noise and a different intensity scale; stored int16."
    ),
    "heldout/colin27_lowres": (
        "3 mm isotropic, slightly rotated and scaled to a larger head (x 1.07), non-brain tissue "
        "(scalp, skull, fat) made brighter, overall contrast reduced; stored uint8."
    ),
}


def write_provenance(out: Path, records: dict[str, dict[str, object]]) -> None:
    """Write ``PROVENANCE.md`` (with the drawn parameters) and ``LICENSE``."""
    lines = [PROVENANCE_HEAD.format(seed=SEED)]
    for key, record in records.items():
        lines.append(f"### `{key}_t1.nii.gz`, `{key}_brain.nii.gz`\n")
        lines.append(textwrap.fill(DESCRIPTIONS[key], width=100) + "\n")
        for name, value in record.items():
            lines.append(f"- {name}: {value}")
        lines.append("")
    (out / "PROVENANCE.md").write_text("\n".join(lines))
    (out / "LICENSE").write_text(LICENSE_TEXT)


def write(array: np.ndarray, reference: sitk.Image, path: Path) -> None:
    """Write ``array`` (Z, Y, X) with the geometry of ``reference`` as compressed NIfTI."""
    image = sitk.GetImageFromArray(array)
    image.CopyInformation(reference)
    path.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(image, str(path), useCompression=True)


def describe(reference: sitk.Image) -> str:
    """One line of geometry for the provenance file."""
    direction = tuple(
        round(v) if abs(v - round(v)) < 1e-9 else round(v, 3) for v in reference.GetDirection()
    )
    spacing = tuple(round(v, 3) for v in reference.GetSpacing())
    return f"size {reference.GetSize()}, spacing {spacing} mm, direction {direction}"


def main() -> None:
    """Read the Colin27 originals and write the demo bundle."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--source", type=Path, default=DEFAULT_SOURCE)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()

    t1 = sitk.ReadImage(str(args.source / "ch2.nii.gz"))
    bet = sitk.ReadImage(str(args.source / "ch2bet.nii.gz"))
    mask = sitk.Cast(bet > 0, sitk.sitkUInt8)
    mask.CopyInformation(t1)
    rng = np.random.default_rng(SEED)
    out: Path = args.out

    records: dict[str, dict[str, object]] = {}
    image, label, ref = make_train(t1, mask)
    write(image, ref, out / "train" / "colin27_t1.nii.gz")
    write(label, ref, out / "train" / "colin27_brain.nii.gz")
    records["train/colin27"] = {"geometry": describe(ref)}

    for name, make in (
        ("colin27_deformed", make_deformed),
        ("colin27_reoriented", make_reoriented),
        ("colin27_lowres", make_lowres),
    ):
        image, label, ref, params = make(t1, mask, rng)
        write(image, ref, out / "heldout" / f"{name}_t1.nii.gz")
        write(label, ref, out / "heldout" / f"{name}_brain.nii.gz")
        records[f"heldout/{name}"] = {"geometry": describe(ref), **params}

    write_provenance(out, records)
    for key, record in records.items():
        print(key, json.dumps(record))


if __name__ == "__main__":
    main()
