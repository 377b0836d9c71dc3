"""V-Net (Milletari, Navab and Ahmadi, 2016): a residual volumetric encoder-decoder.

Paper: "V-Net: Fully Convolutional Neural Networks for Volumetric Medical Image Segmentation",
3DV 2016 (``/work/shared/papers/vnet-milletari-2016.txt``), prostate MRI (PROMISE12).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from volseg.nn import MODELS
from volseg.nn.blocks import ConvNormAct, activation, conv, conv_transpose, dropout, norm
from volseg.nn.network import OutputKind

__all__ = ["VNet"]


def _add_tiled(out: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``out + x.repeat(1, C_out // C_in, ...)`` without materialising the repeat.

    Channel ``c`` of the tiled input is ``x[:, c % C_in]`` (what ``Tensor.repeat`` gives), so the
    sum is a broadcast over a ``(B, C_out // C_in, C_in, *S)`` view. Without autograd the sum is
    written into ``out`` (a stage's own temporary): one activation fewer at the peak of a
    prediction window.
    """
    c_out, c_in = out.shape[1], x.shape[1]
    inplace = not torch.is_grad_enabled()
    if c_in in (1, c_out):  # plain add, or broadcast of one channel over all
        return out.add_(x) if inplace else out + x
    tiled = out.unflatten(1, (c_out // c_in, c_in))
    tiled = tiled.add_(x.unsqueeze(1)) if inplace else tiled + x.unsqueeze(1)
    return tiled.flatten(1, 2)


class _ResidualStage(nn.Module):
    """``n`` same-padded convs; ``out = act(convs(x) + residual)``, ``residual`` defaulting to x.

    ``(B, in_channels, *S) -> (B, channels, *S)``. Convs 1..n-1 are conv -> norm -> act; the last
    is conv -> norm, then the stage input is added and the stage activation applied.
    """

    def __init__(
        self,
        spatial_dims: int,
        in_channels: int,
        channels: int,
        n_convs: int,
        kernel_size: int,
        norm: str,
        act: str,
    ) -> None:
        super().__init__()
        if n_convs < 1:
            raise ValueError(f"a V-Net stage needs at least one conv, got {n_convs}")
        layers = [
            ConvNormAct(
                spatial_dims,
                in_channels if i == 0 else channels,
                channels,
                kernel_size,
                norm=norm,
                act=act if i < n_convs - 1 else "none",
            )
            for i in range(n_convs)
        ]
        self.convs = nn.Sequential(*layers)
        self.act = activation(act, channels)

    def forward(self, x: torch.Tensor, residual: torch.Tensor | None = None) -> torch.Tensor:
        out = self.convs(x)
        return self.act(_add_tiled(out, x if residual is None else residual))


class _UpConv(nn.Module):
    """Up-convolution, ``(B, C_in, *S) -> (B, C_out, *2S)``.

    Transposed conv (kernel 2, stride 2) -> norm -> act -> dropout.
    """

    def __init__(
        self, spatial_dims: int, in_channels: int, out_channels: int, nrm: str, act: str, p: float
    ) -> None:
        super().__init__()
        self.conv = conv_transpose(
            spatial_dims, in_channels, out_channels, 2, 2, bias=nrm.lower() == "none"
        )
        self.norm = norm(nrm, spatial_dims, out_channels)
        self.act = activation(act, out_channels)
        self.drop = dropout(spatial_dims, p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.act(self.norm(self.conv(x))))


class VNet(nn.Module):
    """V-Net: ``(B, in_channels, D, H, W) -> (B, out_channels, D, H, W)`` logits.

    In 2D (``spatial_dims=2``) the same net runs on ``(B, C, H, W)`` with ``k x k`` kernels.
    Every spatial size must be divisible by :attr:`divisor` (16 for the 5-stage net); the
    trainer and predictor pad to it. The output are **logits**: the paper's voxel-wise softmax
    is applied by the losses and at inference (foreground where ``p > 0.5``).

    Architecture (Milletari et al. 2016, Sec. 2 and Fig. 2), with the paper defaults
    (channels 16-32-64-128-256, the net has 5 stages at 1, 1/2, 1/4, 1/8, 1/16 resolution):

    * Encoder stage ``i`` has ``convs_per_stage[i]`` (1, 2, 3, 3, 3) ``5^3`` convolutions with
      ``"same"`` padding at ``base_channels * 2**i`` channels, and learns a residual: the stage
      input is added to the last conv's output, then PReLU.
    * Between stages, a ``2^3`` convolution with stride 2 halves the size and doubles the
      channels (no pooling), followed by PReLU.
    * Decoder: a ``2^3`` stride-2 transposed conv (+ PReLU) doubles the size; its output is
      concatenated with the encoder stage of that resolution (long skip, Fig. 2 horizontal
      connections); then 3, 3, 2, 1 residual ``5^3`` convs (the encoder mirrored) whose residual
      is the concatenation. Decoder stages have 256, 128, 64, 32 channels (Fig. 2): the
      transposed conv gives half of them, the skip the other half.
    * A final ``1^3`` conv maps 32 channels to ``out_channels`` (2: background, foreground).

    Choices the paper leaves open (each documented, most a parameter):

    * Padding: ``"same"`` (paper: "appropriate padding"), so sizes are kept inside a stage.
    * Residual placement: added before the stage's last PReLU (ResNet style), not after it.
    * First stage: its ``in_channels`` input is tiled to ``base_channels`` channels for the
      residual add, as the original Caffe model does (1 -> 16); if ``base_channels`` is not a
      multiple of ``in_channels`` a learned ``1^3`` projection is used instead.
    * Decoder conv counts 3, 3, 2, 1 (the paper only says "one to three"; this mirrors the
      encoder as the released prototxt does). ``decoder_convs`` overrides them (deepest first).
    * Normalisation: none in the paper (``norm="none"``); ``"batch"``, ``"group"`` (8 groups) or
      ``"instance"`` train more stably at small batch. Convs carry a bias only without norm.
    * PReLU: one learned slope per channel, initialised to 0.25 (Caffe/He et al. defaults).
    * Dropout (not in the paper; default 0): channel dropout after every down- and up-conv.
    * Initialisation (unstated): He normal for every conv, gain for the following non-linearity
      (PReLU slope 0.25), fan-in counted as the inputs each output actually sees (for the
      ``2^3``/stride-2 transposed conv that is ``C_in``); the final ``1^3`` conv uses gain 1;
      biases zero.

    Args:
        in_channels: input image channels (1 for the paper's MRI).
        out_channels: output classes including background (2 in the paper).
        base_channels: channels of the first stage (16); stage ``i`` has ``base * 2**i``.
        kernel_size: odd size of the stage convolutions (5).
        spatial_dims: 3 (volumes) or 2 (images).
        convs_per_stage: convs of each encoder stage, its length the number of stages.
        norm: ``"none"``, ``"batch"``, ``"group"`` or ``"instance"``.
        activation: ``"prelu"`` (paper), ``"relu"``, ``"elu"`` or ``"leakyrelu"``.
        dropout: channel-dropout probability.
        decoder_convs: convs of each decoder stage, deepest first; default the encoder mirrored.
    """

    divisor: int = 16
    """Factor every input spatial size must be divisible by: ``2 ** (stages - 1)``."""
    output_kind: OutputKind = "logits"
    """``forward`` returns the logits tensor (see :class:`volseg.nn.network.Network`)."""

    def __init__(
        self,
        in_channels: int = 1,
        out_channels: int = 2,
        base_channels: int = 16,
        kernel_size: int = 5,
        spatial_dims: int = 3,
        convs_per_stage: Sequence[int] = (1, 2, 3, 3, 3),
        norm: str = "none",
        activation: str = "prelu",
        dropout: float = 0.0,
        decoder_convs: Sequence[int] | None = None,
    ) -> None:
        super().__init__()
        if spatial_dims not in (2, 3):
            raise ValueError(f"spatial_dims must be 2 or 3, got {spatial_dims}")
        if kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd for 'same' padding, got {kernel_size}")
        n_stages = len(convs_per_stage)
        if n_stages < 2:
            raise ValueError(f"V-Net needs at least 2 stages, got {list(convs_per_stage)}")
        dec = list(reversed(convs_per_stage[:-1])) if decoder_convs is None else list(decoder_convs)
        if len(dec) != n_stages - 1:
            raise ValueError(f"decoder_convs needs {n_stages - 1} entries, got {dec}")

        self.in_channels = in_channels
        self.out_channels = out_channels
        self.spatial_dims = spatial_dims
        self.divisor = 2 ** (n_stages - 1)
        chans = [base_channels * 2**i for i in range(n_stages)]
        args = (kernel_size, norm, activation)

        self.input_proj: nn.Module | None = None
        if base_channels % in_channels:
            self.input_proj = conv(spatial_dims, in_channels, base_channels, 1, bias=False)
        self.input_stage = _ResidualStage(
            spatial_dims, in_channels, chans[0], convs_per_stage[0], *args
        )
        self.down = nn.ModuleList(
            nn.Sequential(
                ConvNormAct(spatial_dims, chans[i - 1], chans[i], 2, 2, norm=norm, act=activation),
                _dropout(spatial_dims, dropout),
            )
            for i in range(1, n_stages)
        )
        self.encoder = nn.ModuleList(
            _ResidualStage(spatial_dims, chans[i], chans[i], convs_per_stage[i], *args)
            for i in range(1, n_stages)
        )
        self.up = nn.ModuleList()
        self.decoder = nn.ModuleList()
        prev = chans[-1]
        for level, n_convs in zip(range(n_stages - 2, -1, -1), dec, strict=True):
            c = chans[level]
            self.up.append(_UpConv(spatial_dims, prev, c, norm, activation, dropout))
            self.decoder.append(_ResidualStage(spatial_dims, 2 * c, 2 * c, n_convs, *args))
            prev = 2 * c
        self.head = conv(spatial_dims, prev, out_channels, 1)
        self._init_weights(activation)

    def _init_weights(self, act: str) -> None:
        a = {"prelu": 0.25, "leakyrelu": 0.01}.get(act.lower(), 0.0)
        relu_like = act.lower() in ("relu", "prelu", "leakyrelu", "elu")
        gain = math.sqrt(2.0 / (1.0 + a * a)) if relu_like else 1.0
        for m in self.modules():
            if isinstance(m, nn.Conv2d | nn.Conv3d | nn.ConvTranspose2d | nn.ConvTranspose3d):
                w = m.weight
                kernel = math.prod(w.shape[2:])
                if isinstance(m, nn.ConvTranspose2d | nn.ConvTranspose3d):
                    fan_in = w.shape[0] * kernel // math.prod(m.stride)
                else:
                    fan_in = w.shape[1] * kernel
                g = 1.0 if m is self.head or m is self.input_proj else gain
                nn.init.normal_(w, 0.0, g / math.sqrt(fan_in))
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def check_input(self, x: torch.Tensor) -> None:
        """Raise ``ValueError`` unless ``x`` is ``(B, in_channels, *S)``, ``S % divisor == 0``."""
        if x.ndim != self.spatial_dims + 2 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"VNet expects (B, {self.in_channels}, *{self.spatial_dims} spatial sizes), "
                f"got {tuple(x.shape)}"
            )
        spatial = tuple(x.shape[2:])
        if any(s % self.divisor for s in spatial):
            padded = tuple(-(-s // self.divisor) * self.divisor for s in spatial)
            raise ValueError(
                f"VNet needs spatial sizes divisible by {self.divisor}; got {spatial} "
                f"(pad to {padded})"
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        residual = x if self.input_proj is None else self.input_proj(x)
        h = self.input_stage(x, residual)
        skips = []
        for down, stage in zip(self.down, self.encoder, strict=True):
            skips.append(h)
            h = stage(down(h))
        for up, stage in zip(self.up, self.decoder, strict=True):
            h = stage(torch.cat((up(h), skips.pop()), dim=1))
        out: torch.Tensor = self.head(h)
        return out


_dropout = dropout  # VNet.__init__ shadows the factory name with its ``dropout`` argument

MODELS.register("vnet")(VNet)
