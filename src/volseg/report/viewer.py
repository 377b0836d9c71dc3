"""The interactive viewer's parts: the NiiVue bundle and the volumes, both inlined into the page.

NiiVue (npm ``@niivue/niivue``, version :data:`NIIVUE_VERSION`, pinned in ``package.json`` and
``package-lock.json``) is never part of this repository; :func:`find_niivue` looks for its UMD
bundle, in order:

1. the file named by the environment variable ``VOLSEG_NIIVUE_JS``;
2. ``volseg/report/assets/niivue.umd.js`` inside the installed package (a wheel built after
   ``make setup`` carries it; ``make niivue-asset`` copies it there, it is git-ignored);
3. ``node_modules/@niivue/niivue/dist/niivue.umd.js`` of the checkout (``npm ci``);
4. the same under ``~/.cache/volseg`` (``npm install --prefix ~/.cache/volseg ...``, the
   command :data:`GET_NIIVUE` that a pip-only user runs once).

Volumes go in as gzip NIfTI, base64, on the scan's own grid (spacing, origin and direction as on
disk) unless a case holds more than ``max_voxels`` voxels: then every axis is subsampled by
the smallest integer factor that fits, and the page says so.
"""

from __future__ import annotations

import base64
import math
import os
import tempfile
from pathlib import Path

import numpy as np

from volseg.io import Volume

__all__ = [
    "GET_NIIVUE",
    "MAX_VOXELS",
    "NIIVUE_VERSION",
    "find_niivue",
    "nifti_base64",
    "niivue_script",
    "shrink_factor",
    "subsample",
]

NIIVUE_VERSION = "0.69.0"
"""The version pinned in package.json (a test keeps the two equal)."""

_BUNDLE = Path("node_modules") / "@niivue" / "niivue" / "dist" / "niivue.umd.js"
_CACHE = Path("~/.cache/volseg").expanduser()

GET_NIIVUE = f"npm install --prefix ~/.cache/volseg @niivue/niivue@{NIIVUE_VERSION}"
"""The one command that makes the viewer available to a pip-only install."""

MAX_VOXELS = 16_000_000
"""Default per-case limit of voxels in the viewer (a 252^3 scan); larger cases are subsampled."""


def find_niivue() -> Path | None:
    """The NiiVue UMD bundle to inline, or None (see the module docstring for the search order).

    Raises:
        OSError: when ``VOLSEG_NIIVUE_JS`` names a file that does not exist.
    """
    env = os.environ.get("VOLSEG_NIIVUE_JS")
    if env:
        path = Path(env).expanduser()
        if not path.is_file():
            raise OSError(f"{path}: VOLSEG_NIIVUE_JS names no file")
        return path
    here = Path(__file__).resolve()
    candidates = [here.parent / "assets" / "niivue.umd.js"]
    candidates += [parent / _BUNDLE for parent in here.parents]
    candidates += [Path.cwd() / _BUNDLE, _CACHE / _BUNDLE]
    return next((p for p in candidates if p.is_file()), None)


NIIVUE_MARK = "// @niivue/niivue UMD bundle from npm, inlined by volseg"


def niivue_script(bundle: Path) -> str:
    """The bundle's code, marked by a first line (:data:`NIIVUE_MARK`) naming what it is."""
    return f"{NIIVUE_MARK} ({bundle.name})\n" + bundle.read_text(encoding="utf-8")


def shrink_factor(shape: tuple[int, ...], max_voxels: int) -> int:
    """The smallest integer step along every axis that brings ``shape`` to ``max_voxels``."""
    factor = 1
    while math.prod(-(-s // factor) for s in shape) > max_voxels and factor < max(shape):
        factor += 1
    return factor


def subsample(volume: Volume, factor: int) -> Volume:
    """Every ``factor``-th voxel along each axis: spacing times ``factor``, same origin and
    direction, so each kept voxel stays at its physical position (nearest neighbour, no blur)."""
    if factor == 1:
        return volume
    index = (slice(None),) + (slice(None, None, factor),) * volume.ndim
    return Volume(
        np.ascontiguousarray(volume.array[index]),
        tuple(s * factor for s in volume.spacing),
        volume.origin,
        volume.direction,
        volume.source,
    )


def _compact(array: np.ndarray, label: bool) -> np.ndarray:
    """A smaller dtype holding the same values: uint8/int16 for integer data, else float32."""
    if array.size == 0:
        return array.astype(np.uint8 if label else np.float32)
    lo, hi = float(array.min()), float(array.max())
    integral = (
        label or np.issubdtype(array.dtype, np.integer) or bool(np.all(np.mod(array, 1) == 0))
    )
    if integral and lo >= 0 and hi <= 255:
        return array.astype(np.uint8)
    if integral and lo >= -32768 and hi <= 32767:
        return array.astype(np.int16)
    return array.astype(np.float32)


def nifti_base64(volume: Volume, label: bool = False) -> str:
    """Channel 0 of ``volume`` as a gzip NIfTI file, base64-encoded (geometry kept)."""
    import SimpleITK as sitk

    compact = Volume(
        _compact(volume.array[:1], label), volume.spacing, volume.origin, volume.direction
    )
    with tempfile.TemporaryDirectory(prefix="volseg-report-") as tmp:
        path = Path(tmp) / "volume.nii.gz"
        sitk.WriteImage(compact.to_sitk(0), str(path), useCompression=True)
        return base64.b64encode(path.read_bytes()).decode("ascii")
