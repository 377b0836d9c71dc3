"""Run a fully convolutional network over a whole volume, at once or in overlapping windows.

Used by validation (training) and by :mod:`volseg.inference`. The stitching buffer has the size
of the output; windows are moved to the model's device one batch at a time.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["pad_to_multiple", "sliding_window_forward", "window_starts"]


def pad_to_multiple(x: torch.Tensor, divisor: int) -> tuple[torch.Tensor, tuple[int, ...]]:
    """Pad the spatial axes of ``(B, C, *spatial)`` at their end up to a multiple of ``divisor``.

    Returns the padded tensor and the original spatial shape (to crop back).
    """
    shape = tuple(x.shape[2:])
    pads: list[int] = []
    for size in reversed(shape):
        pads += [0, (-size) % divisor]
    if any(pads):
        x = F.pad(x, pads, mode="replicate")
    return x, shape


def window_starts(size: int, window: int, overlap: float) -> list[int]:
    """Start indices along one axis so windows of ``window`` cover ``size`` with ``overlap``."""
    if window >= size:
        return [0]
    step = max(1, int(window * (1.0 - overlap)))
    starts = list(range(0, size - window + 1, step))
    if starts[-1] != size - window:
        starts.append(size - window)
    return starts


def _forward(model: nn.Module, x: torch.Tensor, divisor: int) -> torch.Tensor:
    padded, shape = pad_to_multiple(x, divisor)
    out = model(padded)
    if isinstance(out, (tuple, list)):
        out = out[0]
    return out[(slice(None), slice(None), *(slice(0, s) for s in shape))]


@torch.no_grad()
def sliding_window_forward(
    model: nn.Module,
    image: torch.Tensor,
    window: Sequence[int] | None = None,
    overlap: float = 0.5,
    batch_size: int = 1,
    divisor: int = 1,
) -> torch.Tensor:
    """Network outputs ``(K, *spatial)`` for an image ``(C, *spatial)``.

    Args:
        window: window size in array order; ``None`` (or a window at least the image's size)
            runs the whole volume in one pass.
        overlap: fraction shared by neighbouring windows; overlapping outputs are averaged.
        divisor: inputs are padded to a multiple of this (e.g. 16 for V-Net's 4 downsamplings).
    """
    device = next(model.parameters()).device
    shape = tuple(image.shape[1:])
    if window is None or all(w >= s for w, s in zip(window, shape)):
        return _forward(model, image[None].to(device), divisor)[0].float().cpu()
    window = tuple(min(w, s) for w, s in zip(window, shape))
    starts = [window_starts(s, w, overlap) for s, w in zip(shape, window)]
    corners = list(itertools.product(*starts))
    output: torch.Tensor | None = None
    counts = torch.zeros((1, *shape), dtype=torch.float32)
    for first in range(0, len(corners), batch_size):
        chunk = corners[first : first + batch_size]
        slices = [tuple(slice(c, c + w) for c, w in zip(corner, window)) for corner in chunk]
        batch = torch.stack([image[(slice(None), *s)] for s in slices]).to(device)
        result = _forward(model, batch, divisor).float().cpu()
        if output is None:
            output = torch.zeros((result.shape[1], *shape), dtype=torch.float32)
        for s, r in zip(slices, result):
            output[(slice(None), *s)] += r
            counts[(slice(None), *s)] += 1.0
    assert output is not None
    return output / counts
