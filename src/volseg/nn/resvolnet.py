"""Residual volumetric network (Yu and Heng, ISLES 2017 stroke lesion outcome).

Paper: L. Yu and P.-A. Heng, "Residual volumetric network for ischemic stroke lesion
segmentation" (``/work/shared/papers/residual-volumetric-network-yu-heng.txt``). Its layer plan is
only in a figure that the text lacks; this module follows the authors' related residual
volumetric nets (VoxResNet, Chen, Dou, Yu, Qin and Heng 2016; the mixed-residual prostate net,
Yu et al. AAAI 2017) and documents every choice in :class:`ResVolNet`.
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
    activation,
    check_input,
    conv,
    dropout,
    init_he,
    norm,
)
from volseg.nn.network import OutputKind

__all__ = ["ResVolNet"]


class ResVolNet(nn.Module):
    """Residual volumetric encoder-decoder with summed long skips.

    ``(B, in_channels, D, H, W) -> (B, out_channels, D, H, W)`` logits (the paper's softmax is
    applied by the losses and at inference). Spatial sizes must be divisible by :attr:`divisor`
    (``2 ** (len(channels) - 1)``, 8 by default).

    From the paper: ``3^3`` convolutions, each conv -> BatchNorm -> ReLU; residual learning;
    encoder and decoder paths combined by **summation** (not concatenation), so the decoder also
    learns a residual on the encoder features; a ``1^3`` conv classifier.

    Choices taken from the authors' VoxResNet / mixed-residual lineage (each a parameter):

    * a stem conv -> BN -> ReLU from ``in_channels`` to ``channels[0]``;
    * levels at ``channels`` = 32, 64, 128, 256, each with ``units`` (2) residual units: two
      (conv -> BN -> ReLU) with the last ReLU after the identity add (ResNet v1, matching
      "BN before each ReLU");
    * downsampling by a stride-2 ``3^3`` conv -> BN -> ReLU that doubles the channels
      (VoxResNet); upsampling by a ``2^3`` stride-2 transposed conv -> BN -> ReLU halving them;
    * at each decoder level: upsampled features + encoder features of that level (sum), then
      ``units`` residual units;
    * optional channel dropout (not in the paper; default 0) before the classifier;
    * no deep supervision (VoxResNet's auxiliary classifiers are left out; the paper does not
      mention them); He-normal init.

    ``residual=False`` is the plain counterpart for the paper's comparison (residual vs the same
    net without residual units): every unit keeps its two conv -> BN -> ReLU (same convs, norms,
    activations and parameter count) but loses its identity skip. The long skips stay summed:
    summation instead of concatenation is the paper's design of the paths' junctions, not part of
    the residual units, so only the short skips are switched off (Drozdzal et al.'s
    ``fcresnet`` has the separate ``long_skips`` switch).

    Args:
        spatial_dims: 3 (the paper) or 2.
        in_channels: input modalities.
        out_channels: classes including background (2).
        channels: channels of each level, shallowest first; its length is the number of levels.
        units: residual units per level, in both paths.
        norm: ``"batch"`` (paper), ``"group"``, ``"instance"`` or ``"none"``.
        act: activation name (``"relu"``).
        upsample: ``"transposed"``, ``"linear"`` or ``"nearest"``.
        dropout: channel-dropout probability before the classifier.
        residual: identity skips inside the units (``False``: plain conv stacks, see above).
    """

    divisor: int = 8
    """Factor every input spatial size must be divisible by."""
    output_kind: OutputKind = "logits"
    """``forward`` returns the logits tensor (see :class:`volseg.nn.network.Network`)."""

    def __init__(
        self,
        spatial_dims: int = 3,
        in_channels: int = 1,
        out_channels: int = 2,
        channels: Sequence[int] = (32, 64, 128, 256),
        units: int = 2,
        norm: str = "batch",
        act: str = "relu",
        upsample: str = "transposed",
        dropout: float = 0.0,
        residual: bool = True,
    ) -> None:
        super().__init__()
        if spatial_dims not in (2, 3):
            raise ValueError(f"spatial_dims must be 2 or 3, got {spatial_dims}")
        if len(channels) < 2 or units < 1:
            raise ValueError(f"need >= 2 levels and >= 1 unit; got {list(channels)}, {units}")
        self.spatial_dims = spatial_dims
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.divisor = 2 ** (len(channels) - 1)
        self.residual = residual
        c = list(channels)

        def level(ch: int) -> nn.Sequential:
            return nn.Sequential(
                *(
                    ResidualBlock(spatial_dims, ch, ch, norm=norm, act=act, residual=residual)
                    for _ in range(units)
                )
            )

        self.stem = ConvNormAct(spatial_dims, in_channels, c[0], 3, norm=norm, act=act)
        self.encoder = nn.ModuleList(level(ch) for ch in c)
        self.down = nn.ModuleList(
            ConvNormAct(spatial_dims, c[i], c[i + 1], 3, 2, norm=norm, act=act, padding=1)
            for i in range(len(c) - 1)
        )
        self.up = nn.ModuleList()
        self.merges = nn.ModuleList()
        self.decoder = nn.ModuleList()
        for i in range(len(c) - 2, -1, -1):
            self.up.append(
                nn.Sequential(
                    Upsample(spatial_dims, c[i + 1], c[i], upsample, bias=False),
                    _norm(norm, spatial_dims, c[i]),
                    activation(act, c[i], inplace=True),
                )
            )
            self.merges.append(SkipMerge("sum"))
            self.decoder.append(level(c[i]))
        self.drop = _dropout(spatial_dims, dropout)
        self.head = conv(spatial_dims, c[0], out_channels, 1)
        init_he(self, act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input(x, "ResVolNet", self.spatial_dims, self.in_channels, self.divisor)
        h = self.encoder[0](self.stem(x))
        skips = [h]
        for down, level in zip(self.down, self.encoder[1:], strict=True):
            h = level(down(h))
            skips.append(h)
        skips.pop()
        for up, merge, level in zip(self.up, self.merges, self.decoder, strict=True):
            h = level(merge(up(h), skips.pop()))
        out: torch.Tensor = self.head(self.drop(h))
        return out


_norm = norm  # ResVolNet.__init__ shadows the factory name with its ``norm`` argument
_dropout = dropout  # and ``dropout`` likewise


MODELS.register("resvolnet")(ResVolNet)
