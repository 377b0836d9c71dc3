"""``brats-like``: four MR contrasts with nested tumour regions (the BraTS task, semi-synthetic).

Real anatomy: the MNI152 2009a template T1 and its grey/white-matter probability maps (shipped
2 mm derivatives, ``data/PROVENANCE.md``), made into "another subject" by volseg's random
B-spline deformation and affine (:mod:`volseg.data.transforms`). On that warped head one tumour
is drawn as three level sets of one perturbed ellipsoidal distance field, so the regions nest
by construction, with the BraTS label convention (Menze et al. 2015; Bakas et al. 2018):

* 1 necrotic / non-enhancing core, innermost;
* 4 enhancing tumour, a rim of at least 2 voxels around 1;
* 2 peritumoural oedema, at least 2 voxels around the core, cut to the brain.

Evaluated as regions: whole tumour (1, 2, 4) ⊃ tumour core (1, 4) ⊃ enhancing (4).

Contrasts (skull-stripped, background 0, int16 x 1000): ``t1`` is the template T1; ``t2`` and
``flair`` are made from the tissue fractions (CSF bright on T2, dark on FLAIR); ``t1ce`` is the
T1 with the rim enhancing. Lesion appearance per contrast: oedema bright on t2/flair and dark on
t1; enhancing rim bright on t1ce; necrosis dark on t1/t1ce/flair, bright on t2; values jittered
per case with a smooth texture. Then one bias field, a per-channel shift/scale and noise.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
from scipy import ndimage

from volseg.data.transforms import (
    Compose,
    RandomBiasField,
    RandomIntensityShiftScale,
    RandomNoise,
)
from volseg.synth._anatomy import like, smooth_noise, subject_warp, warp
from volseg.synth.base import SynthCase, SynthGenerator, load_anatomy, register_synth

__all__ = ["BratsLike"]

MNI_SOURCES = (
    "- MNI ICBM152 2009a nonlinear symmetric template, skull-stripped T1 and grey/white-matter "
    "probability maps (197 x 233 x 189, 1 mm), from PyPI `nilearn` 0.14.1 "
    "(`nilearn/datasets/data/`). Licence: nilearn BSD-3-Clause; MNI template notice "
    "(permissive); see `LICENSE`. Fonov et al. 2009, 2011.",
    "- Shipped derivative used: `volseg/synth/data/mni152_t1.nii.gz`, `mni152_gm.nii.gz`, "
    "`mni152_wm.nii.gz` (2 mm, made by `scripts/make_synth_data.py`; see "
    "`volseg/synth/data/PROVENANCE.md`).",
)

# region intensities (oedema, enhancing, necrosis) per contrast; healthy WM is about 0.8 on t1
_APPEARANCE = {
    "t1": (0.45, 0.55, 0.22),
    "t1ce": (0.5, 1.25, 0.22),
    "t2": (0.9, 0.7, 1.0),
    "flair": (1.0, 0.8, 0.4),
}


@register_synth("brats-like")
class BratsLike(SynthGenerator):
    """Nested tumours (labels 1, 2, 4) in warped MNI152 heads, four contrasts, 3-D.

    Args:
        spacing: isotropic voxel size in mm (2 mm: 81 x 99 x 86 voxels; 3 mm for tiny tests).
        radius_mm: range of the oedema's mean radius (the core and necrosis are fractions of it).
        bspline_sigma_mm: std of the B-spline control displacements (3 x 3 x 3 mesh cells).
        noise: largest Gaussian noise std (contrast units, healthy WM about 0.8).
    """

    description = "Four MR contrasts (t1, t1ce, t2, flair) with nested tumour regions (1, 2, 4)"
    channel_names = ("t1", "t1ce", "t2", "flair")
    labels: ClassVar[dict[int, str]] = {
        0: "background",
        1: "necrotic_core",
        2: "oedema",
        4: "enhancing_tumour",
    }
    dims = 3
    sources = MNI_SOURCES
    licence_file = "LICENSE"

    def __init__(
        self,
        spacing: float = 2.0,
        radius_mm: tuple[float, float] = (18.0, 35.0),
        bspline_sigma_mm: float = 3.0,
        noise: float = 0.04,
    ) -> None:
        self.spacing = float(spacing)
        self.radius_mm = (float(radius_mm[0]), float(radius_mm[1]))
        self.bspline_sigma_mm = float(bspline_sigma_mm)
        self.noise = float(noise)
        self._t1 = load_anatomy("mni152_t1.nii.gz", self.spacing)
        self._gm = load_anatomy("mni152_gm.nii.gz", self.spacing)
        self._wm = load_anatomy("mni152_wm.nii.gz", self.spacing)

    def parameters(self) -> dict[str, Any]:
        return {
            "spacing_mm": self.spacing,
            "shape_zyx": list(self._t1.shape),
            "bspline": {"grid": 3, "sigma_mm": self.bspline_sigma_mm},
            "affine": {"degrees": 8.0, "scale": [0.92, 1.08]},
            "oedema_radius_mm": list(self.radius_mm),
            "core_fraction": [0.45, 0.7],
            "necrosis_fraction_of_core": [0.35, 0.7],
            "min_rim_voxels": 2.0,
            "appearance_oedema_enhancing_necrosis": _APPEARANCE,
            "bias_field": {"strength": 0.25, "grid": 2},
            "shift_scale": {"shift": 0.05, "scale": 0.1},
            "noise_std_max": self.noise,
            "stored": "int16, x 1000, background 0",
        }

    def make_case(self, rng: np.random.Generator) -> SynthCase:
        stack = np.concatenate(
            [
                self._t1.array / 255.0,
                self._gm.array / 255.0,
                self._wm.array / 255.0,
                (self._t1.array > 0).astype(np.float32),
            ]
        )
        spacing = self._t1.spacing_zyx
        warped, _, spatial = warp(
            subject_warp(8.0, (0.92, 1.08), 3, self.bspline_sigma_mm), stack, None, spacing, rng
        )
        t1, gm, wm, brain_soft = np.clip(warped, 0.0, 1.0)
        brain = brain_soft > 0.5
        csf = np.clip(1.0 - gm - wm, 0.0, 1.0) * brain
        label, lesion = self._tumour(brain, wm, rng)

        soft = [  # anti-aliased region indicators: lesion-or-more, core, necrosis
            ndimage.gaussian_filter((label > 0).astype(np.float32), 0.6),
            ndimage.gaussian_filter(np.isin(label, (1, 4)).astype(np.float32), 0.6),
            ndimage.gaussian_filter((label == 1).astype(np.float32), 0.6),
        ]
        texture = 1.0 + 0.08 * smooth_noise(rng, label.shape, 1.5)
        base = {
            "t1": t1,
            "t1ce": t1,
            "t2": 0.35 * wm + 0.55 * gm + 1.0 * csf,
            "flair": 0.55 * wm + 0.75 * gm + 0.12 * csf,
        }
        jitter = rng.uniform(0.9, 1.1, (4, 3))
        channels = []
        for c, name in enumerate(self.channel_names):
            oedema, enhancing, necrosis = np.asarray(_APPEARANCE[name]) * jitter[c]
            inner = enhancing * (1 - soft[2]) + necrosis * soft[2]
            lesion_value = (oedema * (1 - soft[1]) + inner * soft[1]) * texture
            channels.append(base[name] * (1 - soft[0]) + lesion_value * soft[0])
        image = np.stack(channels).astype(np.float32)

        intensity = Compose(
            [
                RandomBiasField(strength=0.25, grid=2),
                RandomIntensityShiftScale(shift=0.05, scale=0.1),
                RandomNoise(std=self.noise),
            ]
        )
        image, _, changes = warp(intensity, image, None, spacing, rng)
        image = np.where(brain_soft[None] > 0.5, image, 0.0)
        image = np.clip(np.round(image * 1000.0), 0, 32767).astype(np.int16)
        ref = self._t1
        return SynthCase(
            tuple(like(ref, channel) for channel in image),
            like(ref, label),
            params={
                "tumour": lesion,
                "voxels": {str(k): int((label == k).sum()) for k in (1, 2, 4)},
                "appearance_jitter": np.round(jitter, 4).tolist(),
                "transforms": {**spatial, **changes},
            },
        )

    def _tumour(
        self, brain: np.ndarray, wm: np.ndarray, rng: np.random.Generator
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """The label map (uint8) and the drawn tumour parameters."""
        sp = self.spacing
        rim = 2.0 * sp  # mm, smallest thickness of the rim and of the oedema around the core
        r_oedema = max(float(rng.uniform(*self.radius_mm)), 2.6 * rim)
        r_core = min(float(rng.uniform(0.45, 0.7)) * r_oedema, r_oedema - rim)
        r_core = max(r_core, 1.6 * rim)
        r_necrosis = min(float(rng.uniform(0.35, 0.7)) * r_core, r_core - rim)
        r_necrosis = max(r_necrosis, 0.6 * rim)
        r_oedema = max(r_oedema, r_core + rim)
        axes = rng.uniform(0.8, 1.25, 3)
        noise = np.clip(smooth_noise(rng, brain.shape, 10.0 / sp), -2.0, 2.0)
        # centre: in white matter where the whole core (worst case of the field) stays in the brain
        depth = ndimage.distance_transform_edt(brain, sampling=(sp,) * 3)
        need = r_core * float(axes.max()) / 0.8 + sp
        candidates = np.argwhere((depth > need) & (wm > 0.3))
        if len(candidates) == 0:
            candidates = np.argwhere(depth >= depth.max())
        centre = candidates[rng.integers(len(candidates))]
        grid = np.indices(brain.shape, dtype=np.float32)
        dist = np.zeros(brain.shape, np.float32)
        for axis in range(3):
            dist += ((grid[axis] - centre[axis]) * sp / axes[axis]) ** 2
        dist = np.sqrt(dist) * (1.0 + 0.1 * noise)
        label = np.zeros(brain.shape, np.uint8)
        label[(dist < r_oedema) & brain] = 2
        label[dist < r_core] = 4
        label[dist < r_necrosis] = 1
        params = {
            "centre_voxel_zyx": [int(v) for v in centre],
            "radius_mm": {
                "oedema": round(r_oedema, 2),
                "core": round(r_core, 2),
                "necrosis": round(r_necrosis, 2),
            },
            "axis_factors": np.round(axes, 4).tolist(),
        }
        return label, params
