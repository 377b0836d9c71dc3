"""Theoretical receptive fields, propagated exactly through the ATen ops a forward pass runs.

The receptive field of a voxel is the box of input voxels it can depend on through the
convolutions, poolings, transposed convolutions, interpolations, crops, pads and merges of the
net, on an unbounded input (borders ignored). It is propagated exactly, per axis, from the input
through every ATen operation: a stride-``s`` conv or pool with kernel ``k`` and dilation ``d``
grows it by ``(k - 1) * d * jump`` and multiplies the jump (input voxels per voxel of the map)
by ``s``; a transposed conv or an upsampling divides the jump by its stride and grows the field
only by the input voxels each output voxel really reads (a ``2^3``/stride-2 transposed conv reads
one, so adds nothing); a sum or concatenation takes the union of its inputs' boxes. Because a
stride or an up-sampling makes the box's position depend on the voxel's index modulo the stride,
the field is stored per residue and is exact for every voxel (:meth:`ReceptiveField.interval`).

Conventions: normalisation statistics are ignored (GroupNorm, InstanceNorm and training-mode
BatchNorm couple every voxel of a sample; the convention, as in V-Net's Table 1, is to count only
the local operations); an operation that mixes all positions (a spatial mean, as in
squeeze-excitation, a linear layer on flattened features, as in a VAE branch) gives a **global**
field.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves
from torch.utils.weak import WeakTensorKeyDictionary

__all__ = ["ReceptiveField", "ReceptiveFieldMode"]

_Interval = tuple[int, int] | None  # inclusive input-index bounds; None: depends on no input


@dataclass(frozen=True)
class _Axis:
    """Receptive field along one axis of a feature map.

    Voxel ``i = q * period + r`` (``0 <= r < period``) of the map sees input voxels
    ``[q * shift + lo[r], q * shift + hi[r]]``; ``lo[r] is None`` when it sees none.
    """

    period: int
    shift: int
    lo: tuple[int | None, ...]
    hi: tuple[int | None, ...]

    def at(self, i: int) -> _Interval:
        q, r = divmod(i, self.period)
        lo, hi = self.lo[r], self.hi[r]
        if lo is None or hi is None:
            return None
        return q * self.shift + lo, q * self.shift + hi


_IDENTITY_AXIS = _Axis(1, 1, (0,), (0,))


def _union(intervals: Sequence[_Interval]) -> _Interval:
    present = [iv for iv in intervals if iv is not None]
    if not present:
        return None
    return min(iv[0] for iv in present), max(iv[1] for iv in present)


def _make_axis(period: int, shift: int, intervals: Sequence[_Interval]) -> _Axis:
    """Build an axis from one interval per residue, reduced to its smallest period."""
    for p in range(1, period + 1):
        if period % p or (shift * p) % period:
            continue
        s = shift * p // period
        ok = True
        for r, iv in enumerate(intervals):
            base, q = intervals[r % p], r // p
            if iv is None or base is None:
                ok = iv is base
            else:
                ok = iv == (base[0] + q * s, base[1] + q * s)
            if not ok:
                break
        if ok:
            intervals = intervals[:p]
            return _Axis(
                p,
                s,
                tuple(None if iv is None else iv[0] for iv in intervals),
                tuple(None if iv is None else iv[1] for iv in intervals),
            )
    raise AssertionError("unreachable: the full period always fits")


def _conv_axis(axis: _Axis, kernel: int, stride: int, padding: int, dilation: int) -> _Axis:
    """Output voxel ``o`` reads input voxels ``o * stride - padding + j * dilation``, j < kernel."""
    period = axis.period // math.gcd(axis.period, stride)
    shift = axis.shift * (period * stride // axis.period)
    intervals = [
        _union([axis.at(r * stride - padding + j * dilation) for j in range(kernel)])
        for r in range(period)
    ]
    return _make_axis(period, shift, intervals)


def _transposed_axis(axis: _Axis, kernel: int, stride: int, padding: int, dilation: int) -> _Axis:
    """Output voxel ``o`` gets input ``i`` where ``i * stride = o + padding - j * dilation``."""
    period = axis.period * stride
    intervals = []
    for r in range(period):
        reads = [r + padding - j * dilation for j in range(kernel)]
        intervals.append(_union([axis.at(t // stride) for t in reads if t % stride == 0]))
    return _make_axis(period, axis.shift, intervals)


def _upsample_axis(axis: _Axis, scale: int, linear: bool) -> _Axis:
    """Integer up-sampling: nearest reads ``floor(o / s)``; linear (``align_corners=False``)
    reads ``floor(c)`` and ``floor(c) + 1`` around ``c = (o + 0.5) / s - 0.5`` (the second only
    when ``c`` is not an integer, else its weight is 0)."""
    period = axis.period * scale
    intervals = []
    for r in range(period):
        if not linear:
            intervals.append(axis.at(r // scale))
            continue
        num = 2 * r + 1 - scale  # c = num / (2 * scale)
        first = num // (2 * scale)
        reads = [first] if num % (2 * scale) == 0 else [first, first + 1]
        intervals.append(_union([axis.at(i) for i in reads]))
    return _make_axis(period, axis.shift, intervals)


def _merge_axes(axes: Sequence[_Axis]) -> _Axis | None:
    """Union of maps of one grid (a sum, a concat); ``None`` if their grids differ."""
    period = math.lcm(*(a.period for a in axes))
    shifts = {a.shift * (period // a.period) for a in axes}
    if len(shifts) != 1:
        return None
    intervals = [_union([a.at(r) for a in axes]) for r in range(period)]
    return _make_axis(period, shifts.pop(), intervals)


@dataclass(frozen=True)
class ReceptiveField:
    """Theoretical receptive field of a feature map, per spatial axis (array order).

    ``axes is None`` means global: every voxel depends on the whole input.
    """

    axes: tuple[_Axis, ...] | None

    @property
    def is_global(self) -> bool:
        return self.axes is None

    @property
    def size(self) -> tuple[int, ...] | None:
        """Extent in input voxels per axis (the largest over voxels); ``None`` if global."""
        if self.axes is None:
            return None
        return tuple(
            max(
                (h - lo + 1 for lo, h in zip(a.lo, a.hi) if lo is not None and h is not None),
                default=0,
            )
            for a in self.axes
        )

    @property
    def min_size(self) -> tuple[int, ...] | None:
        """Smallest extent per axis over voxels: after a stride and an up-sampling, voxels at
        different positions modulo the stride can see boxes of different sizes."""
        if self.axes is None:
            return None
        return tuple(
            min(
                (h - lo + 1 for lo, h in zip(a.lo, a.hi) if lo is not None and h is not None),
                default=0,
            )
            for a in self.axes
        )

    @property
    def jump(self) -> tuple[Fraction, ...] | None:
        """Input voxels per voxel of this map, per axis (its total stride); ``None`` if global."""
        if self.axes is None:
            return None
        return tuple(Fraction(a.shift, a.period) for a in self.axes)

    def interval(self, index: Sequence[int]) -> tuple[_Interval, ...]:
        """Inclusive input-index bounds ``(first, last)`` per axis of the voxel at ``index``.

        The input is taken as unbounded: near a border part of the box lies outside the image.
        """
        if self.axes is None:
            raise ValueError("the receptive field is global: it has no finite box")
        if len(index) != len(self.axes):
            raise ValueError(f"index {tuple(index)} needs {len(self.axes)} entries")
        return tuple(a.at(int(i)) for a, i in zip(self.axes, index))


_GLOBAL = ReceptiveField(None)
_aten = torch.ops.aten


def _ints(value: Any, n: int, default: Sequence[int]) -> tuple[int, ...]:
    """An ATen ``int[n]`` argument (may be one int or empty) as ``n`` ints."""
    if value is None or (isinstance(value, Sequence) and len(value) == 0):
        value = default
    if isinstance(value, int):
        return (value,) * n
    out = tuple(int(v) for v in value)
    return out * n if len(out) == 1 else out


class ReceptiveFieldMode(TorchDispatchMode):
    """Propagates a :class:`ReceptiveField` along every tensor an ATen op computes.

    Inside ``with mode:``, after ``mode.watch(x)`` marks the input, ``mode.field(t)`` is the
    field of any floating-point tensor ``t`` computed from ``x`` (``None`` for others).
    """

    def __init__(self, n_spatial: int) -> None:
        super().__init__()
        self.n = n_spatial
        self.fields: WeakTensorKeyDictionary = WeakTensorKeyDictionary()

    def watch(self, x: torch.Tensor) -> None:
        """Mark ``x`` as the input: each of its voxels sees itself."""
        self.fields[x] = ReceptiveField((_IDENTITY_AXIS,) * self.n)

    def field(self, t: object) -> ReceptiveField | None:
        if isinstance(t, torch.Tensor) and t in self.fields:
            found: ReceptiveField = self.fields[t]
            return found
        return None

    def __torch_dispatch__(
        self,
        func: Any,
        types: Any,
        args: tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
    ) -> Any:
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        inputs = [(t, f) for t in tree_leaves((args, kwargs)) if (f := self.field(t)) is not None]
        if not inputs:
            return out
        for o in tree_leaves(out):
            if isinstance(o, torch.Tensor) and o.is_floating_point():
                self.fields[o] = self._propagate(func, args, inputs, o)
        return out

    def _spatial(self, t: torch.Tensor) -> tuple[int, ...] | None:
        return tuple(t.shape[-self.n :]) if t.ndim >= self.n else None

    def _propagate(
        self,
        func: Any,
        args: tuple[Any, ...],
        inputs: list[tuple[torch.Tensor, ReceptiveField]],
        out: torch.Tensor,
    ) -> ReceptiveField:
        n = self.n
        if any(f.axes is None for _, f in inputs) or out.ndim < n:
            return _GLOBAL
        op = func.overloadpacket
        first = self.field(args[0]) if args else None
        # Ops that move positions along the spatial axes, applied to their first argument.
        if first is not None and first.axes is not None and len(inputs) == 1:
            moved = self._move(op, args, first.axes, out)
            if moved is not None:
                return moved
        if op is _aten.cat:
            dim = args[1] if len(args) > 1 else 0
            if dim % out.ndim >= out.ndim - n:
                return _GLOBAL  # joining along a spatial axis: not a merge of one grid
        # Everything else is taken as pointwise on the spatial axes (activations, norms,
        # sums, concatenation along channels, views keeping the spatial sizes) when every
        # input has the output's spatial size; otherwise it mixes positions: global.
        shape = self._spatial(out)
        if any(self._spatial(t) != shape for t, _ in inputs):
            return _GLOBAL
        axes = []
        for d in range(n):
            merged = _merge_axes([f.axes[d] for _, f in inputs if f.axes is not None])
            if merged is None:
                return _GLOBAL
            axes.append(merged)
        return ReceptiveField(tuple(axes))

    def _move(
        self, op: Any, args: tuple[Any, ...], axes: tuple[_Axis, ...], out: torch.Tensor
    ) -> ReceptiveField | None:
        n = self.n
        x: torch.Tensor = args[0]
        if op is _aten.convolution:
            weight: torch.Tensor = args[1]
            kernel = tuple(weight.shape[2:])
            stride, padding, dilation = (_ints(args[i], n, (1,)) for i in (3, 4, 5))
            through = _transposed_axis if args[6] else _conv_axis
            return ReceptiveField(
                tuple(through(a, *p) for a, p in zip(axes, zip(kernel, stride, padding, dilation)))
            )
        pools = {
            _aten.max_pool2d_with_indices,
            _aten.max_pool3d_with_indices,
            _aten.avg_pool2d,
            _aten.avg_pool3d,
        }
        if op in pools:
            kernel = _ints(args[1], n, (1,))
            stride = _ints(args[2] if len(args) > 2 else None, n, kernel)
            padding = _ints(args[3] if len(args) > 3 else None, n, (0,))
            is_max = op in (_aten.max_pool2d_with_indices, _aten.max_pool3d_with_indices)
            dilation = _ints(args[4] if is_max and len(args) > 4 else None, n, (1,))
            return ReceptiveField(
                tuple(
                    _conv_axis(a, *p) for a, p in zip(axes, zip(kernel, stride, padding, dilation))
                )
            )
        nearest = {
            _aten.upsample_nearest1d,
            _aten.upsample_nearest2d,
            _aten.upsample_nearest3d,
            _aten._upsample_nearest_exact1d,  # floor((o + 0.5) / s) == floor(o / s), integer s
            _aten._upsample_nearest_exact2d,
            _aten._upsample_nearest_exact3d,
        }
        linear = {_aten.upsample_linear1d, _aten.upsample_bilinear2d, _aten.upsample_trilinear3d}
        if op in nearest or op in linear:
            # Integer scale from the shapes; align_corners=True is approximated as False.
            scales = [o // i for o, i in zip(out.shape[-n:], x.shape[-n:])]
            if any(o != s * i for o, s, i in zip(out.shape[-n:], scales, x.shape[-n:])):
                return _GLOBAL
            return ReceptiveField(
                tuple(_upsample_axis(a, s, op in linear) for a, s in zip(axes, scales))
            )
        if op is _aten.constant_pad_nd:
            pad = [int(p) for p in args[1]]  # last axis first: (before, after) pairs
            before = [0] * n
            for k in range(min(len(pad) // 2, n)):
                before[n - 1 - k] = pad[2 * k]
            return ReceptiveField(tuple(_conv_axis(a, 1, 1, b, 1) for a, b in zip(axes, before)))
        if op is _aten.slice:
            dim = (args[1] if len(args) > 1 else 0) % x.ndim
            if dim < x.ndim - n:
                return None  # slicing channels or batch: pointwise
            start = args[2] if len(args) > 2 and args[2] is not None else 0
            step = args[4] if len(args) > 4 else 1
            start = start + x.shape[dim] if start < 0 else min(start, x.shape[dim])
            k = dim - (x.ndim - n)
            moved = list(axes)
            moved[k] = _conv_axis(axes[k], 1, step, -start, 1)
            return ReceptiveField(tuple(moved))
        return None
