"""Layer factories: one per layer kind, returning the ``torch.nn`` layer for 2D or 3D alike.

Every factory takes ``spatial_dims`` (2 or 3). Names are lower-case strings so they can come
straight from a YAML config: norms ``"batch"``, ``"group"``, ``"instance"``, ``"none"``;
activations ``"relu"``, ``"prelu"``, ``"elu"``, ``"leakyrelu"``, ``"none"``.

Every convolution is built by :func:`conv` (or :class:`Conv2d`/:class:`Conv3d`), so the CPU
bf16 guard below applies to all nets.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

__all__ = [
    "ACTIVATIONS",
    "NORMS",
    "Conv2d",
    "Conv3d",
    "activation",
    "conv",
    "conv_transpose",
    "dropout",
    "norm",
    "same_padding",
]

NORMS = ("batch", "group", "instance", "none")
ACTIVATIONS = ("relu", "prelu", "elu", "leakyrelu", "none")

_Size = int | Sequence[int]


def _check_dims(spatial_dims: int) -> None:
    if spatial_dims not in (2, 3):
        raise ValueError(f"spatial_dims must be 2 or 3, got {spatial_dims}")


def _tuple(value: _Size, spatial_dims: int, what: str) -> tuple[int, ...]:
    if isinstance(value, int):
        return (value,) * spatial_dims
    out = tuple(int(v) for v in value)
    if len(out) != spatial_dims:
        raise ValueError(f"{what} {value!r} does not have {spatial_dims} entries")
    return out


def same_padding(kernel_size: _Size, spatial_dims: int, dilation: int = 1) -> tuple[int, ...]:
    """Padding that keeps the size at stride 1 (``"same"``); kernels must be odd."""
    kernel = _tuple(kernel_size, spatial_dims, "kernel_size")
    if any(k % 2 == 0 for k in kernel):
        raise ValueError(f"'same' padding needs odd kernel sizes, got {kernel}")
    return tuple(dilation * (k - 1) // 2 for k in kernel)


def _kernel_exceeds_input(x: torch.Tensor, kernel: tuple[int, ...]) -> bool:
    return any(k > 1 and s < k for s, k in zip(x.shape[2:], kernel))


def _bf16_safe(
    forward: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, kernel: tuple[int, ...]
) -> torch.Tensor:
    """Run ``forward`` in fp32 when CPU autocast is on and ``x`` is smaller than the kernel."""
    if torch.is_autocast_enabled("cpu") and _kernel_exceeds_input(x, kernel):
        with torch.autocast("cpu", enabled=False):
            return forward(x.float())
    return forward(x)


class Conv2d(nn.Conv2d):
    """``nn.Conv2d`` that steps out of CPU bf16 autocast where PyTorch's kernel is wrong.

    With torch 2.13 on CPU, the bf16 weight gradient of a convolution whose input is smaller than
    its kernel (e.g. V-Net's 5x5x5 convs on a 4x4x4 bottom stage) is wrong or NaN
    (``benchmarks/bf16_small_conv.py`` shows it). Such convs are tiny, so they run in fp32.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _bf16_safe(super().forward, x, self.kernel_size)


class Conv3d(nn.Conv3d):
    """``nn.Conv3d`` with the same CPU bf16 guard as :class:`Conv2d`."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _bf16_safe(super().forward, x, self.kernel_size)


def conv(
    spatial_dims: int,
    in_channels: int,
    out_channels: int,
    kernel_size: _Size,
    stride: _Size = 1,
    padding: _Size | None = None,
    dilation: int = 1,
    groups: int = 1,
    bias: bool = True,
) -> nn.Module:
    """A ``Conv2d``/``Conv3d``.

    ``padding=None`` means ``"same"`` padding (``(k - 1) // 2``, odd kernels) when ``stride`` is 1
    and no padding otherwise (e.g. V-Net's 2x2x2 stride-2 down-convolution).
    """
    _check_dims(spatial_dims)
    if padding is None:
        stride_t = _tuple(stride, spatial_dims, "stride")
        if all(s == 1 for s in stride_t):
            padding = same_padding(kernel_size, spatial_dims, dilation)
        else:
            padding = 0
    cls: Any = Conv3d if spatial_dims == 3 else Conv2d
    return cls(
        in_channels,
        out_channels,
        _tuple(kernel_size, spatial_dims, "kernel_size"),
        stride=_tuple(stride, spatial_dims, "stride"),
        padding=_tuple(padding, spatial_dims, "padding"),
        dilation=dilation,
        groups=groups,
        bias=bias,
    )


def conv_transpose(
    spatial_dims: int,
    in_channels: int,
    out_channels: int,
    kernel_size: _Size = 2,
    stride: _Size = 2,
    padding: _Size = 0,
    bias: bool = True,
) -> nn.Module:
    """A ``ConvTranspose2d``/``ConvTranspose3d``; the default 2/2 doubles every spatial size."""
    _check_dims(spatial_dims)
    cls: Any = nn.ConvTranspose3d if spatial_dims == 3 else nn.ConvTranspose2d
    return cls(
        in_channels,
        out_channels,
        _tuple(kernel_size, spatial_dims, "kernel_size"),
        stride=_tuple(stride, spatial_dims, "stride"),
        padding=_tuple(padding, spatial_dims, "padding"),
        bias=bias,
    )


def norm(name: str, spatial_dims: int, channels: int, groups: int = 8) -> nn.Module:
    """A normalisation layer by name: ``batch``, ``group``, ``instance`` or ``none``.

    Instance norm is affine (learned scale and shift, like the others). Group norm uses
    ``groups`` groups and needs ``channels`` divisible by them; with fewer channels than groups it
    uses one group per channel.
    """
    _check_dims(spatial_dims)
    key = name.lower()
    if key == "batch":
        return nn.BatchNorm3d(channels) if spatial_dims == 3 else nn.BatchNorm2d(channels)
    if key == "instance":
        cls = nn.InstanceNorm3d if spatial_dims == 3 else nn.InstanceNorm2d
        return cls(channels, affine=True)
    if key == "group":
        g = min(groups, channels)
        if channels % g:
            raise ValueError(f"group norm: {channels} channels not divisible by {g} groups")
        return nn.GroupNorm(g, channels)
    if key == "none":
        return nn.Identity()
    raise ValueError(f"unknown norm {name!r}; known: {', '.join(NORMS)}")


def activation(name: str, channels: int = 1, inplace: bool = False) -> nn.Module:
    """A non-linearity by name.

    ``prelu`` learns one slope per channel (``channels`` parameters, initialised to 0.25, as in
    He et al. 2015 and V-Net's Caffe model); ``leakyrelu`` uses slope 0.01. ``inplace`` (ReLU,
    ELU, LeakyReLU; PReLU has no in-place form) overwrites its input, which saves a tensor of
    activation memory: use it only where nothing else still needs that input.
    """
    key = name.lower()
    if key == "relu":
        return nn.ReLU(inplace=inplace)
    if key == "prelu":
        return nn.PReLU(num_parameters=channels, init=0.25)
    if key == "elu":
        return nn.ELU(inplace=inplace)
    if key == "leakyrelu":
        return nn.LeakyReLU(0.01, inplace=inplace)
    if key == "none":
        return nn.Identity()
    raise ValueError(f"unknown activation {name!r}; known: {', '.join(ACTIVATIONS)}")


def dropout(spatial_dims: int, p: float) -> nn.Module:
    """Channel-wise dropout (``Dropout2d``/``Dropout3d``), or ``Identity`` when ``p == 0``."""
    _check_dims(spatial_dims)
    if not 0.0 <= p < 1.0:
        raise ValueError(f"dropout probability must be in [0, 1), got {p}")
    if p == 0.0:
        return nn.Identity()
    return nn.Dropout3d(p) if spatial_dims == 3 else nn.Dropout2d(p)
