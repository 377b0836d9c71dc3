"""What a network costs and sees: parameters, FLOPs, activation memory, receptive fields.

One forward pass at a given input size, run on fake tensors (shapes only, no arithmetic, so a
paper-size 3D net is analysed in about a second), measures:

* **parameters**: every element of ``model.parameters()``;
* **forward FLOPs**: multiply-adds (MACs) of the convolutions, transposed convolutions and
  linear layers, counted by forward hooks on those modules; **1 MAC = 2 FLOPs**; bias additions,
  norms, activations, pooling and interpolation are not counted (they are a few percent of a
  conv net's arithmetic, though not of its run time);
* **activation memory**: the bytes of every new tensor a leaf module (one without children)
  returns in the forward pass, at the given batch size and the output's dtype. This is about what
  autograd keeps for the backward pass; it leaves out tensors made between modules (``torch.cat``
  of skips, the residual ``+``), in-place outputs and identities (not new memory), and the
  convolution workspace;
* the **theoretical receptive field** of every stage, in the style of V-Net's Table 1
  (Milletari et al. 2016), computed from the operations the forward pass actually runs.

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
BatchNorm couple every voxel of a sample; the convention, as in Table 1, is to count only the
local operations); an operation that mixes all positions (a spatial mean, as in
squeeze-excitation, a linear layer on flattened features, as in a VAE branch) gives a **global**
field. The model is analysed in ``eval()`` mode (so a training-only branch, such as the VAE of
``segresnet_vae``, is not part of it) and restored to its mode afterwards.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves
from torch.utils.weak import WeakTensorKeyDictionary

__all__ = [
    "ModelAnalysis",
    "ReceptiveField",
    "StageInfo",
    "analyze_model",
    "count_parameters",
    "format_analysis",
]

_Interval = tuple[int, int] | None  # inclusive input-index bounds; None: depends on no input


# --------------------------------------------------------------------------- receptive fields


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


class _ReceptiveFieldMode(TorchDispatchMode):
    """Propagates a :class:`ReceptiveField` along every tensor an ATen op computes."""

    def __init__(self, n_spatial: int) -> None:
        super().__init__()
        self.n = n_spatial
        self.fields: WeakTensorKeyDictionary = WeakTensorKeyDictionary()

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


# --------------------------------------------------------------------------- the analysis


@dataclass(frozen=True)
class StageInfo:
    """One stage of a net: a top-level child module (items of a top-level container each)."""

    name: str
    output_shape: tuple[int, ...]
    receptive_field: ReceptiveField
    parameters: int
    macs: int
    activation_bytes: int


@dataclass(frozen=True)
class ModelAnalysis:
    """Result of :func:`analyze_model`; MACs and bytes are for the whole batch."""

    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]
    parameters: int
    trainable_parameters: int
    macs: int
    activation_bytes: int
    receptive_field: ReceptiveField
    stages: tuple[StageInfo, ...]

    @property
    def flops(self) -> int:
        """Forward floating-point operations, ``2 * macs`` (one multiply plus one add)."""
        return 2 * self.macs


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameter elements (shared parameters counted once)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def _module_macs(module: nn.Module, inputs: tuple[Any, ...], output: Any) -> int:
    """Multiply-adds of one conv / transposed conv / linear call (bias not counted)."""
    if not isinstance(output, torch.Tensor):
        return 0
    if isinstance(module, nn.modules.conv._ConvTransposeNd):
        # every input element meets every kernel tap of out_channels / groups filters
        x: torch.Tensor = inputs[0]
        per_input = module.out_channels // module.groups * math.prod(module.kernel_size)
        return x.numel() * per_input
    if isinstance(module, nn.modules.conv._ConvNd):
        per_output = module.in_channels // module.groups * math.prod(module.kernel_size)
        return output.numel() * per_output
    if isinstance(module, nn.Linear):
        return output.numel() * module.in_features
    return 0


def _stages(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """Top-level children, with the items of top-level containers listed one by one."""
    stages: list[tuple[str, nn.Module]] = []
    for name, child in model.named_children():
        if isinstance(child, nn.ModuleList | nn.ModuleDict | nn.Sequential):
            stages.extend((f"{name}.{sub}", m) for sub, m in child.named_children())
        else:
            stages.append((name, child))
    unique: dict[int, tuple[str, nn.Module]] = {}  # a module held twice (a shared activation)
    for name, m in stages:  # is one stage, named where it is first held
        unique.setdefault(id(m), (name, m))
    return list(unique.values())


def _first_tensor(value: Any) -> torch.Tensor | None:
    return next((t for t in tree_leaves(value) if isinstance(t, torch.Tensor)), None)


def analyze_model(
    model: nn.Module,
    input_size: Sequence[int],
    in_channels: int | None = None,
    batch_size: int = 1,
) -> ModelAnalysis:
    """Parameters, forward MACs, activation memory and receptive fields at one input size.

    Args:
        model: a net taking ``(B, C, *input_size)``, e.g. ``(B, C, D, H, W)``.
        input_size: spatial size in array order (``D, H, W`` or ``H, W``).
        in_channels: input channels; default ``model.in_channels``.
        batch_size: ``B``; MACs and activation bytes scale with it.

    The forward pass runs on fake tensors (no arithmetic) in ``eval()`` and ``no_grad``
    mode; a net whose forward needs real values (data-dependent control flow) falls back to a
    real pass on zeros, which for a paper-size 3D net takes seconds.
    """
    from torch._subclasses.fake_tensor import (
        DataDependentOutputException,
        DynamicOutputShapeException,
        FakeTensorMode,
    )

    if in_channels is None:
        in_channels = getattr(model, "in_channels", None)
        if not isinstance(in_channels, int):
            raise ValueError(f"{type(model).__name__} has no in_channels: pass in_channels")
    shape = (batch_size, in_channels, *(int(s) for s in input_size))
    if any(s < 1 for s in shape):
        raise ValueError(f"input size must be positive, got {tuple(shape)}")
    try:
        with FakeTensorMode(allow_non_fake_inputs=True):
            return _analyze(model, shape, torch.empty(shape))
    except (DataDependentOutputException, DynamicOutputShapeException):
        return _analyze(model, shape, torch.zeros(shape))


def _analyze(model: nn.Module, shape: tuple[int, ...], x: torch.Tensor) -> ModelAnalysis:
    n_spatial = len(shape) - 2
    mode = _ReceptiveFieldMode(n_spatial)
    totals = {"macs": 0, "bytes": 0}
    records: list[StageInfo] = []
    seen: dict[str, int] = {}
    entry: dict[int, list[tuple[int, int]]] = {}  # per stage, a stack of (MACs, bytes) at entry
    handles = []

    def leaf_hook(module: nn.Module, inputs: tuple[Any, ...], output: Any) -> None:
        totals["macs"] += _module_macs(module, inputs, output)
        ins = {id(t) for t in tree_leaves(inputs) if isinstance(t, torch.Tensor)}
        for t in tree_leaves(output):
            if isinstance(t, torch.Tensor) and id(t) not in ins:
                totals["bytes"] += t.numel() * t.element_size()

    def stage_hooks(name: str, stage: nn.Module) -> tuple[Callable[..., None], Callable[..., None]]:
        def pre(module: nn.Module, inputs: tuple[Any, ...]) -> None:
            entry.setdefault(id(module), []).append((totals["macs"], totals["bytes"]))

        def post(module: nn.Module, inputs: tuple[Any, ...], output: Any) -> None:
            macs0, bytes0 = entry[id(module)].pop()
            t = _first_tensor(output)
            if t is None:
                return
            seen[name] = seen.get(name, 0) + 1
            label = name if seen[name] == 1 else f"{name}#{seen[name]}"
            records.append(
                StageInfo(
                    label,
                    tuple(t.shape),
                    mode.field(t) or _GLOBAL,
                    count_parameters(stage),
                    totals["macs"] - macs0,
                    totals["bytes"] - bytes0,
                )
            )

        return pre, post

    for m in model.modules():
        if not any(True for _ in m.children()):
            handles.append(m.register_forward_hook(leaf_hook))
    for name, stage in _stages(model):
        pre, post = stage_hooks(name, stage)
        handles.append(stage.register_forward_pre_hook(pre))
        handles.append(stage.register_forward_hook(post))

    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), mode:
            mode.fields[x] = ReceptiveField((_IDENTITY_AXIS,) * n_spatial)
            out = model(x)
            y = _first_tensor(out)
            field = mode.field(y) if y is not None else None
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    if y is None:
        raise ValueError(f"{type(model).__name__} returned no tensor")
    return ModelAnalysis(
        input_shape=shape,
        output_shape=tuple(y.shape),
        parameters=count_parameters(model),
        trainable_parameters=count_parameters(model, trainable_only=True),
        macs=totals["macs"],
        activation_bytes=totals["bytes"],
        receptive_field=field or _GLOBAL,
        stages=tuple(records),
    )


# --------------------------------------------------------------------------- the table


def _fmt_rf(field: ReceptiveField) -> str:
    size, low = field.size, field.min_size
    if size is None or low is None:
        return "global"
    text = "x".join(str(s) for s in size)
    return text if low == size else f"{text} (min {'x'.join(str(s) for s in low)})"


def _fmt_jump(field: ReceptiveField) -> str:
    jump = field.jump
    if jump is None:
        return "-"
    return "x".join(str(j) for j in jump)


def format_analysis(analysis: ModelAnalysis, title: str = "") -> str:
    """A plain-text summary: totals, then one row per stage (V-Net Table 1 style)."""
    a = analysis
    lines = [
        f"{title + '  ' if title else ''}input {'x'.join(map(str, a.input_shape))} -> "
        f"output {'x'.join(map(str, a.output_shape))}",
        f"parameters        {a.parameters:,} ({a.trainable_parameters:,} trainable)",
        f"forward           {a.macs / 1e9:,.2f} GMAC = {a.flops / 1e9:,.2f} GFLOP "
        "(1 MAC = 2 FLOPs; conv, transposed conv and linear layers)",
        f"activation memory {a.activation_bytes / 2**20:,.1f} MiB "
        "(new outputs of leaf modules in one forward pass)",
        f"receptive field   {_fmt_rf(a.receptive_field)} input voxels (largest over output voxels)",
        "",
    ]
    rows = [("stage", "output (C x size)", "jump", "receptive field", "params", "GFLOP", "act MiB")]
    for s in a.stages:
        rows.append(
            (
                s.name,
                "x".join(map(str, s.output_shape[1:])),
                _fmt_jump(s.receptive_field),
                _fmt_rf(s.receptive_field),
                f"{s.parameters:,}",
                f"{2 * s.macs / 1e9:.3f}",
                f"{s.activation_bytes / 2**20:.1f}",
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for k, r in enumerate(rows):
        cells = [c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))]
        lines.append("  ".join(cells).rstrip())
        if k == 0:
            lines.append("-" * len(lines[-1]))
    return "\n".join(lines)
