"""Intensity steps: clipping to a window and per-channel normalisation (recorded, not undone)."""

from __future__ import annotations

from typing import Literal

import numpy as np

from volseg.data.preprocessing._options import choose

__all__ = ["Normalization", "normalize"]

Normalization = Literal["zscore_nonzero", "zscore", "percentile", "none"]
NORMALIZATIONS: tuple[Normalization, ...] = ("zscore_nonzero", "zscore", "percentile", "none")


def normalize(
    array: np.ndarray,
    method: Normalization = "zscore_nonzero",
    clip_window: tuple[float, float] | None = None,
    clip_percentiles: tuple[float, float] = (0.5, 99.5),
) -> tuple[np.ndarray, list[float], list[float]]:
    """Clip to ``clip_window``, then normalise each channel of a ``(C, *S)`` array.

    Args:
        method: ``zscore_nonzero`` (mean and std over non-zero voxels, background stays 0; BraTS,
            Myronenko 2018), ``zscore`` (all voxels), ``percentile`` (clip to
            ``clip_percentiles``, then z-score) or ``none``.
        clip_window: ``[low, high]`` raw intensities (a CT window in HU); ``None`` skips.

    Returns:
        The float32 array and per channel ``shift`` and ``scale``: ``out = (x - shift) / scale``.
    """
    method = choose(method, NORMALIZATIONS, "preprocess.normalize")
    if clip_window is not None:
        array = np.clip(array, *clip_window)
    out = np.empty(array.shape, dtype=np.float32)
    shifts, scales = [], []
    for c, channel in enumerate(array):
        data = channel.astype(np.float32, copy=False)
        if method == "none":
            shift, scale = 0.0, 1.0
        else:
            values = data[data != 0] if method == "zscore_nonzero" else data.ravel()
            if values.size == 0:
                values = data.ravel()
            if method == "percentile":
                low, high = np.percentile(values, clip_percentiles)
                data = np.clip(data, low, high)
                values = np.clip(values, low, high)
            shift = float(values.mean())
            scale = float(values.std()) or 1.0
        out[c] = (data - shift) / scale
        if method == "zscore_nonzero":
            out[c][channel == 0] = 0.0  # background stays at the new zero
        shifts.append(shift)
        scales.append(scale)
    return out, shifts, scales
