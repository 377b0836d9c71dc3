"""Segmentation losses of the five papers: pure functions first, thin registered modules over them.

``LOSSES`` maps names to ``nn.Module`` classes; ``create_loss(name, **kwargs)`` builds one from the
config's ``loss.name`` / ``loss.kwargs``.

Two regimes, chosen by the **target** handed to a module (so the config never repeats it):

* **softmax over exclusive labels**: ``loss(logits (B, C, *S), labels (B, 1, *S) or (B, *S)
  integer)``; the module applies a softmax over C and one-hot encodes the labels;
* **sigmoid over overlapping regions** (BraTS whole tumour / core / enhancing, see
  :mod:`volseg.regions`): ``loss(logits (B, R, *S), masks (B, R, *S) floating point)``; the module
  applies a sigmoid per channel. A floating-point target with as many channels as the logits
  selects this regime.

The pure functions take probabilities (Dice family) or logits (cross-entropy family) and
one-hot / region targets, with the activation outside them.

Registered:

=====================  ==========================================================================
``vnet_dice``          V-Net Dice ``1 - 2 sum(pg) / (sum p^2 + sum g^2)`` (Milletari 2016, Eq. 1)
``soft_dice``          soft Dice with smoothing ``eps = 1`` summed over channels (Myronenko 2018)
``generalized_dice``   generalized Dice, class weights ``1 / (sum g)^2`` (Sudre 2017)
``cross_entropy``      cross-entropy with class weights: none, given, or ``"inverse_frequency"``
                       (the latter is V-Net's "multinomial logistic loss with sample re-weighting")
``dice_ce``            V-Net Dice + cross-entropy
``hybrid``             weighted cross-entropy + generalized Dice (Liu et al., ISLES 2018)
``focal``              focal loss ``-(1 - p_t)^gamma log p_t`` (Lin 2017; Adeniji's future work)
``vae``                ``L_dice + 0.1 L_L2 + 0.1 L_KL`` for a U-Net + VAE (Myronenko 2018, Adeniji)
``combined``           a weighted sum of any of the above (but ``vae``)
=====================  ==========================================================================
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal, Protocol

import torch
import torch.nn.functional as F
from torch import nn

from volseg.registry import Registry

__all__ = [
    "LOSSES",
    "CombinedLoss",
    "CrossEntropyLoss",
    "DiceCELoss",
    "FocalLoss",
    "GeneralizedDiceLoss",
    "HybridLoss",
    "SoftDiceLoss",
    "VAELoss",
    "VNetDiceLoss",
    "create_loss",
    "cross_entropy_loss",
    "focal_loss",
    "generalized_dice_loss",
    "inverse_frequency_weights",
    "kl_divergence",
    "list_losses",
    "one_hot",
    "soft_dice_loss",
    "vae_loss",
    "vnet_dice_loss",
]

LOSSES = Registry[nn.Module]("loss")

ClassWeights = Sequence[float] | torch.Tensor | Literal["inverse_frequency"] | None


def create_loss(name: str, **kwargs: Any) -> nn.Module:
    """Build the loss registered as ``name`` with its keyword arguments."""
    return LOSSES.create(name, **kwargs)


def list_losses() -> list[str]:
    """Names of the registered losses, sorted."""
    return LOSSES.list()


# ---------------------------------------------------------------------------------------------
# Targets and activations


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


def _is_region_target(logits: torch.Tensor, target: torch.Tensor) -> bool:
    """True for the sigmoid regime: a floating-point target shaped like the logits."""
    return target.is_floating_point() and target.shape == logits.shape


def _probs_and_target(
    logits: torch.Tensor, target: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, bool]:
    """``(probabilities, one-hot or region target, is_region)`` for the Dice family."""
    if logits.ndim < 3:
        raise ValueError(f"logits must be (B, C, *spatial), got shape {tuple(logits.shape)}")
    if _is_region_target(logits, target):
        return torch.sigmoid(logits), target.to(logits.dtype), True
    if logits.shape[1] < 2:
        raise ValueError(
            f"logits must be (B, C>=2, *spatial) for a softmax over labels, got "
            f"{tuple(logits.shape)} (for one sigmoid channel pass a float (B, 1, *S) mask)"
        )
    labels = _labels_b1(target, logits.ndim - 2)
    probs = torch.softmax(logits, dim=1)
    return probs, one_hot(labels, logits.shape[1]).to(probs.dtype), False


def _binary_pair(logit: torch.Tensor) -> torch.Tensor:
    """``(B, *S)`` sigmoid logit -> ``(B, 2, *S)`` softmax logits ``[0, z]``, same probabilities.

    ``softmax([0, z])[1] == sigmoid(z)``, so each sigmoid channel is a 2-class softmax problem and
    the cross-entropy family needs one implementation.
    """
    return torch.stack([torch.zeros_like(logit), logit], dim=1)


# ---------------------------------------------------------------------------------------------
# Dice family: pure functions on probabilities


def _check_probs(probs: torch.Tensor, target: torch.Tensor) -> None:
    if probs.shape != target.shape:
        raise ValueError(
            f"probs {tuple(probs.shape)} and target {tuple(target.shape)} differ in shape"
        )
    if probs.ndim < 3:
        raise ValueError(f"expected (B, C, *spatial), got shape {tuple(probs.shape)}")


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
    _check_probs(probs, target_onehot)
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
    _check_probs(probs, target)
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
    _check_probs(probs, target)
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
# Cross-entropy family: pure functions on logits and integer labels


def inverse_frequency_weights(labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Class weights ``N / (K n_c)`` from the labels' own frequencies; 0 for absent classes.

    ``N`` voxels, ``n_c`` of class c, ``K`` classes present. Used in a weighted mean (as
    :func:`cross_entropy_loss` does) they make every present class count equally: the loss is
    the mean over classes of the per-class mean loss. This is V-Net's baseline "multinomial
    logistic loss with sample re-weighting" (Milletari 2016, Table 2), computed per batch.
    """
    counts = torch.bincount(labels.reshape(-1).long(), minlength=num_classes)[:num_classes]
    counts = counts.to(torch.get_default_dtype())
    present = counts > 0
    k = present.sum().clamp_min(1)
    return torch.where(present, counts.sum() / (k * counts.clamp_min(1)), torch.zeros_like(counts))


def _resolve_weights(
    class_weights: ClassWeights, labels: torch.Tensor, num_classes: int, like: torch.Tensor
) -> torch.Tensor | None:
    if class_weights is None:
        return None
    if isinstance(class_weights, str):
        if class_weights != "inverse_frequency":
            raise ValueError(
                f"class_weights must be a list, 'inverse_frequency' or None, got {class_weights!r}"
            )
        return inverse_frequency_weights(labels, num_classes).to(like)
    weights = torch.as_tensor(class_weights).to(like)
    if weights.shape != (num_classes,):
        raise ValueError(
            f"class_weights has {tuple(weights.shape)} entries, expected ({num_classes},)"
        )
    return weights


def cross_entropy_loss(
    logits: torch.Tensor, labels: torch.Tensor, class_weights: ClassWeights = None
) -> torch.Tensor:
    """Voxel-wise softmax cross-entropy, optionally class-weighted.

    ``L = sum_i w_{y_i} (-log softmax(z_i)_{y_i}) / sum_i w_{y_i}`` (the weighted mean of
    ``torch.nn.functional.cross_entropy``). ``class_weights``: None (plain mean), C numbers, or
    ``"inverse_frequency"`` (:func:`inverse_frequency_weights` of this batch; the V-Net
    re-weighted logistic baseline).

    Args:
        logits: ``(B, C, *spatial)``.
        labels: ``(B, 1, *spatial)`` or ``(B, *spatial)`` class indices.
    """
    labels = _labels_b1(labels, logits.ndim - 2)[:, 0].long()
    weights = _resolve_weights(class_weights, labels, logits.shape[1], logits)
    return F.cross_entropy(logits, labels, weight=weights)


def focal_loss(
    logits: torch.Tensor,
    labels: torch.Tensor,
    gamma: float = 2.0,
    class_weights: ClassWeights = None,
) -> torch.Tensor:
    """Focal loss ``-w_{y} (1 - p_t)^gamma log p_t``, softmax over classes (Lin et al. 2017).

    ``p_t`` is the probability of the true class; ``(1 - p_t)^gamma`` shrinks the loss of easy,
    well-classified voxels (the large background) so hard ones dominate. Reduced like
    :func:`cross_entropy_loss` (weighted mean); ``gamma = 0`` gives back the cross-entropy.
    Adeniji et al. name it as future work against over-segmentation.

    Args:
        logits: ``(B, C, *spatial)``.
        labels: ``(B, 1, *spatial)`` or ``(B, *spatial)`` class indices.
        gamma: focusing exponent (Lin et al. use 2).
        class_weights: the ``alpha`` of Lin et al.: None, C numbers or ``"inverse_frequency"``.
    """
    labels = _labels_b1(labels, logits.ndim - 2).long()
    log_pt = torch.log_softmax(logits, dim=1).gather(1, labels)[:, 0]
    modulation = (1.0 - log_pt.exp()).clamp_min(0.0) ** gamma if gamma else 1.0
    per_voxel = -modulation * log_pt
    weights = _resolve_weights(class_weights, labels, logits.shape[1], logits)
    if weights is None:
        return per_voxel.mean()
    w = weights[labels[:, 0]]
    return (w * per_voxel).sum() / w.sum()


def _per_region(fn: Any, logits: torch.Tensor, masks: torch.Tensor, **kwargs: Any) -> torch.Tensor:
    """Mean over the R sigmoid channels of ``fn`` applied to each as a 2-class softmax problem."""
    losses = [
        fn(_binary_pair(logits[:, r]), (masks[:, r] > 0.5).long(), **kwargs)
        for r in range(logits.shape[1])
    ]
    return torch.stack(losses).mean()


# ---------------------------------------------------------------------------------------------
# VAE regulariser (Myronenko 2018; Adeniji et al.)


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


# ---------------------------------------------------------------------------------------------
# Registered modules: logits + labels (softmax) or logits + region masks (sigmoid)


class VNetDiceLoss(nn.Module):
    """V-Net Dice loss on logits (:func:`vnet_dice_loss`).

    ``forward(logits (B, C, *S), labels (B, 1, *S) int)`` applies a softmax and one-hot labels;
    ``include_background=False`` (default) scores channels 1.. only, as the paper's 2-channel
    net scores the foreground. With float region masks ``(B, R, *S)`` it applies a sigmoid and
    scores every channel.
    """

    def __init__(self, eps: float = 1e-6, include_background: bool = False) -> None:
        super().__init__()
        self.eps = eps
        self.include_background = include_background

    def forward(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        probs, target, regions = _probs_and_target(logits, labels)
        return vnet_dice_loss(probs, target, self.eps, self.include_background or regions)


class SoftDiceLoss(nn.Module):
    """Soft Dice with smoothing (:func:`soft_dice_loss`), ``eps = 1`` summed over channels.

    Myronenko's / Adeniji's ``L_dice`` on 3 sigmoid region channels. In the softmax regime
    channel 0 (background) is dropped unless ``include_background``.
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

    def forward(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        probs, target, regions = _probs_and_target(logits, labels)
        if not (regions or self.include_background):
            probs, target = probs[:, 1:], target[:, 1:]
        return soft_dice_loss(probs, target, self.eps, self.reduction)


class GeneralizedDiceLoss(nn.Module):
    """Generalized Dice (:func:`generalized_dice_loss`, Sudre 2017) on logits.

    Every channel counts (background included in the softmax regime, as in Sudre et al.).
    """

    def __init__(self, eps: float = 1e-6) -> None:
        super().__init__()
        self.eps = eps

    def forward(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        probs, target, _ = _probs_and_target(logits, labels)
        return generalized_dice_loss(probs, target, self.eps)


class CrossEntropyLoss(nn.Module):
    """Class-weighted cross-entropy (:func:`cross_entropy_loss`).

    ``class_weights``: None, one number per class, or ``"inverse_frequency"``; the latter is
    V-Net's "multinomial logistic loss with sample re-weighting" baseline (Milletari 2016,
    Table 2: Dice 0.739 against 0.869 for the Dice loss). With float region masks each sigmoid
    channel is a binary cross-entropy, and ``"inverse_frequency"`` balances its inside and
    outside voxels; the mean over regions is returned.
    """

    def __init__(self, class_weights: ClassWeights = None) -> None:
        super().__init__()
        self.class_weights = class_weights

    def forward(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        if _is_region_target(logits, labels):
            return _per_region(cross_entropy_loss, logits, labels, class_weights=self.class_weights)
        return cross_entropy_loss(logits, labels, self.class_weights)


class FocalLoss(nn.Module):
    """Focal loss (:func:`focal_loss`); per sigmoid channel in the region regime."""

    def __init__(self, gamma: float = 2.0, class_weights: ClassWeights = None) -> None:
        super().__init__()
        self.gamma = gamma
        self.class_weights = class_weights

    def forward(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        if _is_region_target(logits, labels):
            return _per_region(
                focal_loss, logits, labels, gamma=self.gamma, class_weights=self.class_weights
            )
        return focal_loss(logits, labels, self.gamma, self.class_weights)


class DiceCELoss(nn.Module):
    """``dice_weight * V-Net Dice + ce_weight * cross-entropy`` on logits.

    The Dice term is :class:`VNetDiceLoss`, the cross-entropy :class:`CrossEntropyLoss` with
    optional ``class_weights`` (the paper's "sample re-weighting" baseline is the cross-entropy
    alone: ``dice_weight=0, class_weights="inverse_frequency"``).
    """

    def __init__(
        self,
        dice_weight: float = 1.0,
        ce_weight: float = 1.0,
        eps: float = 1e-6,
        include_background: bool = False,
        class_weights: ClassWeights = None,
    ) -> None:
        super().__init__()
        self.dice_weight = dice_weight
        self.ce_weight = ce_weight
        self.dice = VNetDiceLoss(eps, include_background)
        self.ce = CrossEntropyLoss(class_weights)

    def forward(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        loss = logits.new_zeros(())
        if self.dice_weight:
            loss = loss + self.dice_weight * self.dice(logits, labels)
        if self.ce_weight:
            loss = loss + self.ce_weight * self.ce(logits, labels)
        return loss


class HybridLoss(nn.Module):
    """Liu et al.'s hybrid loss: ``ce_weight * weighted CE + dice_weight * generalized Dice``.

    "A weighted cross-entropy loss and generalized dice loss to balance the gradients of the
    positive and negative areas" (ISLES 2018). The paper does not state its class weights or
    the balance of the two terms: the defaults are inverse-frequency weights and 1 : 1.
    """

    def __init__(
        self,
        ce_weight: float = 1.0,
        dice_weight: float = 1.0,
        class_weights: ClassWeights = "inverse_frequency",
        eps: float = 1e-6,
    ) -> None:
        super().__init__()
        self.ce_weight = ce_weight
        self.dice_weight = dice_weight
        self.ce = CrossEntropyLoss(class_weights)
        self.dice = GeneralizedDiceLoss(eps)

    def forward(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return self.ce_weight * self.ce(logits, labels) + self.dice_weight * self.dice(
            logits, labels
        )


class _VAEOutputLike(Protocol):
    logits: torch.Tensor
    reconstruction: torch.Tensor
    mu: torch.Tensor
    logvar: torch.Tensor


class VAELoss(nn.Module):
    """``L = L_dice + l2_weight * L_L2 + kl_weight * L_KL`` (Myronenko 2018; Adeniji Eq. 2).

    ``forward(output, target, image) -> {"loss", "dice", "l2", "kl"}`` where ``output`` is the
    network's training-mode ``VAEOutput(logits, reconstruction, mu, logvar)``, ``target`` the
    labels or region masks for the Dice term (as every other loss takes them) and ``image`` the
    network input ``(B, C, *S)`` the VAE reconstructs. A plain logits tensor (evaluation mode, no
    VAE branch) gives the Dice term alone. The trainer backpropagates ``result["loss"]`` and logs
    the rest::

        loss_fn = create_loss("vae")            # soft Dice eps=1 summed, weights 0.1 and 0.1
        terms = loss_fn(model(image), target, image)
        terms["loss"].backward()

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
        self,
        output: _VAEOutputLike | torch.Tensor,
        target: torch.Tensor,
        image: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        if isinstance(output, torch.Tensor):
            dice = self.dice(output, target)
            return {"loss": dice, "dice": dice}
        if image is None:
            raise ValueError("VAELoss needs the input image for the reconstruction term")
        dice = self.dice(output.logits, target)
        l2, kl = vae_loss(output.reconstruction, image, output.mu, output.logvar)
        total = dice + self.l2_weight * l2 + self.kl_weight * kl
        return {"loss": total, "dice": dice, "l2": l2, "kl": kl}


class CombinedLoss(nn.Module):
    """A weighted sum of registered losses, from config::

    loss:
      name: combined
      kwargs:
        terms:
          - {name: cross_entropy, weight: 1.0, kwargs: {class_weights: inverse_frequency}}
          - {name: soft_dice, weight: 0.5}
    """

    def __init__(self, terms: Sequence[Mapping[str, Any]]) -> None:
        super().__init__()
        if not terms:
            raise ValueError("loss.kwargs.terms must list at least one loss")
        losses, weights = [], []
        for i, term in enumerate(terms):
            unknown = set(term) - {"name", "weight", "kwargs"}
            if "name" not in term or unknown:
                raise ValueError(
                    f"loss.kwargs.terms[{i}] needs 'name' and may have 'weight', 'kwargs' "
                    f"(got keys {sorted(term)})"
                )
            if term["name"] in ("vae", "combined"):
                raise ValueError(f"loss.kwargs.terms[{i}]: {term['name']!r} cannot be combined")
            losses.append(create_loss(term["name"], **dict(term.get("kwargs") or {})))
            weights.append(float(term.get("weight", 1.0)))
        self.losses = nn.ModuleList(losses)
        self.weights = weights

    def forward(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        total = logits.new_zeros(())
        for weight, loss in zip(self.weights, self.losses, strict=True):
            total = total + weight * loss(logits, labels)
        return total


LOSSES.register("vnet_dice")(VNetDiceLoss)
LOSSES.register("soft_dice")(SoftDiceLoss)
LOSSES.register("generalized_dice")(GeneralizedDiceLoss)
LOSSES.register("cross_entropy")(CrossEntropyLoss)
LOSSES.register("dice_ce")(DiceCELoss)
LOSSES.register("hybrid")(HybridLoss)
LOSSES.register("focal")(FocalLoss)
LOSSES.register("vae")(VAELoss)
LOSSES.register("combined")(CombinedLoss)
