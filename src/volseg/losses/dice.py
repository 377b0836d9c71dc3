"""Dice losses: V-Net Dice (Milletari 2016), soft Dice (Myronenko 2018), generalized Dice
(Sudre 2017).

Pure functions on probabilities and one-hot / region targets (the activation outside them), and
the registered modules that apply it: a softmax over exclusive labels, or a sigmoid per region
when the target is float masks shaped like the logits.
"""

from __future__ import annotations

from typing import Literal

import torch

from volseg.losses._targets import check_probs, probs_and_target
from volseg.losses.base import Loss, LossOutput, NetOutput, logits_of, register_loss

__all__ = [
    "GeneralizedDiceLoss",
    "SoftDiceLoss",
    "VNetDiceLoss",
    "generalized_dice_loss",
    "soft_dice_loss",
    "vnet_dice_loss",
]


def vnet_dice_loss(
    probs: torch.Tensor,
    target_onehot: torch.Tensor,
    eps: float = 1e-6,
    include_background: bool = False,
) -> torch.Tensor:
    """V-Net Dice loss ``1 - D`` (Milletari et al. 2016, Eq. 1).

    ``D = 2 * sum_i p_i g_i / (sum_i p_i^2 + sum_i g_i^2)``, the sums over the N voxels of one
    class of one sample. Its gradient is the paper's Eq. 2:
    ``dD/dp_j = 2 [g_j (sum p^2 + sum g^2) - 2 p_j sum(p g)] / (sum p^2 + sum g^2)^2``.

    Reduction: D is computed per class per batch sample (sums over the spatial axes only), then
    ``1 - D`` is averaged over the samples and the kept classes. ``eps`` is added to numerator
    and denominator, so a class absent from both prediction and target scores D = 1 (loss 0).

    Args:
        probs: ``(B, C, *spatial)`` probabilities (e.g. a softmax over C).
        target_onehot: ``(B, C, *spatial)`` one-hot (or soft) target, same shape.
        eps: smoothing added to numerator and denominator.
        include_background: keep channel 0; when False and ``C >= 2`` it is dropped (the binary
            V-Net scores the foreground channel only).

    Returns:
        Scalar loss in ``[0, 1]``.
    """
    check_probs(probs, target_onehot)
    if not include_background and probs.shape[1] >= 2:
        probs, target_onehot = probs[:, 1:], target_onehot[:, 1:]
    target = target_onehot.to(probs.dtype)
    dims = tuple(range(2, probs.ndim))
    intersection = (probs * target).sum(dims)
    denominator = (probs * probs).sum(dims) + (target * target).sum(dims)
    dice = (2.0 * intersection + eps) / (denominator + eps)
    return 1.0 - dice.mean()


def soft_dice_loss(
    probs: torch.Tensor,
    target: torch.Tensor,
    eps: float = 1.0,
    reduction: Literal["sum", "mean"] = "sum",
) -> torch.Tensor:
    """Soft Dice loss with smoothing, per channel (Myronenko 2018; Adeniji Eq. 3).

    ``L_c = 1 - (2 sum(p g) + eps) / (sum p^2 + sum g^2 + eps)`` for every channel c of every
    sample (sums over the spatial axes), then ``sum`` (the papers: "summed over the 3 channels")
    or ``mean`` over channels, and the mean over the batch. With ``eps = 1`` an empty channel
    predicted empty scores 0 and the loss stays smooth where ``sum g`` is small.

    Args:
        probs: ``(B, C, *spatial)`` probabilities (sigmoid per region, or a softmax).
        target: ``(B, C, *spatial)`` region masks or one-hot labels.
        eps: smoothing in numerator and denominator (the papers use 1).
        reduction: ``"sum"`` (range ``[0, C]``) or ``"mean"`` (range ``[0, 1]``) over channels.
    """
    check_probs(probs, target)
    target = target.to(probs.dtype)
    dims = tuple(range(2, probs.ndim))
    numerator = 2.0 * (probs * target).sum(dims) + eps
    denominator = (probs * probs).sum(dims) + (target * target).sum(dims) + eps
    per_channel = 1.0 - numerator / denominator  # (B, C)
    if reduction == "sum":
        return per_channel.sum(1).mean()
    if reduction == "mean":
        return per_channel.mean()
    raise ValueError(f"reduction must be 'sum' or 'mean', got {reduction!r}")


def generalized_dice_loss(
    probs: torch.Tensor, target: torch.Tensor, eps: float = 1e-6
) -> torch.Tensor:
    """Generalized Dice loss (Sudre et al. 2017), the Dice half of Liu's hybrid loss.

    ``GDL = 1 - 2 sum_c w_c sum_i p_ci g_ci / sum_c w_c sum_i (p_ci + g_ci)`` with
    ``w_c = 1 / (sum_i g_ci)^2``, per sample (sums over the spatial axes), averaged over the
    batch. Rare classes weigh as much as frequent ones.

    Absent classes: ``w_c`` would be infinite. A class with no target voxel in a sample gets the
    largest weight among that sample's present classes (so a false positive there still costs
    as much as one in the rarest present class); if no class is present at all, every weight is
    1. The weights depend on the target only and carry no gradient.

    Args:
        probs: ``(B, C, *spatial)`` probabilities.
        target: ``(B, C, *spatial)`` one-hot labels or region masks.
        eps: added to numerator and denominator (an all-empty sample with an all-zero
            prediction scores 0).
    """
    check_probs(probs, target)
    target = target.to(probs.dtype)
    dims = tuple(range(2, probs.ndim))
    volume = target.sum(dims)  # (B, C)
    present = volume > 0
    weights = torch.where(present, 1.0 / volume.clamp_min(1e-30) ** 2, torch.zeros_like(volume))
    largest = weights.amax(1, keepdim=True)
    fallback = torch.where(largest > 0, largest, torch.ones_like(largest))
    weights = torch.where(present, weights, fallback).detach()
    intersection = (weights * (probs * target).sum(dims)).sum(1)
    union = (weights * (probs.sum(dims) + volume)).sum(1)
    return (1.0 - (2.0 * intersection + eps) / (union + eps)).mean()


# ---------------------------------------------------------------------------------------------
# Registered modules on logits


@register_loss("vnet_dice")
class VNetDiceLoss(Loss):
    """V-Net Dice loss on logits (:func:`vnet_dice_loss`); terms ``{"vnet_dice"}``.

    ``forward(logits (B, C, *S), labels (B, 1, *S) int)`` applies a softmax and one-hot labels;
    ``include_background=False`` (default) scores channels 1.. only, as the paper's 2-channel
    net scores the foreground. With float region masks ``(B, R, *S)`` it applies a sigmoid and
    scores every channel.
    """

    def __init__(self, eps: float = 1e-6, include_background: bool = False) -> None:
        super().__init__()
        self.eps = eps
        self.include_background = include_background

    def forward(
        self, output: NetOutput, target: torch.Tensor, image: torch.Tensor | None = None
    ) -> LossOutput:
        probs, onehot, regions = probs_and_target(logits_of(output), target)
        value = vnet_dice_loss(probs, onehot, self.eps, self.include_background or regions)
        return LossOutput.single("vnet_dice", value)


@register_loss("soft_dice")
class SoftDiceLoss(Loss):
    """Soft Dice with smoothing (:func:`soft_dice_loss`), ``eps = 1`` summed over channels.

    Myronenko's / Adeniji's ``L_dice`` on 3 sigmoid region channels. In the softmax regime
    channel 0 (background) is dropped unless ``include_background``. Terms ``{"soft_dice"}``.
    """

    def __init__(
        self,
        eps: float = 1.0,
        reduction: Literal["sum", "mean"] = "sum",
        include_background: bool = False,
    ) -> None:
        super().__init__()
        self.eps = eps
        self.reduction: Literal["sum", "mean"] = reduction
        self.include_background = include_background

    def forward(
        self, output: NetOutput, target: torch.Tensor, image: torch.Tensor | None = None
    ) -> LossOutput:
        probs, onehot, regions = probs_and_target(logits_of(output), target)
        if not (regions or self.include_background):
            probs, onehot = probs[:, 1:], onehot[:, 1:]
        return LossOutput.single(
            "soft_dice", soft_dice_loss(probs, onehot, self.eps, self.reduction)
        )


@register_loss("generalized_dice")
class GeneralizedDiceLoss(Loss):
    """Generalized Dice (:func:`generalized_dice_loss`, Sudre 2017) on logits.

    Every channel counts (background included in the softmax regime, as in Sudre et al.).
    Terms ``{"generalized_dice"}``.
    """

    def __init__(self, eps: float = 1e-6) -> None:
        super().__init__()
        self.eps = eps

    def forward(
        self, output: NetOutput, target: torch.Tensor, image: torch.Tensor | None = None
    ) -> LossOutput:
        probs, onehot, _ = probs_and_target(logits_of(output), target)
        return LossOutput.single("generalized_dice", generalized_dice_loss(probs, onehot, self.eps))
