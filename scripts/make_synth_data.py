"""Derive the small anatomy files shipped in ``src/volseg/synth/data/`` (run once).

From the repository root, with the originals in ``../shared/data/``::

    python scripts/make_synth_data.py

Every output is the original resampled to 2 mm isotropic in one step (linear for intensities and
probability maps, nearest neighbour for the atlas labels), on a grid over the lower 65 % of the
brain box (Colin27) or the brain box (MNI152) plus 8 mm, same direction as the original.
Deterministic (no randomness).
The synth generators read only these files at run time, never ``../shared``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import SimpleITK as sitk

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
OUT = ROOT / "src" / "volseg" / "synth" / "data"
SPACING = 2.0
MARGIN_MM = 8.0
COLIN_TOP = 0.65  # Colin27 field of view: the lower 65 % of the brain box (skull base to
# the corpus callosum), which holds the hippocampi and amygdalae, plus the margin
# AAL values in aal.nii.gz (first column of aal.nii.txt) -> our label
AAL_TARGETS = {37: 1, 38: 2, 41: 3, 42: 4}  # Hippocampus_L/R, Amygdala_L/R


def _grid(reference: sitk.Image, mask: np.ndarray, top: float = 1.0) -> sitk.Image:
    """A 2 mm grid over the bounding box of ``mask`` (array order z, y, x) plus a margin;
    ``top`` < 1 keeps only that lower fraction of the box along array axis 0 (z)."""
    idx = np.argwhere(mask)
    lo_zyx, hi_zyx = idx.min(0), idx.max(0)
    hi_zyx[0] = lo_zyx[0] + int((hi_zyx[0] - lo_zyx[0]) * top)
    lo = [int(v) for v in lo_zyx[::-1]]  # x, y, z
    hi = [int(v) for v in hi_zyx[::-1]]
    first = np.array(reference.TransformContinuousIndexToPhysicalPoint([float(v) for v in lo]))
    spacing0 = np.array(reference.GetSpacing())
    extent = (np.array(hi) - np.array(lo)) * spacing0 + 2 * MARGIN_MM
    size = [int(np.ceil(e / SPACING)) + 1 for e in extent]
    direction = np.array(reference.GetDirection()).reshape(3, 3)
    origin = first - direction @ np.full(3, MARGIN_MM)
    grid = sitk.Image(size, sitk.sitkUInt8)
    grid.SetSpacing((SPACING,) * 3)
    grid.SetOrigin(tuple(float(v) for v in origin))
    grid.SetDirection(reference.GetDirection())
    return grid


def _resample(image: sitk.Image, grid: sitk.Image, nearest: bool, pixel: int) -> sitk.Image:
    interp = sitk.sitkNearestNeighbor if nearest else sitk.sitkLinear
    out = sitk.Resample(image, grid, sitk.Transform(), interp, 0.0, sitk.sitkFloat32)
    return sitk.Cast(sitk.Round(out) if pixel != sitk.sitkFloat32 else out, pixel)


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    # Colin27 head + AAL hippocampus/amygdala
    t1 = sitk.ReadImage(str(SHARED / "colin27" / "ch2.nii.gz"))
    aal = sitk.ReadImage(str(SHARED / "colin27" / "aal.nii.gz"))
    brain = sitk.GetArrayFromImage(sitk.ReadImage(str(SHARED / "colin27" / "ch2bet.nii.gz"))) > 0
    grid = _grid(t1, brain, top=COLIN_TOP)
    sitk.WriteImage(_resample(t1, grid, False, sitk.sitkUInt8), str(OUT / "colin27_t1.nii.gz"))
    aal_array = sitk.GetArrayFromImage(aal)
    targets = np.zeros(aal_array.shape, np.uint8)
    for value, label in AAL_TARGETS.items():
        targets[aal_array == value] = label
    assert set(np.unique(targets)) == {0, 1, 2, 3, 4}, "AAL values not found"
    target_image = sitk.GetImageFromArray(targets)
    target_image.CopyInformation(aal)
    sitk.WriteImage(
        _resample(target_image, grid, True, sitk.sitkUInt8),
        str(OUT / "colin27_aal_hipp_amyg.nii.gz"),
    )
    # MNI152 2009a template + GM/WM probability maps
    mni = SHARED / "mni152"
    t1m = sitk.ReadImage(str(mni / "mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz"))
    gm = sitk.ReadImage(str(mni / "mni_icbm152_gm_tal_nlin_sym_09a_converted.nii.gz"))
    wm = sitk.ReadImage(str(mni / "mni_icbm152_wm_tal_nlin_sym_09a_converted.nii.gz"))
    grid = _grid(t1m, sitk.GetArrayFromImage(t1m) > 0)
    for name, image in (("t1", t1m), ("gm", gm), ("wm", wm)):
        out = _resample(image, grid, False, sitk.sitkUInt8)
        sitk.WriteImage(out, str(OUT / f"mni152_{name}.nii.gz"))
    for f in sorted(OUT.glob("*.nii.gz")):
        image = sitk.ReadImage(str(f))
        print(f.name, image.GetSize(), f.stat().st_size, "bytes")


if __name__ == "__main__":
    main()
