"""The one sampling grid every spatial transform writes into, and the one resampling step.

Points are physical offsets in mm from the centre of a grid, ``(*shape, D)`` in array order. A
spatial transform maps points of its output grid to points of its input grid; after all of them
the points are turned into voxel indices of the input array and image channels (linear) and the
label (nearest) are read there with one ``grid_sample`` each. Outside the input the image takes
its border value and the label 0.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

__all__ = ["regular_points", "resample", "to_voxels"]


def regular_points(shape: Sequence[int], spacing: Sequence[float]) -> torch.Tensor:
    """Voxel centres of a grid as mm offsets from its centre: ``(*shape, D)``."""
    axes = [
        (torch.arange(int(n), dtype=torch.float32) - (int(n) - 1) / 2) * float(s)
        for n, s in zip(shape, spacing)
    ]
    return torch.stack(torch.meshgrid(*axes, indexing="ij"), dim=-1)


def to_voxels(
    points: torch.Tensor, center: Sequence[float], spacing: Sequence[float]
) -> torch.Tensor:
    """Continuous voxel indices ``center + points / spacing`` (array order)."""
    return points / torch.tensor(spacing, dtype=torch.float32) + torch.tensor(
        center, dtype=torch.float32
    )


def resample(
    image: torch.Tensor, label: torch.Tensor | None, voxels: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Read ``image`` ``(C, *S)`` (linear) and ``label`` ``(1, *S)`` (nearest) at ``voxels``.

    Args:
        voxels: ``(*out, D)`` continuous voxel indices of the input, array order.

    Returns:
        ``(C, *out)`` float32 image and ``(1, *out)`` label of the label's dtype (or ``None``).
    """
    shape = image.shape[1:]
    size = torch.tensor([max(int(n) - 1, 1) for n in shape], dtype=torch.float32)
    grid = (2.0 * voxels / size - 1.0).flip(-1).unsqueeze(0)  # grid_sample wants (x, y, z)
    out = F.grid_sample(
        image[None].float(), grid, mode="bilinear", padding_mode="border", align_corners=True
    )[0]
    out_label = None
    if label is not None:
        out_label = F.grid_sample(
            label[None].float(), grid, mode="nearest", padding_mode="zeros", align_corners=True
        )[0].to(label.dtype)
    return out, out_label
