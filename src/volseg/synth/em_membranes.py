"""``em-membranes``: 2-D electron-microscopy-like images with membrane labels (procedural).

The ISBI 2012 EM segmentation task as used by Drozdzal et al. (2016): label 1 = cell membrane,
0 = cell interior, membranes a thin minority (about 15-20 % of the pixels). Each image:

1. cells as a Voronoi tessellation of uniformly scattered seeds (mean cell diameter drawn per
   image), curved by volseg's random B-spline deformation applied to the cell-id map (nearest
   neighbour; :mod:`volseg.data.transforms`);
2. membranes = pixels whose 4-neighbour lies in another cell (2 px), thickened by one pixel
   where a smooth random field is high (2-4 px);
3. the image: a grey level per cell, a smooth texture, dark organelle-like ellipses inside cells
   (unlabelled distractors), dark membranes, Gaussian blur, then Gaussian noise; uint8.

No real data: procedural (numpy, scipy). Pixel spacing is written as 1 (pixel units).
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
from scipy import ndimage
from scipy.spatial import cKDTree

from volseg.data.transforms import Compose, RandomBSplineDeformation, RandomNoise
from volseg.io import Volume
from volseg.synth._anatomy import smooth_noise, warp
from volseg.synth.base import SynthCase, SynthGenerator, register_synth

__all__ = ["EmMembranes"]


@register_synth("em-membranes")
class EmMembranes(SynthGenerator):
    """Voronoi cells with thin dark membranes, texture, blur and noise; 2-D uint8.

    Args:
        size: image side in pixels.
        cell_diameter: range of the mean cell diameter in pixels (drawn per image).
        noise: largest Gaussian noise std (intensity 0-1).
    """

    description = "2-D EM-like images (Voronoi cells, thin dark membranes); label 1 = membrane"
    channel_names = ("EM",)
    labels: ClassVar[dict[int, str]] = {0: "cell", 1: "membrane"}
    dims = 2

    def __init__(
        self,
        size: int = 256,
        cell_diameter: tuple[float, float] = (30.0, 45.0),
        noise: float = 0.08,
    ) -> None:
        self.size = int(size)
        self.cell_diameter = (float(cell_diameter[0]), float(cell_diameter[1]))
        self.noise = float(noise)

    def parameters(self) -> dict[str, Any]:
        return {
            "size": self.size,
            "cell_diameter_px": list(self.cell_diameter),
            "bspline": {"grid": 4, "sigma_mm": 0.08 * self.size / 4},
            "membrane_px": [2, 4],
            "blur_sigma_px": [0.7, 1.2],
            "noise_std_max": self.noise,
            "spacing": "1 (pixel units)",
        }

    def make_case(self, rng: np.random.Generator) -> SynthCase:
        n = self.size
        diameter = float(rng.uniform(*self.cell_diameter))
        count = max(round(n * n / (0.87 * diameter**2)), 2)
        seeds = rng.uniform(-0.05 * n, 1.05 * n, (count, 2))
        pixels = np.indices((n, n)).reshape(2, -1).T.astype(np.float64)
        cells = cKDTree(seeds).query(pixels)[1].reshape(n, n).astype(np.int32)
        bend = Compose([RandomBSplineDeformation(grid=4, sigma_mm=0.08 * n / 4)])
        _, warped, spatial = warp(bend, np.zeros((1, n, n), np.float32), cells, (1.0, 1.0), rng)
        assert warped is not None
        cells = warped

        edge = np.zeros((n, n), bool)
        edge[:-1] |= cells[:-1] != cells[1:]
        edge[1:] |= cells[1:] != cells[:-1]
        edge[:, :-1] |= cells[:, :-1] != cells[:, 1:]
        edge[:, 1:] |= cells[:, 1:] != cells[:, :-1]
        thick = smooth_noise(rng, (n, n), 6.0) > 0.3
        membrane = edge | (ndimage.binary_dilation(edge) & thick)

        grey = rng.uniform(0.55, 0.8, int(cells.max()) + 1)
        image = grey[cells] + 0.05 * smooth_noise(rng, (n, n), 2.0)
        image += 0.03 * smooth_noise(rng, (n, n), 0.7)
        organelles = _ellipses(rng, n, count, diameter)
        image = np.where(organelles > 0, image - organelles, image)
        image = np.where(membrane, rng.uniform(0.12, 0.3), image)
        blur = float(rng.uniform(0.7, 1.2))
        image = ndimage.gaussian_filter(image, blur).astype(np.float32)
        image, _, changes = warp(Compose([RandomNoise(self.noise)]), image[None], None, (1, 1), rng)
        image8 = np.clip(np.round(image[0] * 255.0), 0, 255).astype(np.uint8)
        geometry = Volume(np.zeros((1, n, n), np.uint8), (1.0, 1.0), (0.0, 0.0), (1.0, 0, 0, 1.0))
        return SynthCase(
            (geometry.with_array(image8[None]),),
            geometry.with_array(membrane.astype(np.uint8)[None]),
            params={
                "cells": count,
                "cell_diameter_px": round(diameter, 3),
                "blur_sigma_px": round(blur, 3),
                "membrane_fraction": round(float(membrane.mean()), 4),
                "transforms": {**spatial, **changes},
            },
        )


def _ellipses(rng: np.random.Generator, n: int, cells: int, diameter: float) -> np.ndarray:
    """Darkening (0 outside) of about one small ellipse per cell, random size and angle."""
    out = np.zeros((n, n), np.float32)
    yy, xx = np.indices((n, n), dtype=np.float32)
    for _ in range(int(rng.poisson(cells))):
        cy, cx = rng.uniform(0, n, 2)
        a, b = rng.uniform(0.06, 0.16, 2) * diameter
        angle = rng.uniform(0, np.pi)
        u = np.cos(angle) * (yy - cy) + np.sin(angle) * (xx - cx)
        v = -np.sin(angle) * (yy - cy) + np.cos(angle) * (xx - cx)
        inside = (u / a) ** 2 + (v / b) ** 2 < 1.0
        out[inside] = np.maximum(out[inside], rng.uniform(0.15, 0.3))
    return out
