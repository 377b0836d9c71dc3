"""The one sampling grid every spatial transform writes into, and the one resampling step.

Points are physical offsets in mm from the centre of a grid, ``(*shape, D)`` in array order. A
spatial transform maps points of its output grid to points of its input grid; after all of them
the points are turned into voxel indices of the input array and image channels (linear) and the
label (nearest) are read there with one ``grid_sample`` each. Outside the input the image takes
its border value and the label 0.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F

__all__ = ["regular_points", "resample"]

# below this many output voxels a 3-D resampling runs as one batch (thread start-up dominates)
_MIN_PARALLEL_VOXELS = 1 << 15


def regular_points(
    shape: Sequence[int], spacing: Sequence[float], plus: torch.Tensor | None = None
) -> torch.Tensor:
    """Voxel centres of a grid as mm offsets from its centre: ``(*shape, D)``.

    Args:
        plus: a ``(D, *shape)`` displacement in mm to add (written in the same pass).
    """
    dims = len(shape)
    out = torch.empty((*[int(n) for n in shape], dims), dtype=torch.float32)
    for axis, (n, step) in enumerate(zip(shape, spacing)):
        ramp = (torch.arange(int(n), dtype=torch.float32) - (int(n) - 1) / 2) * float(step)
        view = [1] * dims
        view[axis] = int(n)
        if plus is None:
            out[..., axis] = ramp.view(view)
        else:
            torch.add(ramp.view(view), plus[axis], out=out[..., axis])
    return out


def resample(
    image: torch.Tensor,
    label: torch.Tensor | None,
    points: torch.Tensor,
    center: Sequence[float],
    spacing: Sequence[float],
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Read ``image`` ``(C, *S)`` (linear) and ``label`` ``(1, *S)`` (nearest) at ``points``.

    Args:
        points: ``(*out, D)`` mm offsets (array order) from the voxel ``center`` of the input.
        spacing: the input's voxel size in mm, array order.

    Returns:
        ``(C, *out)`` float32 image and ``(1, *out)`` label of the label's dtype (or ``None``).
    """
    # voxel v = center + point / spacing; grid_sample wants 2 v / (n - 1) - 1 in (x, y, z) order
    dims = points.shape[-1]
    out_shape = tuple(points.shape[:-1])
    parts = _parts(out_shape)
    depth = -(-out_shape[0] // parts)
    grid = torch.empty((parts, depth, *out_shape[1:], dims), dtype=torch.float32)
    flat = grid.view(parts * depth, *out_shape[1:], dims)
    flat[out_shape[0] :].zero_()  # the padding of the last part: sampled, then dropped
    for axis, (n, c, step) in enumerate(zip(image.shape[1:], center, spacing)):
        size = max(int(n) - 1, 1)
        torch.add(
            torch.tensor(2.0 * c / size - 1.0),
            points[..., axis],
            alpha=2.0 / (step * size),
            out=flat[: out_shape[0], ..., dims - 1 - axis],
        )

    def sample(volume: torch.Tensor, mode: str, padding: str) -> torch.Tensor:
        source = volume[None].float().expand(parts, *volume.shape)  # no copy: stride 0
        out = F.grid_sample(source, grid, mode=mode, padding_mode=padding, align_corners=True)
        out = out.transpose(0, 1).reshape(volume.shape[0], parts * depth, *out_shape[1:])
        return out[:, : out_shape[0]].contiguous()

    out = sample(image, "bilinear", "border")
    out_label = None if label is None else sample(label, "nearest", "zeros").to(label.dtype)
    return out, out_label


def _parts(out_shape: tuple[int, ...]) -> int:
    """Slabs along the first axis that a 3-D ``grid_sample`` runs as a batch: PyTorch's CPU
    kernel parallelises over the batch only, so one slab per thread; 2-D runs whole (its kernel
    is vectorised and parallel over rows)."""
    if len(out_shape) != 3 or math.prod(out_shape) < _MIN_PARALLEL_VOXELS:
        return 1
    return max(1, min(torch.get_num_threads(), out_shape[0]))
