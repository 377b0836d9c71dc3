"""FC-ResNet (Drozdzal et al. 2016): a very deep FCN with long and short skips, each switchable.

Paper: M. Drozdzal, E. Vorontsov, G. Chartrand, S. Kadoury and C. Pal, "The importance of skip
connections in biomedical image segmentation", DLMIA 2016
(``/work/shared/papers/skip-connections-drozdzal-2016.txt``; only the abstract is there). The
plan below follows the published paper's FC-ResNet (its Table 1) where it is known, and
documents the rest in :class:`FCResNet`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from volseg.nn import MODELS
from volseg.nn.blocks import (
    ConvNormAct,
    ResidualBlock,
    SkipMerge,
    Upsample,
    check_input,
    conv,
    dropout,
    init_he,
)
from volseg.nn.network import OutputKind

__all__ = ["BLOCK_TYPES", "FCResNet"]

BLOCK_TYPES = ("basic", "bottleneck")


def _block(
    kind: str,
    spatial_dims: int,
    c_in: int,
    c_out: int,
    stride: int,
    norm: str,
    act: str,
    residual: bool,
) -> ResidualBlock:
    if kind == "basic":
        kernels: tuple[int, ...] = (3, 3)
        mid = c_out
    elif kind == "bottleneck":
        kernels, mid = (1, 3, 1), max(1, c_out // 4)
    else:
        raise ValueError(f"unknown block type {kind!r}; known: {', '.join(BLOCK_TYPES)}")
    return ResidualBlock(
        spatial_dims,
        c_in,
        c_out,
        kernels,
        stride,
        norm=norm,
        act=act,
        order="nac",
        mid_channels=mid,
        residual=residual,
    )


class FCResNet(nn.Module):
    """Very deep fully convolutional ResNet with long and short skips.

    ``(B, in_channels, *S) -> (B, out_channels, *S)`` logits, ``S`` = ``(H, W)`` (EM slices, the
    paper) or ``(D, H, W)``; sizes divisible by :attr:`divisor` (``2 ** len(widths)``, 32).

    Layout (Drozdzal et al., Table 1; defaults in brackets):

    * stem: a ``3^d`` conv to ``stem_channels`` (32) at full resolution;
    * contracting path: ``len(widths)`` levels, each halving the resolution in its first block
      (stride 2 in its ``3^d`` conv, a strided ``1^d`` projection on the skip) and holding
      ``repeats[i]`` blocks of type ``block_types[i]`` and width ``widths[i]``: a basic block
      at 32, then bottleneck blocks at 128 (x3), 256 (x8), 512 (x10), and the "across" level
      1024 (x3) at the bottom;
    * expanding path, mirrored: for each level from deep to shallow, a ``1^d`` conv to that
      level's width and 2x up-sampling by repetition (nearest), the contracting path's features
      of the same resolution **summed** in (the long skip), then the level's blocks (the
      bottom's output goes up directly). At full resolution the stem's features are summed in,
      then a ``3^d`` conv and the ``1^d`` classifier (each norm -> ReLU -> conv).

    Blocks are pre-activation (BN -> ReLU -> conv, He et al. 2016b, cited by the paper): basic =
    two ``3^d`` convs; bottleneck = ``1^d`` to width / 4, ``3^d``, ``1^d`` back to width. With the
    defaults the net has 47 residual blocks and 146 conv layers on its main path (``depth``).

    Ablation switches (the paper's experiment): ``short_skips=False`` drops the identity inside
    every block (plain conv stacks); ``long_skips=False`` drops the contracting -> expanding sums.
    Both default on.

    Choices the abstract leaves open: up-sampling by repetition after a ``1^d`` channel
    projection (the projection commutes with the repetition and runs at low resolution); long
    skips summed at the *input* of each expanding level; the "across" level sits one resolution
    below the last contracting level (so the divisor is 32); He-normal init; optional channel
    dropout before the classifier (default 0).

    Args:
        spatial_dims: 2 (the paper) or 3.
        in_channels: input channels.
        out_channels: classes including background (2: membrane / not).
        stem_channels: channels of the stem and of the final conv.
        widths: block widths of the levels, shallowest first, the last one the bottom.
        repeats: blocks per level (same length as ``widths``); deeper nets: raise them.
        block_types: ``"basic"`` or ``"bottleneck"`` per level (same length as ``widths``).
        long_skips: sum contracting features into the expanding path.
        short_skips: identity (or projection) skip inside every block.
        norm: ``"batch"`` (paper), ``"group"``, ``"instance"`` or ``"none"``.
        act: activation name.
        upsample: ``"nearest"`` (repetition), ``"linear"`` or ``"transposed"``.
        dropout: channel-dropout probability before the classifier.
    """

    divisor: int = 32
    """Factor every input spatial size must be divisible by."""
    output_kind: OutputKind = "logits"
    """``forward`` returns the logits tensor (see :class:`volseg.nn.network.Network`)."""

    def __init__(
        self,
        spatial_dims: int = 2,
        in_channels: int = 1,
        out_channels: int = 2,
        stem_channels: int = 32,
        widths: Sequence[int] = (32, 128, 256, 512, 1024),
        repeats: Sequence[int] = (1, 3, 8, 10, 3),
        block_types: Sequence[str] = (
            "basic",
            "bottleneck",
            "bottleneck",
            "bottleneck",
            "bottleneck",
        ),
        long_skips: bool = True,
        short_skips: bool = True,
        norm: str = "batch",
        act: str = "relu",
        upsample: str = "nearest",
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if spatial_dims not in (2, 3):
            raise ValueError(f"spatial_dims must be 2 or 3, got {spatial_dims}")
        n = len(widths)
        if n < 1 or len(repeats) != n or len(block_types) != n or min(repeats) < 1:
            raise ValueError(
                f"widths, repeats and block_types need the same length >= 1 and repeats >= 1; "
                f"got {list(widths)}, {list(repeats)}, {list(block_types)}"
            )
        self.spatial_dims = spatial_dims
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.divisor = 2**n
        self.long_skips = long_skips
        self.short_skips = short_skips
        w = [stem_channels, *widths]  # w[r]: channels at resolution 1 / 2**r

        self.stem = conv(spatial_dims, in_channels, stem_channels, 3)
        self.contracting = nn.ModuleList()
        for r in range(1, n + 1):
            kind = block_types[r - 1]
            self.contracting.append(
                nn.Sequential(
                    *(
                        _block(
                            kind,
                            spatial_dims,
                            w[r - 1] if j == 0 else w[r],
                            w[r],
                            2 if j == 0 else 1,
                            norm,
                            act,
                            short_skips,
                        )
                        for j in range(repeats[r - 1])
                    )
                )
            )
        self.up = nn.ModuleList()
        self.merges = nn.ModuleList()
        self.expanding = nn.ModuleList()
        for r in range(n - 1, 0, -1):
            kind = block_types[r - 1]
            self.up.append(Upsample(spatial_dims, w[r + 1], w[r], upsample))
            if long_skips:
                self.merges.append(SkipMerge("sum"))
            self.expanding.append(
                nn.Sequential(
                    *(
                        _block(kind, spatial_dims, w[r], w[r], 1, norm, act, short_skips)
                        for _ in range(repeats[r - 1])
                    )
                )
            )
        self.up.append(Upsample(spatial_dims, w[1], w[0], upsample))
        if long_skips:
            self.merges.append(SkipMerge("sum"))
        self.final = ConvNormAct(spatial_dims, w[0], w[0], 3, norm=norm, act=act, order="nac")
        self.drop = _dropout(spatial_dims, dropout)
        self.head = ConvNormAct(
            spatial_dims, w[0], out_channels, 1, norm=norm, act=act, order="nac"
        )
        init_he(self, act)

    @property
    def depth(self) -> int:
        """Conv layers on the main path (projection skips not counted)."""
        convs = [m for m in self.modules() if isinstance(m, nn.Conv2d | nn.Conv3d)]
        projections = sum(
            1
            for m in self.modules()
            if isinstance(m, ResidualBlock) and isinstance(m.shortcut, nn.Conv2d | nn.Conv3d)
        )
        return len(convs) - projections

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input(x, "FCResNet", self.spatial_dims, self.in_channels, self.divisor)
        h = self.stem(x)
        skips = [h]
        for level in self.contracting:
            h = level(h)
            skips.append(h)
        skips.pop()  # the bottom goes straight up
        levels: list[nn.Module] = [*self.expanding, self.final]
        for i, (up, level) in enumerate(zip(self.up, levels, strict=True)):
            h = up(h)
            skip = skips.pop()
            if self.long_skips:
                h = self.merges[i](h, skip)
            h = level(h)
        out: torch.Tensor = self.head(self.drop(h))
        return out


_dropout = dropout  # FCResNet.__init__ shadows the factory name with its ``dropout`` argument

MODELS.register("fcresnet")(FCResNet)
