"""Blocks assembled from the layer factories, for 2D and 3D alike.

* orders: ``"cna"`` (conv -> norm -> act, ResNet v1) and ``"nac"`` (norm -> act -> conv,
  pre-activation ResNet v2 as in Myronenko 2018);
* downsampling: ``"conv"`` (strided conv) or ``"maxpool"``; upsampling: ``"transposed"``
  (transposed conv), ``"linear"`` or ``"nearest"`` (interpolation + ``1^d`` conv);
* skip merges: ``"cat"`` (U-Net, V-Net) or ``"sum"`` (Yu & Heng, Drozdzal, Myronenko).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from volseg.nn.blocks.factories import (
    _check_dims,
    _Size,
    activation,
    conv,
    conv_transpose,
    same_padding,
)
from volseg.nn.blocks.factories import norm as _norm  # the blocks' ``norm`` argument shadows it
from volseg.nn.blocks.groupnorm import fusable, fused_group_norm_relu
from volseg.nn.blocks.init import glorot_normal_, he_normal_

__all__ = [
    "DOWNSAMPLES",
    "MERGES",
    "ORDERS",
    "UPSAMPLES",
    "ConvNormAct",
    "Downsample",
    "ResidualBlock",
    "SkipMerge",
    "SqueezeExcitation",
    "Upsample",
]

ORDERS = ("cna", "nac")
DOWNSAMPLES = ("conv", "maxpool")
UPSAMPLES = ("transposed", "linear", "nearest")
MERGES = ("cat", "sum")


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
    never on the block's own input). Group norm + ReLU on channels-last float32 inputs
    (training or not) run as one fused op with the same result
    (:mod:`~volseg.nn.blocks.groupnorm`).
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
            return self.conv(self._norm_act(x))
        return self._norm_act(self.conv(x))

    def _norm_act(self, x: torch.Tensor) -> torch.Tensor:
        """``act(norm(x))``; group norm + ReLU on a channels-last float32 or bfloat16 tensor run
        fused (:mod:`~volseg.nn.blocks.groupnorm`: same values and gradients, fewer passes)."""
        if fusable(self.norm, self.act, x):
            return fused_group_norm_relu(x, self.norm)  # type: ignore[arg-type]
        return self.act(self.norm(x))


class SqueezeExcitation(nn.Module):
    """Squeeze-and-excitation (Hu et al. 2018): ``x * sigmoid(W2 relu(W1 mean(x)))``.

    ``(B, C, *S) -> (B, C, *S)``. The squeeze is a global average over the spatial axes; ``W1``
    reduces ``C`` to ``max(1, C // ratio)``, ``W2`` restores ``C``; the sigmoid gate rescales
    each channel. Adeniji et al. apply it to the residual before the identity is added.

    Init: ``W1`` He-normal (it feeds the ReLU), ``W2`` Glorot-normal (it feeds the sigmoid);
    :func:`~volseg.nn.blocks.init.init_he` on an enclosing net keeps ``W2`` Glorot, as
    :attr:`glorot_layers` names it.
    """

    glorot_layers: tuple[str, ...] = ("expand",)
    """Attributes holding layers that feed a sigmoid (Glorot init under ``init_he``)."""

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
        if self.shortcut is not None:  # in place: no op above needs ``out`` for its backward
            out = out.add_(self.shortcut(x))
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
