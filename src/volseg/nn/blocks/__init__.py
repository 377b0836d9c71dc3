"""Dimension-agnostic building blocks: layer factories and the blocks the five nets share.

Every factory and block takes ``spatial_dims`` (2 or 3), so a network written once with them runs
on ``(B, C, H, W)`` and ``(B, C, D, H, W)`` tensors; norms, activations and modes are named by
lower-case strings so they can come straight from a YAML config.

Modules (one concept each): :mod:`~volseg.nn.blocks.factories` (``conv``, ``conv_transpose``,
``norm``, ``activation``, ``dropout``, ``same_padding``, the CPU bf16-safe ``Conv2d``/``Conv3d``),
:mod:`~volseg.nn.blocks.layers` (``ConvNormAct``, ``SqueezeExcitation``, ``ResidualBlock``,
``Downsample``, ``Upsample``, ``SkipMerge``), :mod:`~volseg.nn.blocks.init` (``he_normal_``,
``glorot_normal_``, ``init_he``) and :mod:`~volseg.nn.blocks.checks` (``check_input``).
"""

from __future__ import annotations

from volseg.nn.blocks.checks import check_input
from volseg.nn.blocks.factories import (
    ACTIVATIONS,
    NORMS,
    Conv2d,
    Conv3d,
    activation,
    conv,
    conv_transpose,
    dropout,
    norm,
    same_padding,
)
from volseg.nn.blocks.init import glorot_normal_, he_normal_, init_he
from volseg.nn.blocks.layers import (
    DOWNSAMPLES,
    MERGES,
    ORDERS,
    UPSAMPLES,
    ConvNormAct,
    Downsample,
    ResidualBlock,
    SkipMerge,
    SqueezeExcitation,
    Upsample,
)

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
