"""Cubic B-spline fields over a grid: displacements (deformation) and log bias fields.

A field of ``D``-vectors (or scalars, ``D = 1``) is given by control values
``(D, *[mesh + 3 per axis])``; its ``mesh`` cells span the grid from the first to the last voxel
centre, as ITK's ``BSplineTransform`` of order 3 over the same domain. Two evaluations, equal on
a regular grid: :func:`bspline_field` is separable (a few small matrix products, then one of the
output's size) and :func:`bspline_at` takes arbitrary points (used when the points were already
moved by another transform).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import torch

__all__ = ["bspline_at", "bspline_basis", "bspline_field", "bspline_weights"]


def bspline_weights(t: torch.Tensor, mesh: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Cell index and the 4 cubic weights of mesh coordinates ``t`` (clamped to ``[0, mesh]``).

    Returns:
        ``(cell, weights)``: ``cell`` ``(N,)`` int64, ``weights`` ``(N, 4)`` for control points
        ``cell .. cell + 3``.
    """
    t = t.clamp(0.0, float(mesh))
    cell = torch.clamp(t.floor().long(), max=mesh - 1)
    u = t - cell
    weights = torch.stack(
        [
            (1 - u) ** 3 / 6,
            (3 * u**3 - 6 * u**2 + 4) / 6,
            (-3 * u**3 + 3 * u**2 + 3 * u + 1) / 6,
            u**3 / 6,
        ],
        dim=1,
    )
    return cell, weights


def bspline_basis(length: int, mesh: int) -> torch.Tensor:
    """Cubic B-spline weights ``(length, mesh + 3)`` for a field over ``length`` samples."""
    t = torch.linspace(0.0, float(mesh), length, dtype=torch.float64)
    cell, weights = bspline_weights(t, mesh)
    basis = torch.zeros(length, mesh + 3, dtype=torch.float64)
    for k in range(4):
        basis[torch.arange(length), cell + k] = weights[:, k]
    return basis.float()


def bspline_field(control: torch.Tensor, shape: Sequence[int]) -> torch.Tensor:
    """Dense field ``(D, *shape)`` on the regular grid ``shape`` from ``(D, *[mesh + 3])``."""
    dims = len(shape)
    bases = [bspline_basis(int(n), int(c) - 3) for n, c in zip(shape, control.shape[1:])]
    field = control.float()
    for axis in reversed(
        range(1, dims)
    ):  # the small contractions first: (D, ..., c) -> (D, ..., n)
        field = torch.movedim(
            torch.tensordot(field, bases[axis], dims=([axis + 1], [1])), -1, axis + 1
        )
    # the one full-size product, written contiguously: (n0, c0) @ (D, c0, rest)
    rest = field.shape[2:]
    out = torch.matmul(bases[0], field.reshape(field.shape[0], field.shape[1], -1))
    return out.reshape(field.shape[0], int(shape[0]), *rest)


def bspline_at(control: torch.Tensor, voxels: torch.Tensor, shape: Sequence[int]) -> torch.Tensor:
    """The field at arbitrary points: ``(N, D_out)`` for voxel coordinates ``voxels`` ``(N, D)``.

    ``voxels`` are continuous array indices of the grid ``shape``; points outside the grid take
    the value at the nearest point of its border region (the field is clamped, not zero).
    """
    dims = len(shape)
    meshes = [int(c) - 3 for c in control.shape[1:]]
    cells, weights = [], []
    for axis in range(dims):
        scale = meshes[axis] / max(int(shape[axis]) - 1, 1)
        cell, weight = bspline_weights(voxels[:, axis].float() * scale, meshes[axis])
        cells.append(cell)
        weights.append(weight)
    flat = control.float().reshape(control.shape[0], -1)
    strides = [1] * dims
    for axis in reversed(range(dims - 1)):
        strides[axis] = strides[axis + 1] * (meshes[axis + 1] + 3)
    out = torch.zeros(voxels.shape[0], control.shape[0])
    for offsets in itertools.product(range(4), repeat=dims):
        index = sum((cells[a] + offsets[a]) * strides[a] for a in range(dims))
        weight = weights[0][:, offsets[0]]
        for a in range(1, dims):
            weight = weight * weights[a][:, offsets[a]]
        out += flat[:, index].T * weight[:, None]
    return out
