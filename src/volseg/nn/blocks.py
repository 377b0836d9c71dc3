"""Dimension-agnostic building blocks: one factory per layer kind, for 2D and 3D alike.

Every factory takes ``spatial_dims`` (2 or 3) and returns the matching ``torch.nn`` layer, so a
network written once with these factories runs on ``(B, C, H, W)`` and ``(B, C, D, H, W)``
tensors. Names are lower-case strings so they can come straight from a YAML config:

* norms: ``"batch"``, ``"group"``, ``"instance"``, ``"none"``;
* activations: ``"relu"``, ``"prelu"``, ``"elu"``, ``"leakyrelu"``, ``"none"``;
* orders: ``"cna"`` (conv -> norm -> act, ResNet v1) and ``"nac"`` (norm -> act -> conv,
  pre-activation ResNet v2 as in Myronenko 2018);
* downsampling: ``"conv"`` (strided conv) or ``"maxpool"``; upsampling: ``"transposed"``
  (transposed conv), ``"linear"`` or ``"nearest"`` (interpolation + ``1^d`` conv);
* skip merges: ``"cat"`` (U-Net, V-Net) or ``"sum"`` (Yu & Heng, Drozdzal, Myronenko).

Every convolution is built by :func:`conv` (or :class:`Conv2d`/:class:`Conv3d`), so the CPU
bf16 guard below applies to all nets.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "ACTIVATIONS",
    "DOWNSAMPLES",
    "MERGES",
    "NORMS",
    "ORDERS",
    "UPSAMPLES",
    "Conv2d",
    "Conv3d",
    "ConvNormAct",
    "Downsample",
    "ResidualBlock",
    "SkipMerge",
    "SqueezeExcitation",
    "Upsample",
    "activation",
    "check_input",
    "conv",
    "conv_transpose",
    "dropout",
    "glorot_normal_",
    "he_normal_",
    "init_he",
    "norm",
    "same_padding",
]

NORMS = ("batch", "group", "instance", "none")
ACTIVATIONS = ("relu", "prelu", "elu", "leakyrelu", "none")
ORDERS = ("cna", "nac")
DOWNSAMPLES = ("conv", "maxpool")
UPSAMPLES = ("transposed", "linear", "nearest")
MERGES = ("cat", "sum")

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


def _check_choice(value: str, choices: tuple[str, ...], what: str) -> str:
    key = value.lower()
    if key not in choices:
        raise ValueError(f"unknown {what} {value!r}; known: {', '.join(choices)}")
    return key


class ConvNormAct(nn.Module):
    """``conv -> norm -> act`` (``order="cna"``) or ``norm -> act -> conv`` (``"nac"``).

    ``(B, in, *S) -> (B, out, *S / stride)``. The convolution has a bias only when there is no
    norm after it (a norm's shift makes it redundant), unless ``bias`` says otherwise.
    ``act="none"`` leaves the activation out, e.g. for the last conv of a residual stage, whose
    activation comes after the skip is added. In ``"nac"`` order the norm and activation act on
    the ``in`` channels. Activations run in place where that is safe (after a conv or a norm,
    never on the block's own input).
    """

    def __init__(
        self,
        spatial_dims: int,
        in_channels: int,
        out_channels: int,
        kernel_size: _Size = 3,
        stride: _Size = 1,
        norm: str = "none",
        act: str = "relu",
        bias: bool | None = None,
        groups: int = 8,
        order: str = "cna",
        padding: _Size | None = None,
    ) -> None:
        super().__init__()
        self.order = _check_choice(order, ORDERS, "order")
        has_norm = norm.lower() != "none"
        if bias is None:
            bias = not has_norm or self.order == "nac"
        self.conv = conv(
            spatial_dims, in_channels, out_channels, kernel_size, stride, padding, bias=bias
        )
        c = out_channels if self.order == "cna" else in_channels
        self.norm = _norm(norm, spatial_dims, c, groups)
        # in "nac" order without norm the activation would overwrite the block input
        self.act = activation(act, c, inplace=self.order == "cna" or has_norm)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.order == "nac":
            return self.conv(self.act(self.norm(x)))
        return self.act(self.norm(self.conv(x)))


_norm = norm  # ConvNormAct.__init__ shadows the factory name with its ``norm`` argument


class SqueezeExcitation(nn.Module):
    """Squeeze-and-excitation (Hu et al. 2018): ``x * sigmoid(W2 relu(W1 mean(x)))``.

    ``(B, C, *S) -> (B, C, *S)``. The squeeze is a global average over the spatial axes; ``W1``
    reduces ``C`` to ``max(1, C // ratio)``, ``W2`` restores ``C``; the sigmoid gate rescales
    each channel. Adeniji et al. apply it to the residual before the identity is added.
    """

    def __init__(self, channels: int, ratio: int = 16) -> None:
        super().__init__()
        if ratio < 1:
            raise ValueError(f"squeeze-excitation ratio must be >= 1, got {ratio}")
        hidden = max(1, channels // ratio)
        self.reduce = nn.Linear(channels, hidden)
        self.expand = nn.Linear(hidden, channels)
        he_normal_(self.reduce.weight, "relu")
        glorot_normal_(self.expand.weight)
        nn.init.zeros_(self.reduce.bias)
        nn.init.zeros_(self.expand.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x.mean(dim=tuple(range(2, x.ndim)))
        gate = torch.sigmoid(self.expand(torch.relu(self.reduce(s))))
        return x * gate.reshape(*gate.shape, *(1,) * (x.ndim - 2))


class ResidualBlock(nn.Module):
    """Convs with a short skip: ``(B, in, *S) -> (B, out, *S / stride)``.

    ``order="cna"`` (ResNet v1, He et al. 2016): convs are conv -> norm -> act except the last,
    which is conv -> norm; the skip is added, then the activation. ``order="nac"`` (pre-activation
    ResNet v2, Myronenko 2018): each conv is norm -> act -> conv and the sum is the output.

    ``kernel_sizes`` sets the convs: ``(3, 3)`` is the basic block, ``(1, 3, 1)`` with
    ``mid_channels = out // 4`` the bottleneck block. The stride sits on the first conv with a
    kernel > 1. The skip is the identity when shape is kept, else a strided ``1^d`` projection
    conv (+ norm in ``"cna"`` order). ``se_ratio`` rescales the residual by squeeze-excitation
    before the add (Adeniji et al.). ``residual=False`` drops the skip (a plain conv stack, for
    the "no short skips" ablation of Drozdzal et al.); then the output is the convs alone.
    """

    def __init__(
        self,
        spatial_dims: int,
        in_channels: int,
        out_channels: int,
        kernel_sizes: Sequence[int] = (3, 3),
        stride: int = 1,
        norm: str = "batch",
        act: str = "relu",
        order: str = "cna",
        groups: int = 8,
        mid_channels: int | None = None,
        se_ratio: int | None = None,
        residual: bool = True,
    ) -> None:
        super().__init__()
        self.order = _check_choice(order, ORDERS, "order")
        n = len(kernel_sizes)
        if n < 1:
            raise ValueError("a residual block needs at least one conv")
        mid = out_channels if mid_channels is None else mid_channels
        strided = next((i for i, k in enumerate(kernel_sizes) if k > 1), 0)
        layers = []
        for i, k in enumerate(kernel_sizes):
            c_in = in_channels if i == 0 else mid
            c_out = out_channels if i == n - 1 else mid
            last_cna = self.order == "cna" and i == n - 1
            s = stride if i == strided else 1
            layers.append(
                ConvNormAct(
                    spatial_dims,
                    c_in,
                    c_out,
                    k,
                    s,
                    norm=norm,
                    act="none" if last_cna else act,
                    groups=groups,
                    order=self.order,
                    padding=same_padding(k, spatial_dims),
                )
            )
        self.convs = nn.Sequential(*layers)
        self.se = None if se_ratio is None else SqueezeExcitation(out_channels, se_ratio)
        self.shortcut: nn.Module | None = None
        if residual and (in_channels != out_channels or stride != 1):
            proj = conv(spatial_dims, in_channels, out_channels, 1, stride, 0, bias=False)
            if self.order == "cna":
                self.shortcut = nn.Sequential(proj, _norm(norm, spatial_dims, out_channels, groups))
            else:
                self.shortcut = proj
        elif residual:
            self.shortcut = nn.Identity()
        self.act = activation(act, out_channels, inplace=True) if self.order == "cna" else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.convs(x)
        if self.se is not None:
            out = self.se(out)
        if self.shortcut is not None:
            out = out + self.shortcut(x)
        if self.act is not None:
            out = self.act(out)
        return out


class Downsample(nn.Module):
    """Halve every spatial size: ``(B, in, *S) -> (B, out, *S / 2)``.

    ``mode="conv"``: one conv with stride 2 (kernel ``kernel_size``, same-style padding; the
    kernel-2 conv of V-Net tiles the input exactly); ``"maxpool"``: ``2^d`` max-pooling, then a
    ``1^d`` conv when the channel count changes (Adeniji et al.; far fewer parameters).
    """

    def __init__(
        self,
        spatial_dims: int,
        in_channels: int,
        out_channels: int,
        mode: str = "conv",
        kernel_size: int = 3,
        bias: bool = True,
    ) -> None:
        super().__init__()
        _check_dims(spatial_dims)
        self.mode = _check_choice(mode, DOWNSAMPLES, "downsampling")
        self.pool: nn.Module | None = None
        self.conv: nn.Module | None = None
        if self.mode == "conv":
            pad = (kernel_size - 1) // 2
            self.conv = conv(
                spatial_dims, in_channels, out_channels, kernel_size, 2, pad, bias=bias
            )
        else:
            self.pool = nn.MaxPool3d(2) if spatial_dims == 3 else nn.MaxPool2d(2)
            if in_channels != out_channels:
                self.conv = conv(spatial_dims, in_channels, out_channels, 1, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.pool is not None:
            x = self.pool(x)
        if self.conv is not None:
            x = self.conv(x)
        return x


class Upsample(nn.Module):
    """Double every spatial size: ``(B, in, *S) -> (B, out, *2S)``.

    ``mode="transposed"``: a ``2^d`` transposed conv with stride 2. ``"linear"`` (tri/bilinear,
    ``align_corners=False``) or ``"nearest"``: a ``1^d`` conv (when the channel count changes)
    then interpolation. The conv runs before the interpolation, at the low resolution: the two
    commute (both are linear and the interpolation weights sum to 1), so this is the same map as
    "interpolate, then ``1^d`` conv" at ``1 / 2^d`` of the cost.
    """

    def __init__(
        self,
        spatial_dims: int,
        in_channels: int,
        out_channels: int,
        mode: str = "transposed",
        bias: bool = True,
    ) -> None:
        super().__init__()
        _check_dims(spatial_dims)
        self.mode = _check_choice(mode, UPSAMPLES, "upsampling")
        self.conv: nn.Module | None = None
        if self.mode == "transposed":
            self.conv = conv_transpose(spatial_dims, in_channels, out_channels, 2, 2, bias=bias)
        elif in_channels != out_channels:
            self.conv = conv(spatial_dims, in_channels, out_channels, 1, bias=bias)
        self._interp = {"linear": "trilinear" if spatial_dims == 3 else "bilinear"}.get(
            self.mode, "nearest"
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.conv is not None:
            x = self.conv(x)
        if self.mode == "transposed":
            return x
        if self.mode == "nearest":
            return F.interpolate(x, scale_factor=2.0, mode="nearest")
        return F.interpolate(x, scale_factor=2.0, mode=self._interp, align_corners=False)


class SkipMerge(nn.Module):
    """Merge a long skip into the decoder: ``"cat"`` -> ``(B, C + C_skip, *S)``, ``"sum"`` ->
    ``(B, C, *S)`` (then ``C`` must equal ``C_skip``)."""

    def __init__(self, mode: str = "cat") -> None:
        super().__init__()
        self.mode = _check_choice(mode, MERGES, "skip merge")

    def out_channels(self, channels: int, skip_channels: int) -> int:
        """Channels after merging ``channels`` decoder with ``skip_channels`` skip features."""
        return channels + skip_channels if self.mode == "cat" else channels

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        if self.mode == "cat":
            return torch.cat((x, skip), dim=1)
        return x + skip


_RELU_GAIN = {"relu": 2.0, "prelu": 2.0 / (1 + 0.25**2), "leakyrelu": 2.0 / (1 + 0.01**2)}


def he_normal_(weight: torch.Tensor, act: str = "relu") -> torch.Tensor:
    """He-normal init in place: ``N(0, gain / fan_in)``, fan-in = input channels x kernel.

    ``gain`` is 2 for ReLU, ``2 / (1 + a^2)`` for PReLU (a = 0.25) and LeakyReLU (a = 0.01), 1
    for anything else (ELU, no activation).
    """
    fan_in = weight.shape[1] * math.prod(weight.shape[2:])
    std = math.sqrt(_RELU_GAIN.get(act.lower(), 1.0) / fan_in)
    with torch.no_grad():
        return weight.normal_(0.0, std)


def glorot_normal_(weight: torch.Tensor) -> torch.Tensor:
    """Glorot-normal init in place (for layers before a sigmoid): ``N(0, 2 / (fan_in+fan_out))``."""
    nn.init.xavier_normal_(weight)
    return weight


def init_he(module: nn.Module, act: str = "relu", glorot: Sequence[nn.Module] = ()) -> None:
    """He-normal init of every conv/linear weight in ``module``, zero biases; the layers in
    ``glorot`` (outputs followed by a sigmoid) get Glorot-normal instead. Transposed convs count
    fan-in as ``C_in x kernel / stride`` (the inputs each output actually sees)."""
    skip = {id(m) for m in glorot}
    for m in module.modules():
        if isinstance(
            m, nn.Conv2d | nn.Conv3d | nn.Linear | nn.ConvTranspose2d | nn.ConvTranspose3d
        ):
            if id(m) in skip:
                glorot_normal_(m.weight)
            elif isinstance(m, nn.ConvTranspose2d | nn.ConvTranspose3d):
                w = m.weight
                fan_in = w.shape[0] * math.prod(w.shape[2:]) // math.prod(m.stride)
                std = math.sqrt(_RELU_GAIN.get(act.lower(), 1.0) / fan_in)
                with torch.no_grad():
                    w.normal_(0.0, std)
            else:
                he_normal_(m.weight, act)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


def check_input(
    x: torch.Tensor, net: str, spatial_dims: int, in_channels: int, divisor: int
) -> None:
    """Raise ``ValueError`` unless ``x`` is ``(B, in_channels, *S)`` with ``S % divisor == 0``.

    The message names the net, the size it got and the padded size it would accept.
    """
    if x.ndim != spatial_dims + 2 or x.shape[1] != in_channels:
        raise ValueError(
            f"{net} expects (B, {in_channels}, *{spatial_dims} spatial sizes), got {tuple(x.shape)}"
        )
    spatial = tuple(x.shape[2:])
    if any(s % divisor for s in spatial):
        padded = tuple(-(-s // divisor) * divisor for s in spatial)
        raise ValueError(
            f"{net} needs spatial sizes divisible by {divisor}; got {spatial} (pad to {padded})"
        )
