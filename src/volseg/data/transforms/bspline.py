"""Cubic B-spline fields over a grid: displacements (deformation) and log bias fields.

A field of ``D``-vectors (or scalars, ``D = 1``) is given by control values
``(D, *[mesh + 3 per axis])``; its ``mesh`` cells span the grid from the first to the last voxel
centre, as ITK's ``BSplineTransform`` of order 3 over the same domain. :func:`bspline_field`
evaluates it on the grid separably (a few small matrix products, then one of the output's size);
:func:`bspline_weights` gives the four weights at any mesh coordinate.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

__all__ = ["bspline_basis", "bspline_field", "bspline_weights"]


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
