"""Deterministic preprocessing that records what it did, so predictions can be mapped back.

The steps, in order (each optional, see :class:`volseg.config.PreprocessConfig`):

1. **N4** bias-field correction (SimpleITK; V-Net's preprocessing) on the scan's own grid;
2. **reorient** to a canonical axis code (``LPS``...) by permuting/flipping axes (no interpolation);
3. **resample** to a target spacing (images linear or B-spline, labels nearest; on strongly
   anisotropic scans the thick axis is interpolated linearly, as nnU-Net does);
4. **crop** to the bounding box of non-zero image voxels;
5. **clip** to a CT window and **normalise** intensities per channel (z-score over non-zero
   voxels for BraTS, Myronenko 2018);
6. **crop or pad** to a fixed size, around the centre or the foreground (V-Net: 128x128x64).

Steps 2-4 and 6 only change the sampling grid, so the whole record is two grids: the scan's own
(``source``) and the one the network sees (``grid``). Undoing them is one resampling from
``grid`` back onto ``source`` in physical space (:func:`restore`), exact for any chain of
axis flips, permutations, crops, pads and spacing changes. N4 and clipping are not undone (a
prediction is a label map, not intensities).

Steps 1-3 run in SimpleITK, each channel converted from the :class:`~volseg.io.Volume` once
and back once; steps 4-6 work on the one resulting array.

Modules: :mod:`.grid` (``Grid``, ``PreprocessRecord``), :mod:`.spatial` (reorientation,
resampling), :mod:`.crop` (crop/pad boxes), :mod:`.intensity` (clip, normalise), :mod:`.n4`,
:mod:`.pipeline` (``preprocess``, ``restore``).
"""

from volseg.data.preprocessing.crop import CropMode, box_overlap, crop_or_pad_box
from volseg.data.preprocessing.grid import Grid, PreprocessRecord
from volseg.data.preprocessing.intensity import Normalization
from volseg.data.preprocessing.n4 import N4Mask, n4_correct
from volseg.data.preprocessing.pipeline import preprocess, restore
from volseg.data.preprocessing.spatial import (
    ImageInterpolation,
    Interpolation,
    reorient,
    resample_image,
    resample_to_grid,
)

__all__ = [
    "CropMode",
    "Grid",
    "ImageInterpolation",
    "Interpolation",
    "N4Mask",
    "Normalization",
    "PreprocessRecord",
    "box_overlap",
    "crop_or_pad_box",
    "n4_correct",
    "preprocess",
    "reorient",
    "resample_image",
    "resample_to_grid",
    "restore",
]
