"""Segmentation losses: ``LOSSES`` maps names to ``nn.Module`` classes; ``create_loss(name, ...)``.

The pure functions take probabilities and one-hot targets (activation stays outside them); the
registered modules take the network's logits ``(B, C, *spatial)`` and integer labels, apply the
softmax and one-hot the labels.

Registered: ``"vnet_dice"`` (Milletari et al. 2016, Eq. 1) and ``"dice_ce"`` (V-Net soft Dice +
cross-entropy).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from volseg.registry import Registry

__all__ = [
    "LOSSES",
    "DiceCELoss",
    "VNetDiceLoss",
    "create_loss",
    "list_losses",
    "one_hot",
    "vnet_dice_loss",
]

LOSSES = Registry[nn.Module]("loss")


def create_loss(name: str, **kwargs: Any) -> nn.Module:
    """Build the loss registered as ``name`` with its keyword arguments."""
    return LOSSES.create(name, **kwargs)


def list_losses() -> list[str]:
    """Names of the registered losses, sorted."""
    return LOSSES.list()


def _labels_b1(labels: torch.Tensor, spatial_ndim: int) -> torch.Tensor:
    """Accept ``(B, *spatial)`` or ``(B, 1, *spatial)`` labels; return ``(B, 1, *spatial)``."""
    if labels.ndim == spatial_ndim + 1:
        return labels.unsqueeze(1)
    if labels.ndim == spatial_ndim + 2 and labels.shape[1] == 1:
        return labels
    raise ValueError(
        f"labels must be (B, 1, *spatial) or (B, *spatial) with {spatial_ndim} spatial axes, "
        f"got shape {tuple(labels.shape)}"
    )


def one_hot(labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """One-hot encode integer labels: ``(B, 1, *spatial)`` int64 -> ``(B, num_classes, *spatial)``.

    The result is float (the dtype of the default float type). Labels outside
    ``[0, num_classes)`` raise ``ValueError``.
    """
    if labels.ndim < 2 or labels.shape[1] != 1:
        raise ValueError(f"labels must be (B, 1, *spatial), got shape {tuple(labels.shape)}")
    if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= num_classes):
        raise ValueError(
            f"labels must lie in [0, {num_classes}), got range "
            f"[{int(labels.min())}, {int(labels.max())}]"
        )
    out = torch.zeros(
        (labels.shape[0], num_classes, *labels.shape[2:]),
        dtype=torch.get_default_dtype(),
        device=labels.device,
    )
    return out.scatter_(1, labels.long(), 1.0)


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
    if probs.shape != target_onehot.shape:
        raise ValueError(
            f"probs {tuple(probs.shape)} and target {tuple(target_onehot.shape)} differ in shape"
        )
    if probs.ndim < 3:
        raise ValueError(f"expected (B, C, *spatial), got shape {tuple(probs.shape)}")
    if not include_background and probs.shape[1] >= 2:
        probs, target_onehot = probs[:, 1:], target_onehot[:, 1:]
    target = target_onehot.to(probs.dtype)
    dims = tuple(range(2, probs.ndim))
    intersection = (probs * target).sum(dims)
    denominator = (probs * probs).sum(dims) + (target * target).sum(dims)
    dice = (2.0 * intersection + eps) / (denominator + eps)
    return 1.0 - dice.mean()


class VNetDiceLoss(nn.Module):
    """V-Net Dice loss on logits: softmax over channels, one-hot labels, :func:`vnet_dice_loss`.

    ``forward(logits (B, C, *spatial), labels (B, 1, *spatial) or (B, *spatial) int) -> scalar``.
    ``include_background`` defaults to False: with the paper's 2 channels only the foreground
    channel is scored.
    """

    def __init__(self, eps: float = 1e-6, include_background: bool = False) -> None:
        super().__init__()
        self.eps = eps
        self.include_background = include_background

    def forward(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        if logits.ndim < 3 or logits.shape[1] < 2:
            raise ValueError(
                f"logits must be (B, C>=2, *spatial) for a softmax, got {tuple(logits.shape)}"
            )
        labels = _labels_b1(labels, logits.ndim - 2)
        probs = torch.softmax(logits, dim=1)
        target = one_hot(labels, logits.shape[1]).to(probs.dtype)
        return vnet_dice_loss(probs, target, self.eps, self.include_background)


class DiceCELoss(nn.Module):
    """``dice_weight * V-Net Dice + ce_weight * cross-entropy`` on logits.

    The Dice term is :class:`VNetDiceLoss`; the cross-entropy is ``F.cross_entropy`` averaged
    over voxels, optionally with per-class ``class_weights`` (the paper's "sample re-weighting"
    baseline is cross-entropy alone with such weights: ``dice_weight=0``).
    """

    def __init__(
        self,
        dice_weight: float = 1.0,
        ce_weight: float = 1.0,
        eps: float = 1e-6,
        include_background: bool = False,
        class_weights: list[float] | None = None,
    ) -> None:
        super().__init__()
        self.dice_weight = dice_weight
        self.ce_weight = ce_weight
        self.dice = VNetDiceLoss(eps, include_background)
        self.class_weights: torch.Tensor | None
        self.register_buffer(
            "class_weights",
            None if class_weights is None else torch.tensor(class_weights, dtype=torch.float32),
        )

    def forward(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        labels = _labels_b1(labels, logits.ndim - 2)
        loss = logits.new_zeros(())
        if self.dice_weight:
            loss = loss + self.dice_weight * self.dice(logits, labels)
        if self.ce_weight:
            w = None if self.class_weights is None else self.class_weights.to(logits.dtype)
            loss = loss + self.ce_weight * F.cross_entropy(logits, labels[:, 0].long(), weight=w)
        return loss


LOSSES.register("vnet_dice")(VNetDiceLoss)
LOSSES.register("dice_ce")(DiceCELoss)
