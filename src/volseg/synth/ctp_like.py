"""``ctp-like``: 2-D perfusion maps with a stroke core drawn on a separate DWI contrast.

The ISLES 2018 setting used by Liu et al.: the inputs are CT-perfusion maps (CBF, CBV, MTT,
Tmax) of a slice; the reference is the infarct core outlined on diffusion-weighted MR (DWI),
which the model does not see and which is smaller than the perfusion deficit.

Real anatomy: an axial slice of the MNI152 2009a template's grey/white-matter probability maps
(shipped 2 mm derivatives, ``data/PROVENANCE.md``), a different slice per case, made into
"another subject" by volseg's random B-spline deformation and affine
(:mod:`volseg.data.transforms`). Healthy perfusion from the tissue fractions (CBF 55 / 22
ml/100 g/min, CBV 4 / 2 ml/100 g in grey / white matter, ``MTT = 60 CBV / CBF`` s, Tmax about
1 s). A smooth deficit ``f`` in (0, 1] (a perturbed anisotropic Gaussian in one hemisphere):
``CBF x (1 - 0.85 f)``, ``CBV x (1 - 0.6 f^3)`` (kept in the penumbra), ``Tmax + 14 f`` s. The
perfusion deficit is ``Tmax > 6 s`` (``f`` above about 0.35); the core, label 1, is ``f`` above a
per-case threshold in (0.7, 0.85), in tissue, and it is bright on the ``dwi`` contrast written to
``dwiTr/`` / ``dwiTs/`` (not an input channel). Maps in physical units, float32, 0 outside the
brain, with Gaussian noise.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
from scipy import ndimage

from volseg.data.transforms import Compose, RandomNoise
from volseg.io import Volume
from volseg.synth._anatomy import smooth_noise, subject_warp, warp
from volseg.synth.base import SynthCase, SynthGenerator, load_anatomy, register_synth
from volseg.synth.brats_like import MNI_SOURCES

__all__ = ["CtpLike"]

# fixed scale of each map (noise is drawn on maps divided by these)
_SCALE = {"CBF": 60.0, "CBV": 5.0, "MTT": 15.0, "Tmax": 15.0}


@register_synth("ctp-like")
class CtpLike(SynthGenerator):
    """Perfusion maps (CBF, CBV, MTT, Tmax) of warped MNI152 slices, DWI-core labels, 2-D.

    Args:
        spacing: in-plane pixel size in mm (2 mm: 99 x 81 pixels; 3 mm for tiny tests).
        deficit_sigma_mm: range of the deficit's Gaussian width.
        noise: largest noise std, as a fraction of each map's scale (CBF 60, CBV 5, MTT 15,
            Tmax 15).
    """

    description = "2-D perfusion maps (CBF, CBV, MTT, Tmax); label: the core seen on DWI"
    channel_names = ("CBF", "CBV", "MTT", "Tmax")
    labels: ClassVar[dict[int, str]] = {0: "background", 1: "ischaemic_core"}
    dims = 2
    sources = MNI_SOURCES
    licence_file = "LICENSE"

    def __init__(
        self,
        spacing: float = 2.0,
        deficit_sigma_mm: tuple[float, float] = (14.0, 26.0),
        noise: float = 0.03,
    ) -> None:
        self.spacing = float(spacing)
        self.deficit_sigma_mm = (float(deficit_sigma_mm[0]), float(deficit_sigma_mm[1]))
        self.noise = float(noise)
        gm = load_anatomy("mni152_gm.nii.gz", self.spacing)
        wm = load_anatomy("mni152_wm.nii.gz", self.spacing)
        self._ref = gm
        self._tissue = np.concatenate([gm.array, wm.array]) / 255.0  # (2, Z, Y, X)
        area = (self._tissue.sum(0) > 0.5).sum(axis=(1, 2))
        self._slices = np.flatnonzero(area >= 0.6 * area.max())

    def parameters(self) -> dict[str, Any]:
        return {
            "spacing_mm": self.spacing,
            "shape_yx": list(self._tissue.shape[2:]),
            "axial_slices": [int(self._slices[0]), int(self._slices[-1])],
            "bspline": {"grid": 3, "sigma_mm": 3.0},
            "affine": {"degrees": 10.0, "scale": [0.92, 1.08]},
            "healthy": {"CBF_gm_wm": [55, 22], "CBV_gm_wm": [4, 2], "Tmax_s": "0.8 + 0.6 wm"},
            "deficit": "CBF x (1 - 0.85 f), CBV x (1 - 0.6 f^3), Tmax + 14 f",
            "deficit_sigma_mm": list(self.deficit_sigma_mm),
            "core_threshold_on_f": [0.7, 0.85],
            "noise_fraction_max": self.noise,
        }

    def make_case(self, rng: np.random.Generator) -> SynthCase:
        z = int(self._slices[rng.integers(len(self._slices))])
        sp = self.spacing
        brain_in = (self._tissue[:, z].sum(0) > 0.1).astype(np.float32)
        stack = np.concatenate([self._tissue[:, z], brain_in[None]])
        anatomy = subject_warp(10.0, (0.92, 1.08), 3, 3.0)
        warped, _, spatial = warp(anatomy, stack, None, (sp, sp), rng)
        gm, wm, brain_soft = np.clip(warped, 0.0, 1.0)
        brain = brain_soft > 0.5
        tissue = np.clip(gm + wm, 0.0, 1.0) * brain
        csf = np.clip(1.0 - gm - wm, 0.0, 1.0) * brain

        f, deficit = self._deficit(tissue, rng)
        threshold = float(rng.uniform(0.7, 0.85))
        core = (f > threshold) & (tissue > 0.3)

        cbf = (55.0 * gm + 22.0 * wm) * (1.0 - 0.85 * f)
        cbv = (4.0 * gm + 2.0 * wm) * (1.0 - 0.6 * f**3)
        mtt = np.where(tissue > 0.1, 60.0 * cbv / np.maximum(cbf, 1e-3), 0.0)
        tmax = (0.8 + 0.6 * wm + 14.0 * f) * (tissue > 0.1)
        maps = np.stack([cbf, cbv, np.minimum(mtt, 30.0), tmax]) / _scale()
        maps, _, changes = warp(Compose([RandomNoise(self.noise)]), maps, None, (sp, sp), rng)
        maps = np.where(brain[None], np.clip(maps, 0.0, None), 0.0) * _scale()

        gain = float(rng.uniform(1.6, 2.2))
        soft_core = ndimage.gaussian_filter(core.astype(np.float32), 0.7)
        dwi = (1.0 * gm + 0.85 * wm + 0.25 * csf) * (1.0 + (gain - 1.0) * soft_core)
        dwi, _, dwi_noise = warp(Compose([RandomNoise(0.05)]), dwi[None], None, (sp, sp), rng)
        dwi = np.where(brain, np.clip(dwi[0], 0.0, None), 0.0)

        geometry = self._slice_geometry(z)
        return SynthCase(
            tuple(_volume(geometry, m.astype(np.float32)) for m in maps),
            _volume(geometry, core.astype(np.uint8)),
            extras={"dwi": _volume(geometry, (dwi * 1000.0).astype(np.float32))},
            params={
                "axial_slice": z,
                "deficit": deficit,
                "core_threshold": round(threshold, 4),
                "dwi_core_gain": round(gain, 4),
                "core_pixels": int(core.sum()),
                "tmax_over_6s_pixels": int((maps[3] > 6.0).sum()),
                "transforms": {**spatial, **changes, "dwi": dwi_noise},
            },
        )

    def _deficit(
        self, tissue: np.ndarray, rng: np.random.Generator
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Deficit severity ``f`` (1 at the centre) in one hemisphere, and its parameters."""
        sp = self.spacing
        shape = tissue.shape
        x_mid = (shape[1] - 1) / 2
        depth = ndimage.distance_transform_edt(tissue > 0.3, sampling=(sp, sp))
        lateral = np.abs(np.arange(shape[1]) - x_mid)[None, :] * sp > 12.0
        candidates = np.argwhere((tissue > 0.5) & (depth > 6.0) & lateral)
        if len(candidates) == 0:
            candidates = np.argwhere(tissue >= tissue.max())
        centre = candidates[rng.integers(len(candidates))]
        sigma = rng.uniform(*self.deficit_sigma_mm, 2)
        angle = float(rng.uniform(0.0, np.pi))
        yy, xx = np.indices(shape, dtype=np.float32)
        dy, dx = (yy - centre[0]) * sp, (xx - centre[1]) * sp
        u = np.cos(angle) * dy + np.sin(angle) * dx
        v = -np.sin(angle) * dy + np.cos(angle) * dx
        r2 = (u / sigma[0]) ** 2 + (v / sigma[1]) ** 2
        noise = np.clip(smooth_noise(rng, shape, 8.0 / sp), -2.0, 2.0)
        f = np.exp(-0.5 * r2 * (1.0 + 0.15 * noise) ** 2) * (tissue > 0.1)
        params = {
            "centre_pixel_yx": [int(v) for v in centre],
            "sigma_mm": np.round(sigma, 3).tolist(),
            "angle_rad": round(angle, 4),
        }
        return f.astype(np.float32), params

    def _slice_geometry(self, z: int) -> Volume:
        """A 1-pixel 2-D volume carrying the in-plane geometry of axial slice ``z``."""
        ref = self._ref
        direction = ref.direction_matrix
        origin = np.asarray(ref.origin) + direction @ (np.array([0.0, 0.0, z]) * ref.spacing)
        return Volume(
            np.zeros((1, *self._tissue.shape[2:]), np.uint8),
            ref.spacing[:2],
            tuple(float(v) for v in origin[:2]),
            tuple(float(v) for v in direction[:2, :2].ravel()),
        )


def _scale() -> np.ndarray:
    return np.array([_SCALE[c] for c in CtpLike.channel_names], np.float32)[:, None, None]


def _volume(geometry: Volume, array: np.ndarray) -> Volume:
    return geometry.with_array(array[None])
