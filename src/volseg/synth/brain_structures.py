"""``brain-structures``: left/right hippocampus and amygdala in T1 heads (the V-Net regime).

Small, imbalanced 3-D targets (about 0.5 % of the voxels at 2 mm): the AAL atlas regions
Hippocampus_L/R and Amygdala_L/R on the Colin27 T1 scan (shipped 2 mm derivatives, see
``data/PROVENANCE.md``). Each case is "another subject" made by volseg's own random transforms
(:mod:`volseg.data.transforms`), applied once to the whole volume and its label map: a smooth
cubic B-spline deformation, a rotation and isotropic scaling, then a gamma contrast change, a
smooth multiplicative bias field and Gaussian noise.

Note: one real subject underlies every case, so a model trained on it learns one anatomy under
known perturbations, not population variability (Milletari et al., 2016, V-Net, trained on 50
prostate MRIs with the same B-spline augmentation).
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from volseg.data.transforms import Compose, RandomBiasField, RandomGamma, RandomNoise
from volseg.io import Volume
from volseg.synth._anatomy import like, subject_warp, warp
from volseg.synth.base import SynthCase, SynthGenerator, load_anatomy, register_synth

__all__ = ["BrainStructures"]

_COLIN_SOURCES = (
    "- Colin27 T1 MRI with skull (`ch2.nii.gz`, 181 x 217 x 181, 1 mm) and the AAL atlas on the "
    "same grid (`aal.nii.gz`, `aal.nii.txt`), from Debian `mricron-data` 1.2.20211006 "
    "(`usr/share/mricron/templates/`). Licence: BSD-3-Clause, Chris Rorden (MRIcron); see "
    "`LICENSE`. Colin27: Holmes et al. 1998, MNI. AAL: Tzourio-Mazoyer et al. 2002.",
    "- Shipped derivative used: `volseg/synth/data/colin27_t1.nii.gz` and "
    "`colin27_aal_hipp_amyg.nii.gz` (2 mm, made by `scripts/make_synth_data.py`; see "
    "`volseg/synth/data/PROVENANCE.md`).",
)


@register_synth("brain-structures")
class BrainStructures(SynthGenerator):
    """Hippocampi and amygdalae (AAL) in deformed Colin27 T1 heads, 3-D, int16 images.

    Args:
        spacing: isotropic voxel size in mm (2 mm: 81 x 99 x 58 voxels; 3 mm for tiny tests).
        bspline_sigma_mm: std of the B-spline control displacements (3 x 3 x 3 mesh cells).
        degrees: largest rotation about each axis.
        noise: largest Gaussian noise std, in the T1's uint8 units (0-255).
    """

    description = "Left/right hippocampus and amygdala (AAL) in T1 heads; small targets"
    channel_names = ("T1",)
    labels: ClassVar[dict[int, str]] = {
        0: "background",
        1: "hippocampus_left",
        2: "hippocampus_right",
        3: "amygdala_left",
        4: "amygdala_right",
    }
    dims = 3
    sources = _COLIN_SOURCES
    licence_file = "LICENSE"

    def __init__(
        self,
        spacing: float = 2.0,
        bspline_sigma_mm: float = 3.0,
        degrees: float = 8.0,
        noise: float = 8.0,
    ) -> None:
        self.spacing = float(spacing)
        self.bspline_sigma_mm = float(bspline_sigma_mm)
        self.degrees = float(degrees)
        self.noise = float(noise)
        self._t1 = load_anatomy("colin27_t1.nii.gz", self.spacing)
        self._label = load_anatomy("colin27_aal_hipp_amyg.nii.gz", self.spacing, nearest=True)

    def parameters(self) -> dict[str, Any]:
        return {
            "spacing_mm": self.spacing,
            "shape_zyx": list(self._t1.shape),
            "bspline": {"grid": 3, "sigma_mm": self.bspline_sigma_mm},
            "affine": {"degrees": self.degrees, "scale": [0.92, 1.08]},
            "gamma_range": [0.7, 1.4],
            "bias_field": {"strength": 0.3, "grid": 2},
            "noise_std_max": self.noise,
            "stored": "int16, 4 x the uint8 T1 scale",
        }

    def make_case(self, rng: np.random.Generator) -> SynthCase:
        spatial = subject_warp(self.degrees, (0.92, 1.08), 3, self.bspline_sigma_mm)
        transform = Compose(
            [
                *spatial.transforms,
                RandomGamma((0.7, 1.4)),
                RandomBiasField(strength=0.3, grid=2),
                RandomNoise(std=self.noise),
            ]
        )
        image, label, params = warp(
            transform,
            self._t1.array.astype(np.float32),
            self._label.array[0].astype(np.uint8),
            self._t1.spacing_zyx,
            rng,
        )
        assert label is not None
        t1 = np.clip(np.round(image[0] * 4.0), 0, 32767).astype(np.int16)
        fraction = float((label > 0).mean())
        return SynthCase(
            (like(self._t1, t1),),
            _label_volume(self._t1, label),
            params={"foreground_fraction": round(fraction, 5), "transforms": params},
        )


def _label_volume(reference: Volume, label: np.ndarray) -> Volume:
    return like(reference, label.astype(np.uint8))
