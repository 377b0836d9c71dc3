"""Run a fully convolutional network over a whole volume, at once or in overlapping windows.

:func:`predict_logits` is the one prediction path: validation during training and
:class:`volseg.inference.Predictor` both call it with the run's ``infer`` settings.
Overlapping window outputs are blended with a constant or a Gaussian importance map (centre
voxels count more than edge voxels, whose receptive field is cut by the window border; nnU-Net,
Isensee et al. 2021). Windows are cut from the image on the host and moved to the model's device
one batch at a time; the only full-size buffer is the output ``(K, *spatial)``: the summed
window weights it is divided by are rebuilt a slab at a time at the end.

Test-time augmentation by mirroring runs the whole window pass on each mirrored copy of the image
and averages the un-mirrored outputs, so a mirror-symmetric image gets a mirror-symmetric output
whatever the window grid.

A 2-D network over a 3-D image (``model_dims=2``) runs slice by slice along the first array axis,
as nnU-Net's 2d configuration and MONAI's ``SliceInferer`` do: the windows are ``(1, *window)``
and the slices of one batch go through the network together.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from volseg._device import to_device
from volseg.config import InferConfig

__all__ = [
    "count_windows",
    "gaussian_importance",
    "infer_bf16",
    "mirror_combinations",
    "pad_to_multiple",
    "predict_logits",
    "runs_on",
    "sliding_window_forward",
    "window_starts",
]

Forward = nn.Module | Callable[[torch.Tensor], torch.Tensor]  # a net, or any callable like one


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
    """Start indices along one axis so windows of ``window`` cover ``size`` with ``overlap``.

    Steps of ``window * (1 - overlap)`` from 0; the last window is moved back to end at ``size``.
    """
    if window >= size:
        return [0]
    step = max(1, int(window * (1.0 - overlap)))
    starts = list(range(0, size - window + 1, step))
    if starts[-1] != size - window:
        starts.append(size - window)
    return starts


def gaussian_importance(
    window: Sequence[int], sigma_scale: float = 0.125, floor: float = 1e-3
) -> torch.Tensor:
    """Gaussian blending weights ``window`` (float32), centred, sigma = ``sigma_scale * window``.

    The product of one 1-D Gaussian ``exp(-x^2 / (2 sigma^2))`` per axis (peak ~1), with values
    below ``floor`` raised to it so that every voxel of a window keeps a positive weight (the
    corners of a window would otherwise underflow). The same map as MONAI's ``gaussian`` mode.
    """
    weights = torch.ones((), dtype=torch.float32)
    for size in window:
        x = torch.arange(size, dtype=torch.float32) - (size - 1) / 2.0
        sigma = sigma_scale * size
        axis = torch.exp(x**2 / (-2.0 * sigma**2))
        weights = weights.unsqueeze(-1) * axis
    return weights.clamp_(min=max(float(weights.min()), floor))


def mirror_combinations(axes: Sequence[int]) -> list[tuple[int, ...]]:
    """Every subset of ``axes`` (the empty one first): the flips mirroring TTA averages over."""
    axes = tuple(sorted(set(axes)))
    return [c for n in range(len(axes) + 1) for c in itertools.combinations(axes, n)]


def _device_of(model: Forward) -> torch.device:
    if isinstance(model, nn.Module):
        for tensor in itertools.chain(model.parameters(), model.buffers()):
            return tensor.device
    return torch.device("cpu")


def _forward(model: Forward, x: torch.Tensor, divisor: int) -> torch.Tensor:
    padded, shape = pad_to_multiple(x, divisor)
    out = model(padded)
    if isinstance(out, (tuple, list)):
        out = out[0]
    return out[(slice(None), slice(None), *(slice(0, s) for s in shape))]


def _mirrored(
    corner: tuple[int, ...], shape: tuple[int, ...], window: tuple[int, ...], flip: tuple[int, ...]
) -> tuple[slice, ...]:
    """Slice in the original image of the window at ``corner`` of the image mirrored by ``flip``."""
    starts = [
        s - c - w if axis in flip else c
        for axis, (c, s, w) in enumerate(zip(corner, shape, window))
    ]
    return tuple(slice(c, c + w) for c, w in zip(starts, window))


def runs_on(model_dims: int, image_dims: int) -> bool:
    """Whether a ``model_dims``-D network can predict an ``image_dims``-D image here.

    Same dimensions, or a 2-D network over a 3-D image (slice by slice along the first axis).
    """
    return image_dims == model_dims or (model_dims, image_dims) == (2, 3)


class _SliceWise(nn.Module):
    """A 2-D network applied to every slice of ``(B, C, Z, Y, X)`` along ``Z``."""

    def __init__(self, model: Forward, divisor: int) -> None:
        super().__init__()
        self.model = model
        self.divisor = divisor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, channels, depth, *plane = x.shape
        slices = x.transpose(1, 2).reshape(batch * depth, channels, *plane)
        out = _forward(self.model, slices, self.divisor)
        return out.reshape(batch, depth, out.shape[1], *plane).transpose(1, 2)


@torch.no_grad()
def sliding_window_forward(
    model: Forward,
    image: torch.Tensor,
    window: Sequence[int] | None = None,
    overlap: float = 0.5,
    batch_size: int = 1,
    divisor: int = 1,
    *,
    blend: str = "constant",
    sigma_scale: float = 0.125,
    mirror_axes: Sequence[int] = (),
    model_dims: int | None = None,
) -> torch.Tensor:
    """Network outputs ``(K, *spatial)`` (float32, on the host) for an image ``(C, *spatial)``.

    Args:
        model: a network taking ``(B, C, *spatial)``; a tuple output contributes its first item.
        window: window size in array order; ``None`` (or a window at least the image's size)
            runs the whole volume in one pass.
        overlap: fraction shared by neighbouring windows (0 <= overlap < 1).
        batch_size: windows per forward pass.
        divisor: inputs are padded to a multiple of this (e.g. 16 for V-Net's 4 downsamplings).
        blend: ``constant`` (plain average of overlapping outputs) or ``gaussian``.
        sigma_scale: Gaussian sigma as a fraction of the window size.
        mirror_axes: spatial axes (0 = first spatial axis) for mirroring test-time augmentation.
            Every combination of flips is run (3 axes: 8 passes, slow on CPU); the result is the
            window pass over each mirrored image, mirrored back, all blended together.
        model_dims: spatial dimensions the network takes (``None``: the image's). A 2-D network
            on a 3-D image runs on its slices along the first axis; ``window`` (default: whole
            slices) and ``mirror_axes`` then refer to the in-plane axes.
    """
    spatial = image.ndim - 1
    if model_dims is not None and model_dims != spatial:
        if not runs_on(model_dims, spatial):
            raise ValueError(f"a {model_dims}-D network cannot run on a {spatial}-D image")
        plane = tuple(image.shape[2:]) if window is None else tuple(window)
        return sliding_window_forward(
            _SliceWise(model, divisor),
            image,
            (1, *plane),
            overlap,
            batch_size,
            blend=blend,
            sigma_scale=sigma_scale,
            mirror_axes=[a + 1 for a in mirror_axes],
        )
    if blend not in ("constant", "gaussian"):
        raise ValueError(f"blend must be 'constant' or 'gaussian', got {blend!r}")
    if not 0.0 <= overlap < 1.0:
        raise ValueError(f"overlap must be in [0, 1), got {overlap}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    if any(not 0 <= a < spatial for a in mirror_axes):
        raise ValueError(f"mirror_axes {tuple(mirror_axes)} outside 0..{spatial - 1}")
    device = _device_of(model)
    shape = tuple(image.shape[1:])
    if window is None or all(w >= s for w, s in zip(window, shape)):
        win, weights = shape, None  # whole volume: one window per mirroring
    else:
        win = tuple(min(w, s) for w, s in zip(window, shape))
        weights = gaussian_importance(win, sigma_scale) if blend == "gaussian" else None
    starts = [window_starts(s, w, overlap) for s, w in zip(shape, win)]
    jobs = [
        (flip, _mirrored(corner, shape, win, flip))
        for flip in mirror_combinations(mirror_axes)
        for corner in itertools.product(*starts)
    ]
    output: torch.Tensor | None = None
    for first in range(0, len(jobs), batch_size):
        chunk = jobs[first : first + batch_size]
        crops = [image[(slice(None), *s)] for _, s in chunk]
        crops = [c.flip([a + 1 for a in f]) if f else c for c, (f, _) in zip(crops, chunk)]
        batch = to_device(torch.stack(crops), device)
        result = _forward(model, batch, divisor).float().cpu()
        if output is None:
            output = torch.zeros((result.shape[1], *shape), dtype=torch.float32)
        for (flip, s), r in zip(chunk, result):
            if flip:
                r = r.flip([a + 1 for a in flip])
            index = (slice(None), *s)
            if weights is None:
                output[index] += r
            else:  # the Gaussian is mirror-symmetric: no need to flip it
                output[index].addcmul_(r, weights)
    assert output is not None
    _normalize_in_slabs(output, [s for _, s in jobs], weights)
    return output


def _normalize_in_slabs(
    output: torch.Tensor, windows: Sequence[tuple[slice, ...]], weights: torch.Tensor | None
) -> None:
    """Divide ``output`` ``(K, *spatial)`` in place by the summed window weights.

    The weight map is built a slab of rows (first spatial axis) at a time from the windows that
    reach the slab, in the order the window pass added them (so each sum is the same float32
    sum), instead of as a full-size buffer beside the output: a 512x512x300 volume saves 0.3 GB.
    """
    depth = output.shape[1]
    rows = max(16, min(s[0].stop - s[0].start for s in windows) // 2)
    for top in range(0, depth, rows):
        bottom = min(depth, top + rows)
        norm = torch.zeros((1, bottom - top, *output.shape[2:]), dtype=torch.float32)
        for s in windows:
            first, last = max(top, s[0].start), min(bottom, s[0].stop)
            if first >= last:
                continue
            target = (slice(None), slice(first - top, last - top), *s[1:])
            norm[target] += (
                1.0 if weights is None else weights[first - s[0].start : last - s[0].start]
            )
        output[:, top:bottom].div_(norm)


def count_windows(shape: Sequence[int], window: Sequence[int], overlap: float) -> int:
    """How many windows cover an image of ``shape`` (forward passes = this / batch size)."""
    return math.prod(len(window_starts(s, min(w, s), overlap)) for s, w in zip(shape, window))


def infer_bf16(infer: InferConfig, train_amp: str) -> bool:
    """Whether prediction runs under bf16 autocast: ``infer.precision``, where ``auto`` follows
    the precision the run trained with (``train.runtime.amp``)."""
    return infer.precision == "bf16" or (infer.precision == "auto" and train_amp == "bf16")


def predict_logits(
    model: Forward,
    image: torch.Tensor,
    infer: InferConfig,
    *,
    model_dims: int,
    divisor: int,
    bf16: bool = False,
) -> torch.Tensor:
    """Network outputs ``(K, *spatial)`` (float32, host) for an image ``(C, *spatial)`` with the
    window, overlap, blending and mirroring of ``infer``, under bf16 autocast if ``bf16``.

    Validation and the Predictor both call this, so validation scores what inference will predict.
    """
    with torch.autocast(_device_of(model).type, dtype=torch.bfloat16, enabled=bf16):
        return sliding_window_forward(
            model,
            image,
            infer.window,
            infer.overlap,
            infer.batch_size,
            divisor,
            blend=infer.blend,
            sigma_scale=infer.sigma_scale,
            mirror_axes=infer.mirror_axes,
            model_dims=model_dims,
        )
