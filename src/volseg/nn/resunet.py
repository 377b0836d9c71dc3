"""Residual U-Net (Liu, ISLES 2018 CT perfusion): a U-Net whose conv pairs are residual blocks.

Paper: P. Liu, "Stroke lesion segmentation with 2D convolutional neural network and novel loss
function" (``/work/shared/papers/resunet2d-hybrid-loss-liu.txt``): "a 2D U-Net with residual
connections as our model backbone", multi-channel CTP input. Only the abstract is available, so
the layer plan follows the U-Net of Ronneberger et al. 2015 (the backbone it cites).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from volseg.nn import MODELS
from volseg.nn.blocks import (
    Downsample,
    ResidualBlock,
    SkipMerge,
    Upsample,
    check_input,
    conv,
    dropout,
    init_he,
)
from volseg.nn.network import OutputKind

__all__ = ["ResUNet"]


class ResUNet(nn.Module):
    """U-Net with residual blocks, 2D (the paper) or 3D.

    ``(B, in_channels, *S) -> (B, out_channels, *S)`` logits, ``S`` = ``(H, W)`` or
    ``(D, H, W)``; every size divisible by :attr:`divisor` (``2 ** (len(channels) - 1)``, 16).

    Choices (the abstract names only "2D U-Net + residual connections"; each is a parameter):

    * U-Net levels at ``channels`` 64, 128, 256, 512, 1024 (Ronneberger et al.);
    * each U-Net double conv becomes a residual block: conv -> BN -> ReLU -> conv -> BN, plus
      the block input (a ``1^d`` conv + BN projection where the channel count changes), then
      ReLU (ResNet v1);
    * downsampling by ``2^d`` max-pooling (U-Net), upsampling by a ``2^d`` stride-2 transposed
      conv halving the channels, long skips merged by concatenation (U-Net; ``merge="sum"``
      is the alternative);
    * optional channel dropout at the bottom (not in the paper; default 0);
    * a ``1^d`` conv classifier; He-normal init.

    Args:
        spatial_dims: 2 (the paper) or 3.
        in_channels: input channels: 5, the ISLES 2018 CTP maps (CT, CBF, CBV, MTT, Tmax); the
            paper says only "multi-channel CTP input", so this follows the challenge's data.
        out_channels: classes including background (2).
        channels: channels per level, shallowest first.
        norm: ``"batch"``, ``"group"``, ``"instance"`` or ``"none"``.
        act: activation name.
        downsample: ``"maxpool"`` or ``"conv"`` (stride-2 ``3^d`` conv).
        upsample: ``"transposed"``, ``"linear"`` or ``"nearest"``.
        merge: ``"cat"`` or ``"sum"``.
        dropout: channel-dropout probability at the bottom level.
    """

    divisor: int = 16
    """Factor every input spatial size must be divisible by."""
    output_kind: OutputKind = "logits"
    """``forward`` returns the logits tensor (see :class:`volseg.nn.network.Network`)."""

    def __init__(
        self,
        spatial_dims: int = 2,
        in_channels: int = 5,
        out_channels: int = 2,
        channels: Sequence[int] = (64, 128, 256, 512, 1024),
        norm: str = "batch",
        act: str = "relu",
        downsample: str = "maxpool",
        upsample: str = "transposed",
        merge: str = "cat",
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if spatial_dims not in (2, 3):
            raise ValueError(f"spatial_dims must be 2 or 3, got {spatial_dims}")
        if len(channels) < 2:
            raise ValueError(f"ResUNet needs at least 2 levels, got {list(channels)}")
        self.spatial_dims = spatial_dims
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.divisor = 2 ** (len(channels) - 1)
        c = list(channels)

        def block(c_in: int, c_out: int) -> ResidualBlock:
            return ResidualBlock(spatial_dims, c_in, c_out, norm=norm, act=act)

        self.encoder = nn.ModuleList(
            block(in_channels if i == 0 else c[i - 1], c[i]) for i in range(len(c))
        )
        self.down = nn.ModuleList(
            Downsample(spatial_dims, c[i], c[i], downsample) for i in range(len(c) - 1)
        )
        self.drop = _dropout(spatial_dims, dropout)
        self.up = nn.ModuleList()
        self.merges = nn.ModuleList()
        self.decoder = nn.ModuleList()
        for i in range(len(c) - 2, -1, -1):
            self.up.append(Upsample(spatial_dims, c[i + 1], c[i], upsample))
            m = SkipMerge(merge)
            self.merges.append(m)
            self.decoder.append(block(m.out_channels(c[i], c[i]), c[i]))
        self.head = conv(spatial_dims, c[0], out_channels, 1)
        init_he(self, act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input(x, "ResUNet", self.spatial_dims, self.in_channels, self.divisor)
        h = self.encoder[0](x)
        skips = [h]
        for down, level in zip(self.down, self.encoder[1:], strict=True):
            h = level(down(h))
            skips.append(h)
        h = self.drop(skips.pop())
        for up, merge, level in zip(self.up, self.merges, self.decoder, strict=True):
            h = level(merge(up(h), skips.pop()))
        out: torch.Tensor = self.head(h)
        return out


_dropout = dropout  # ResUNet.__init__ shadows the factory name with its ``dropout`` argument

MODELS.register("resunet")(ResUNet)
