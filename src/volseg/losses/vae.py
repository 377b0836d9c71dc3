"""The VAE regulariser of Myronenko 2018 / Adeniji et al.: ``L = L_dice + 0.1 L_L2 + 0.1 L_KL``.

The segmentation net grows a VAE branch that reconstructs its input image from a sampled latent;
the reconstruction error (L2) and the latent's divergence from ``N(0, 1)`` (KL) regularise the
shared encoder. :func:`kl_divergence` and :func:`vae_loss` are the pure terms; :class:`VAELoss`
the registered ``vae`` loss on the net's training-mode output.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

import torch
import torch.nn.functional as F

from volseg.losses.base import Loss, LossOutput, NetOutput, create_loss, register_loss

__all__ = ["VAELoss", "VAEOutputLike", "kl_divergence", "vae_loss"]


def kl_divergence(mu: torch.Tensor, logvar: torch.Tensor, num_voxels: int) -> torch.Tensor:
    """``L_KL = (1/N) sum (mu^2 + sigma^2 - log sigma^2 - 1)`` against ``N(0, 1)`` (Adeniji Eq. 5).

    Written with the log-variance the network learns (``sigma^2 = exp(logvar)``, never negative).
    The sum runs over the batch and the latent axis; ``num_voxels`` is N (the papers divide by
    the total number of image voxels). Like the papers, no factor 1/2.
    """
    return (mu * mu + logvar.exp() - logvar - 1.0).sum() / num_voxels


def vae_loss(
    reconstruction: torch.Tensor, image: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """The VAE branch's two terms ``(L_L2, L_KL)`` (Myronenko 2018; Adeniji Eqs. 4-5).

    ``L_L2`` is the mean squared error between reconstruction and input image over every voxel
    and channel. The papers write ``||R_hat - R||_2^2``; the per-voxel mean keeps the term on the
    scale of a Dice loss, so the papers' weight 0.1 is meaningful (a sum over a 4x160x192x128
    crop would be ~1e7 times larger). ``L_KL`` is :func:`kl_divergence` with
    ``N = image.numel()`` (all voxels of all channels of the batch).

    Args:
        reconstruction: ``(B, C, *spatial)``; image: the input, same shape.
        mu, logvar: ``(B, latent)`` mean and log-variance of the approximate posterior.
    """
    if reconstruction.shape != image.shape:
        raise ValueError(
            f"reconstruction {tuple(reconstruction.shape)} and image {tuple(image.shape)} "
            "differ in shape"
        )
    l2 = F.mse_loss(reconstruction, image.to(reconstruction.dtype))
    return l2, kl_divergence(mu, logvar, image.numel())


@runtime_checkable
class VAEOutputLike(Protocol):
    """The fields :class:`VAELoss` reads (``volseg.nn.segresnet_vae.VAEOutput`` has them)."""

    @property
    def logits(self) -> torch.Tensor: ...
    @property
    def reconstruction(self) -> torch.Tensor: ...
    @property
    def mu(self) -> torch.Tensor: ...
    @property
    def logvar(self) -> torch.Tensor: ...


@register_loss("vae")
class VAELoss(Loss):
    """``L = L_dice + l2_weight * L_L2 + kl_weight * L_KL`` (Myronenko 2018; Adeniji Eq. 2).

    ``forward(output, target, image) -> LossOutput`` where ``output`` is the network's
    training-mode ``VAEOutput(logits, reconstruction, mu, logvar)``, ``target`` the labels or
    region masks for the Dice term (as every other loss takes them) and ``image`` the network
    input ``(B, C, *S)`` the VAE reconstructs; terms ``{"dice", "l2", "kl"}``, unweighted. A plain
    logits tensor (evaluation mode: the VAE branch is off) gives the Dice term alone, as
    ``total`` and as terms ``{"dice"}``::

        loss_fn = create_loss("vae")  # soft Dice eps=1 summed, weights 0.1 and 0.1
        result = loss_fn(model(image), target, image)
        result.total.backward()  # result.terms["l2"], result.terms["kl"] to log

    Args:
        dice: name of the registered Dice-like loss for ``L_dice`` (default ``"soft_dice"``).
        dice_kwargs: its keyword arguments (default: ``eps=1``, summed over channels).
        l2_weight, kl_weight: the papers' 0.1 and 0.1.
    """

    def __init__(
        self,
        dice: str = "soft_dice",
        dice_kwargs: Mapping[str, Any] | None = None,
        l2_weight: float = 0.1,
        kl_weight: float = 0.1,
    ) -> None:
        super().__init__()
        if dice in ("vae", "combined"):
            raise ValueError(f"loss.kwargs.dice must be a segmentation loss, got {dice!r}")
        self.dice = create_loss(dice, **dict(dice_kwargs or {}))
        self.l2_weight = l2_weight
        self.kl_weight = kl_weight

    def forward(
        self, output: NetOutput, target: torch.Tensor, image: torch.Tensor | None = None
    ) -> LossOutput:
        if isinstance(output, torch.Tensor):
            return LossOutput.single("dice", self.dice(output, target).total)
        if not isinstance(output, VAEOutputLike):
            raise TypeError(
                "VAELoss takes logits or the VAE net's output (logits, reconstruction, mu, "
                f"logvar), got {type(output).__name__}"
            )
        if image is None:
            raise ValueError("VAELoss needs the input image for the reconstruction term")
        dice = self.dice(output.logits, target).total
        l2, kl = vae_loss(output.reconstruction, image, output.mu, output.logvar)
        return LossOutput.weighted(
            {"dice": dice, "l2": l2, "kl": kl},
            {"dice": 1.0, "l2": self.l2_weight, "kl": self.kl_weight},
        )
