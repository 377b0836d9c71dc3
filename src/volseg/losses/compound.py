"""Weighted sums of losses: V-Net Dice + CE, Liu's hybrid (weighted CE + generalized Dice), and
any combination from config.

Each reports its parts unweighted in :attr:`LossOutput.terms` and their weighted sum as ``total``;
a part of weight 0 is still computed and reported (so the logged names never change), but not
added.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from volseg.losses.base import Loss, LossOutput, NetOutput, create_loss, logits_of, register_loss
from volseg.losses.cross_entropy import ClassWeights, CrossEntropyLoss
from volseg.losses.dice import GeneralizedDiceLoss, VNetDiceLoss

__all__ = ["CombinedLoss", "DiceCELoss", "HybridLoss"]


@register_loss("dice_ce")
class DiceCELoss(Loss):
    """``dice_weight * V-Net Dice + ce_weight * cross-entropy`` on logits; terms ``{"dice", "ce"}``.

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

    def forward(
        self, output: NetOutput, target: torch.Tensor, image: torch.Tensor | None = None
    ) -> LossOutput:
        logits = logits_of(output)
        return LossOutput.weighted(
            {"dice": self.dice(logits, target).total, "ce": self.ce(logits, target).total},
            {"dice": self.dice_weight, "ce": self.ce_weight},
        )


@register_loss("hybrid")
class HybridLoss(Loss):
    """Liu et al.'s hybrid loss: ``ce_weight * weighted CE + dice_weight * generalized Dice``.

    "A weighted cross-entropy loss and generalized dice loss to balance the gradients of the
    positive and negative areas" (ISLES 2018). The paper does not state its class weights or
    the balance of the two terms: the defaults are inverse-frequency weights and 1 : 1.
    Terms ``{"ce", "dice"}`` (``dice`` is the generalized Dice).
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

    def forward(
        self, output: NetOutput, target: torch.Tensor, image: torch.Tensor | None = None
    ) -> LossOutput:
        logits = logits_of(output)
        return LossOutput.weighted(
            {"ce": self.ce(logits, target).total, "dice": self.dice(logits, target).total},
            {"ce": self.ce_weight, "dice": self.dice_weight},
        )


@register_loss("combined")
class CombinedLoss(Loss):
    """A weighted sum of registered losses, from config::

        loss:
          name: combined
          kwargs:
            terms:
              - {name: cross_entropy, weight: 1.0, kwargs: {class_weights: inverse_frequency}}
              - {name: soft_dice, weight: 0.5}

    Terms are named after the losses (``{"cross_entropy", "soft_dice"}`` here); a name listed
    twice gets its position appended (``cross_entropy_0``, ``cross_entropy_2``). Each term is
    the ``total`` of its loss.
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
        names = [str(term["name"]) for term in terms]
        self.names = [n if names.count(n) == 1 else f"{n}_{i}" for i, n in enumerate(names)]
        self.losses = nn.ModuleList(losses)
        self.weights = weights

    def forward(
        self, output: NetOutput, target: torch.Tensor, image: torch.Tensor | None = None
    ) -> LossOutput:
        logits = logits_of(output)
        parts = {
            name: loss(logits, target).total
            for name, loss in zip(self.names, self.losses, strict=True)
        }
        return LossOutput.weighted(parts, dict(zip(self.names, self.weights, strict=True)))
