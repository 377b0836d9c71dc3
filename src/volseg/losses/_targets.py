"""Targets and activations shared by the losses: label shapes, one-hot, the two regimes.

The **target** chooses the regime (so the config never repeats it): integer labels mean a softmax
over exclusive classes; a floating-point (or boolean) target shaped like the logits means a
sigmoid per overlapping region.
"""

from __future__ import annotations

import torch

__all__ = [
    "binary_pair",
    "check_probs",
    "is_region_target",
    "labels_b1",
    "one_hot",
    "probs_and_target",
]


def labels_b1(labels: torch.Tensor, spatial_ndim: int) -> torch.Tensor:
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


def is_region_target(logits: torch.Tensor, target: torch.Tensor) -> bool:
    """True for the sigmoid regime: a floating-point or boolean target shaped like the logits.

    Boolean masks are what :func:`volseg.regions.batch_labels_to_regions` returns.
    """
    masks = target.is_floating_point() or target.dtype == torch.bool
    return masks and target.shape == logits.shape


def probs_and_target(
    logits: torch.Tensor, target: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, bool]:
    """``(probabilities, one-hot or region target, is_region)`` for the Dice family."""
    if logits.ndim < 3:
        raise ValueError(f"logits must be (B, C, *spatial), got shape {tuple(logits.shape)}")
    if is_region_target(logits, target):
        return torch.sigmoid(logits), target.to(logits.dtype), True
    if logits.shape[1] < 2:
        raise ValueError(
            f"logits must be (B, C>=2, *spatial) for a softmax over labels, got "
            f"{tuple(logits.shape)} (for one sigmoid channel pass a float (B, 1, *S) mask)"
        )
    labels = labels_b1(target, logits.ndim - 2)
    probs = torch.softmax(logits, dim=1)
    return probs, one_hot(labels, logits.shape[1]).to(probs.dtype), False


def binary_pair(logit: torch.Tensor) -> torch.Tensor:
    """``(B, *S)`` sigmoid logit -> ``(B, 2, *S)`` softmax logits ``[0, z]``, same probabilities.

    ``softmax([0, z])[1] == sigmoid(z)``, so each sigmoid channel is a 2-class softmax problem and
    the cross-entropy family needs one implementation.
    """
    return torch.stack([torch.zeros_like(logit), logit], dim=1)


def check_probs(probs: torch.Tensor, target: torch.Tensor) -> None:
    """Raise ``ValueError`` unless ``probs`` and ``target`` are the same ``(B, C, *spatial)``."""
    if probs.shape != target.shape:
        raise ValueError(
            f"probs {tuple(probs.shape)} and target {tuple(target.shape)} differ in shape"
        )
    if probs.ndim < 3:
        raise ValueError(f"expected (B, C, *spatial), got shape {tuple(probs.shape)}")
