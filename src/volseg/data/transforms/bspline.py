"""Cubic B-spline fields over a grid: displacements (deformation) and log bias fields.

A field of ``D``-vectors (or scalars, ``D = 1``) is given by control values
``(D, *[mesh + 3 per axis])``; its ``mesh`` cells span the grid from the first to the last voxel
centre, as ITK's ``BSplineTransform`` of order 3 over the same domain. :func:`bspline_field`
evaluates it on the grid separably (a few small matrix products, then one of the output's size);
:func:`bspline_points` writes the deformed voxel centres themselves in that one last product
(the identity folded in as two extra rows), the sampling grid of a deformation in one pass;
:func:`bspline_weights` gives the four weights at any mesh coordinate.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

__all__ = ["bspline_basis", "bspline_field", "bspline_points", "bspline_weights"]


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


def _ramp(length: int, step: float) -> torch.Tensor:
    """Voxel centres of one axis as mm offsets from its centre (as ``regular_points``)."""
    return (torch.arange(length, dtype=torch.float32) - (length - 1) / 2) * float(step)


def bspline_points(
    control: torch.Tensor, shape: Sequence[int], spacing: Sequence[float]
) -> torch.Tensor:
    """The voxel centres of grid ``shape`` moved by the field of ``control``: ``(*shape, D)`` mm.

    Equals ``regular_points(shape, spacing, plus=bspline_field(control, shape))`` but writes the
    output once, in its final layout: the control values are contracted along axes ``1..D-1``
    first (small), then one product with the first axis's basis, which carries two more
    columns, the first axis's ramp and ones, against rows holding the unit vector of component
    0 and the ramps of the other axes. So the identity costs no extra pass over the output.

    Args:
        control: ``(D, *[mesh + 3])`` control displacements in mm, component per array axis.
        spacing: mm per voxel, array order.
    """
    dims = len(shape)
    shape = tuple(int(n) for n in shape)
    bases = [bspline_basis(n, int(c) - 3) for n, c in zip(shape, control.shape[1:])]
    field = torch.movedim(control.float(), 0, -1)  # (c0, c1, ..., D)
    for axis in reversed(range(1, dims)):  # (..., c_axis, ..., D) -> (..., n_axis, ..., D)
        field = torch.movedim(torch.tensordot(field, bases[axis], dims=([axis], [1])), -1, axis)
    identity = torch.zeros((2, *field.shape[1:]), dtype=torch.float32)
    identity[0, ..., 0] = 1.0  # times the ramp of axis 0
    for axis in range(1, dims):  # times ones: the ramps of the other axes
        view = [1] * (dims - 1)
        view[axis - 1] = shape[axis]
        identity[1, ..., axis] = _ramp(shape[axis], spacing[axis]).view(view)
    left = torch.cat(
        [bases[0], _ramp(shape[0], spacing[0])[:, None], torch.ones(shape[0], 1)], dim=1
    )
    right = torch.cat([field, identity]).reshape(left.shape[1], -1)
    return torch.mm(left, right).view(*shape, dims)
