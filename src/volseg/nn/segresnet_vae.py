"""Myronenko's encoder-decoder with a VAE branch, and the variants of Adeniji et al.

Papers: A. Myronenko, "3D MRI brain tumor segmentation using autoencoder regularization",
BrainLes 2018 (BraTS 2018 winner); and the paper this module follows for its switches,
Adeniji et al., "U-Net + VAE for glioblastoma segmentation" (BraTS 2017,
``/work/shared/papers/unet-vae-glioblastoma-adeniji.txt``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import torch
from torch import nn

from volseg.nn import MODELS
from volseg.nn.blocks import (
    ConvNormAct,
    Downsample,
    ResidualBlock,
    Upsample,
    activation,
    conv,
    dropout,
    init_he,
)
from volseg.nn.network import OutputKind

__all__ = ["SegResNetVAE", "VAEOutput"]


class VAEOutput(NamedTuple):
    """What :class:`SegResNetVAE` returns in training mode.

    Attributes:
        logits: ``(B, out_channels, *S)`` region logits (apply a sigmoid for probabilities).
        reconstruction: ``(B, in_channels, *S)`` the VAE's reconstruction of the input image
            (the target of the L2 term).
        mu: ``(B, latent)`` mean of the approximate posterior.
        logvar: ``(B, latent)`` its log-variance (the KL term against ``N(0, 1)``).
    """

    logits: torch.Tensor
    reconstruction: torch.Tensor
    mu: torch.Tensor
    logvar: torch.Tensor


def _level_blocks(spatial_dims: int, channels: int, n: int, kw: dict[str, object]) -> nn.Sequential:
    return nn.Sequential(
        *(ResidualBlock(spatial_dims, channels, channels, **kw) for _ in range(n))  # type: ignore[arg-type]
    )


class _VAEBranch(nn.Module):
    """Encoder output ``(B, C_enc, *S/8)`` -> ``(reconstruction (B, in, *S), mu, logvar)``.

    Myronenko's Table 2: norm -> act -> stride-2 conv to a few channels, a dense layer to
    ``2 * latent`` (mean and log-variance), a reparameterised sample, a dense layer back, act,
    an up-step to ``C_enc`` channels, then the decoder's up-steps and blocks *without* skips,
    and a ``1^d`` conv to the input channels.
    """

    def __init__(
        self,
        spatial_dims: int,
        filters: Sequence[int],
        blocks_up: Sequence[int],
        out_channels: int,
        encoded_size: Sequence[int],
        reduce_channels: int,
        latent: int,
        upsample: str,
        kw: dict[str, object],
    ) -> None:
        super().__init__()
        order, norm, act = str(kw["order"]), str(kw["norm"]), str(kw["act"])
        groups = int(kw["groups"])  # type: ignore[call-overload]
        self.reduce = ConvNormAct(
            spatial_dims,
            filters[-1],
            reduce_channels,
            3,
            2,
            norm=norm,
            act=act,
            groups=groups,
            order=order,
            padding=1,
        )
        self.small = tuple(s // 2 for s in encoded_size)
        n = reduce_channels * math.prod(self.small)
        self.reduce_channels = reduce_channels
        self.to_latent = nn.Linear(n, 2 * latent)
        self.from_latent = nn.Linear(latent, n)
        self.act = activation(act, inplace=True)
        self.first_up = Upsample(spatial_dims, reduce_channels, filters[-1], upsample)
        self.ups = nn.ModuleList()
        self.blocks = nn.ModuleList()
        for level, n_blocks in zip(range(len(filters) - 2, -1, -1), blocks_up, strict=True):
            self.ups.append(Upsample(spatial_dims, filters[level + 1], filters[level], upsample))
            self.blocks.append(_level_blocks(spatial_dims, filters[level], n_blocks, kw))
        self.out = conv(spatial_dims, filters[0], out_channels, 1)

    def forward(self, enc: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        stats = self.to_latent(self.reduce(enc).flatten(1))
        mu, logvar = stats.chunk(2, dim=1)
        z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
        h = self.act(self.from_latent(z)).reshape(-1, self.reduce_channels, *self.small)
        h = self.first_up(h)
        for up, blocks in zip(self.ups, self.blocks, strict=True):
            h = blocks(up(h))
        return self.out(h), mu, logvar


class SegResNetVAE(nn.Module):
    """Asymmetric residual encoder-decoder with a VAE branch (Myronenko 2018).

    ``(B, in_channels, D, H, W) -> (B, out_channels, D, H, W)`` region **logits** (the paper's
    final sigmoid is applied by the losses and at inference), or, in training mode with the VAE
    branch on, a :class:`VAEOutput` whose first field are those logits. In ``eval()`` the VAE
    branch is skipped. Spatial sizes must be divisible by :attr:`divisor` (8, three
    downsamplings); in training with the VAE they must equal ``vae_input_size``.

    Architecture (Myronenko, Table 1), with the defaults:

    * A ``3^3`` conv from ``in_channels`` to ``init_filters`` (32), spatial dropout 0.2.
    * Encoder: ResNet blocks 1, 2, 2, 4 (``blocks_down``) at 32, 64, 128, 256 channels; each
      block is two (norm -> ReLU -> ``3^3`` conv) with an identity skip; between levels a
      downsampling that doubles the channels (stride-2 ``3^3`` conv).
    * Decoder: per level a ``1^3`` conv halving the channels and a 2x up-sampling, the encoder
      output of that level **added**, then 1 block (``blocks_up`` 1, 1, 1).
    * A ``1^3`` conv to ``out_channels`` (3 regions: enhancing tumour, tumour core, whole tumour).
    * VAE branch from the encoder output: norm, ReLU, stride-2 ``3^3`` conv to
      ``init_filters // 2`` (16) channels, dense to 256 (128 means + 128 log-variances), a
      sample ``z = mu + exp(logvar / 2) * eps``, dense back, ReLU, ``1^3`` conv + up-sampling to
      256 channels, then the decoder's steps without skips, and a ``1^3`` conv to
      ``in_channels``: the reconstruction for the loss ``L_dice + 0.1 L_L2 + 0.1 L_KL``.

    The switches of Adeniji et al. (each one argument):

    * half the filters: ``init_filters=16``;
    * squeeze-excitation on every block's residual: ``se_ratio=r`` (the paper gives no ``r``;
      Hu et al.'s 16 is the usual value);
    * max-pool instead of the strided conv: ``downsample="maxpool"`` (a ``1^3`` conv then
      doubles the channels);
    * up-sampling: ``upsample="linear"`` (Myronenko's paper: ``1^3`` conv + trilinear) or
      ``"transposed"`` (a ``2^3`` transposed conv). Adeniji et al. describe [10] as using
      transposed convs and switch to linear; Myronenko's paper itself uses linear, so linear is
      the default here and ``"transposed"`` is the switch;
    * ``order="cna"`` (conv -> norm -> ReLU, Adeniji) instead of ``"nac"`` (norm -> ReLU -> conv,
      Myronenko);
    * ``norm="batch"`` instead of ``"group"`` (8 groups, ``groups``);
    * He-normal init for ReLU layers and Glorot-normal for the layers that feed a sigmoid: the
      region head and, with ``se_ratio``, every squeeze-excitation gate (``init="he"``, the
      default here; ``"torch"`` keeps PyTorch's default init, since Myronenko states none);
    * ``vae=False`` drops the VAE branch altogether (then training mode returns logits too).

    Choices the papers leave open: the VAE input size. Its dense layers fix the input size
    in training: ``vae_input_size`` (array order ``(D, H, W)``) defaults to Adeniji's random
    crops, 144x144x128 voxels (x, y, z) -> ``(128, 144, 144)`` (Myronenko used 160x192x128 ->
    ``(128, 192, 160)``); in 2D the default is ``(144, 144)``. It must be divisible by 16 (the
    VAE halves the encoder output once more). Dropout placement follows Myronenko (after the
    first conv only).

    Args:
        spatial_dims: 3 (volumes) or 2 (images).
        in_channels: input modalities (4: t1, t1ce, t2, flair; Adeniji used 2: t1ce + flair).
        out_channels: output regions (3).
        init_filters: channels of the first level; level ``i`` has ``init_filters * 2**i``.
        blocks_down: ResNet blocks per encoder level; its length is the number of levels.
        blocks_up: blocks per decoder level, deepest first (``len(blocks_down) - 1`` entries).
        norm: ``"group"`` or ``"batch"`` (or ``"instance"``, ``"none"``).
        groups: groups of the group norm (8).
        act: activation name (``"relu"``).
        order: ``"nac"`` (Myronenko) or ``"cna"`` (Adeniji).
        downsample: ``"conv"`` or ``"maxpool"``.
        upsample: ``"linear"``, ``"transposed"`` or ``"nearest"``.
        se_ratio: squeeze-excitation reduction ratio, ``None`` for none.
        dropout: spatial dropout after the first conv (0.2).
        vae: build and run (in training) the VAE branch.
        vae_input_size: spatial input size the VAE branch is built for (see above).
        vae_latent: latent dimensions (128 means + 128 log-variances).
        init: ``"he"`` or ``"torch"``.
        channels_last: run the 3D net in channels-last memory layout (oneDNN's fast path on
            CPU, about 1.2x faster at the paper size; see ``docs/models.md``); the outputs are
            returned in the usual contiguous layout either way.
    """

    divisor: int = 8
    """Factor every input spatial size must be divisible by: ``2 ** (levels - 1)``."""
    output_kind: OutputKind = "vae"
    """``"vae"``: training mode returns :class:`VAEOutput`; ``"logits"`` when ``vae=False``."""

    def __init__(
        self,
        spatial_dims: int = 3,
        in_channels: int = 4,
        out_channels: int = 3,
        init_filters: int = 32,
        blocks_down: Sequence[int] = (1, 2, 2, 4),
        blocks_up: Sequence[int] = (1, 1, 1),
        norm: str = "group",
        groups: int = 8,
        act: str = "relu",
        order: str = "nac",
        downsample: str = "conv",
        upsample: str = "linear",
        se_ratio: int | None = None,
        dropout: float = 0.2,
        vae: bool = True,
        vae_input_size: int | Sequence[int] | None = None,
        vae_latent: int = 128,
        init: str = "he",
        channels_last: bool = True,
    ) -> None:
        super().__init__()
        if spatial_dims not in (2, 3):
            raise ValueError(f"spatial_dims must be 2 or 3, got {spatial_dims}")
        levels = len(blocks_down)
        if levels < 2 or len(blocks_up) != levels - 1:
            raise ValueError(
                f"blocks_down needs >= 2 levels and blocks_up one fewer entries; got "
                f"{list(blocks_down)} and {list(blocks_up)}"
            )
        if init not in ("he", "torch"):
            raise ValueError(f"init must be 'he' or 'torch', got {init!r}")
        self.spatial_dims = spatial_dims
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.divisor = 2 ** (levels - 1)
        self.channels_last = channels_last and spatial_dims == 3
        filters = [init_filters * 2**i for i in range(levels)]
        kw: dict[str, object] = {
            "norm": norm,
            "act": act,
            "order": order,
            "groups": groups,
            "se_ratio": se_ratio,
        }

        self.init_conv = conv(spatial_dims, in_channels, filters[0], 3)
        self.drop = _dropout(spatial_dims, dropout)
        self.down = nn.ModuleList(
            Downsample(spatial_dims, filters[i - 1], filters[i], downsample)
            for i in range(1, levels)
        )
        self.encoder = nn.ModuleList(
            _level_blocks(spatial_dims, filters[i], n, kw) for i, n in enumerate(blocks_down)
        )
        self.up = nn.ModuleList()
        self.decoder = nn.ModuleList()
        for level, n in zip(range(levels - 2, -1, -1), blocks_up, strict=True):
            self.up.append(Upsample(spatial_dims, filters[level + 1], filters[level], upsample))
            self.decoder.append(_level_blocks(spatial_dims, filters[level], n, kw))
        self.head = conv(spatial_dims, filters[0], out_channels, 1)

        self.vae_input_size: tuple[int, ...] | None = None
        self.vae: _VAEBranch | None = None
        self.output_kind = "vae" if vae else "logits"
        if vae:
            if vae_input_size is None:
                vae_input_size = (128, 144, 144) if spatial_dims == 3 else (144, 144)
            size = (
                (vae_input_size,) * spatial_dims
                if isinstance(vae_input_size, int)
                else tuple(int(s) for s in vae_input_size)
            )
            step = 2 * self.divisor
            if len(size) != spatial_dims or any(s % step for s in size):
                raise ValueError(
                    f"vae_input_size {size} must have {spatial_dims} sizes divisible by {step}"
                )
            self.vae_input_size = size
            self.vae = _VAEBranch(
                spatial_dims,
                filters,
                blocks_up,
                in_channels,
                tuple(s // self.divisor for s in size),
                max(1, init_filters // 2),
                vae_latent,
                upsample,
                kw,
            )
        if init == "he":
            init_he(self, act, glorot=[self.head])
        if self.channels_last:  # the weights too: a channels-last input alone does not keep the
            with torch.no_grad():  # convolutions' outputs channels-last
                for p in self.parameters():
                    if p.ndim == 5:
                        p.data = p.data.contiguous(memory_format=torch.channels_last_3d)

    def check_input(self, x: torch.Tensor) -> None:
        """Raise ``ValueError`` unless ``x`` is ``(B, in_channels, *S)``, ``S % divisor == 0``
        (and, in training with the VAE, ``S == vae_input_size``)."""
        if x.ndim != self.spatial_dims + 2 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"SegResNetVAE expects (B, {self.in_channels}, *{self.spatial_dims} spatial "
                f"sizes), got {tuple(x.shape)}"
            )
        spatial = tuple(x.shape[2:])
        if any(s % self.divisor for s in spatial):
            padded = tuple(-(-s // self.divisor) * self.divisor for s in spatial)
            raise ValueError(
                f"SegResNetVAE needs spatial sizes divisible by {self.divisor}; got {spatial} "
                f"(pad to {padded})"
            )
        if self.training and self.vae is not None and spatial != self.vae_input_size:
            raise ValueError(
                f"SegResNetVAE's VAE branch was built for inputs of size {self.vae_input_size} "
                f"(vae_input_size); got {spatial} in training"
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor | VAEOutput:
        self.check_input(x)
        if self.channels_last and not torch.onnx.is_in_onnx_export():  # ONNX has no layouts
            x = x.contiguous(memory_format=torch.channels_last_3d)
        h = self.drop(self.init_conv(x))
        skips = []
        for i, level in enumerate(self.encoder):
            if i > 0:
                h = self.down[i - 1](h)
            h = level(h)
            skips.append(h)
        encoded = skips.pop()
        h = encoded
        for up, level in zip(self.up, self.decoder, strict=True):
            h = level(up(h).add_(skips.pop()))  # in place: the up-step's backward keeps no output
        logits: torch.Tensor = self.head(h)
        if self.training and self.vae is not None:
            reconstruction, mu, logvar = self.vae(encoded)
            return VAEOutput(logits.contiguous(), reconstruction.contiguous(), mu, logvar)
        return logits.contiguous()


_dropout = dropout  # SegResNetVAE.__init__ shadows the factory name with its ``dropout`` argument

MODELS.register("segresnet_vae")(SegResNetVAE)
