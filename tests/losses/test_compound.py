"""Weighted sums: Dice + CE, Liu's hybrid and a combination from config, against their parts."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from volseg.losses import (
    CombinedLoss,
    DiceCELoss,
    GeneralizedDiceLoss,
    HybridLoss,
    SoftDiceLoss,
    VNetDiceLoss,
    cross_entropy_loss,
    generalized_dice_loss,
    one_hot,
)


def test_dice_ce() -> None:
    gen = torch.Generator().manual_seed(2)
    logits = torch.randn(2, 2, 6, 6, generator=gen, requires_grad=True)
    labels = torch.randint(0, 2, (2, 6, 6), generator=gen)
    result = DiceCELoss(dice_weight=0.7, ce_weight=0.3)(logits, labels)
    dice = VNetDiceLoss()(logits, labels).total
    ce = F.cross_entropy(logits, labels)
    torch.testing.assert_close(result.total, 0.7 * dice + 0.3 * ce)
    assert set(result.terms) == {"dice", "ce"}  # unweighted parts
    torch.testing.assert_close(result.terms["dice"], dice)
    torch.testing.assert_close(result.terms["ce"], ce)
    result.total.backward()
    assert logits.grad is not None
    # a term of weight 0 is still reported, but not added
    weighted = DiceCELoss(dice_weight=0.0, class_weights=[0.2, 0.8])(logits, labels)
    w = torch.tensor([0.2, 0.8])
    torch.testing.assert_close(weighted.total, F.cross_entropy(logits, labels, weight=w))
    assert set(weighted.terms) == {"dice", "ce"}
    torch.testing.assert_close(weighted.terms["dice"], dice)


def test_hybrid_and_combined() -> None:
    gen = torch.Generator().manual_seed(7)
    logits = torch.randn(2, 3, 4, 5, generator=gen, dtype=torch.float64)
    labels = torch.randint(0, 3, (2, 1, 4, 5), generator=gen)
    ce = cross_entropy_loss(logits, labels, "inverse_frequency")
    gdl = generalized_dice_loss(torch.softmax(logits, 1), one_hot(labels, 3).double())
    hybrid = HybridLoss(ce_weight=0.3, dice_weight=0.7)(logits, labels)
    torch.testing.assert_close(hybrid.total, 0.3 * ce + 0.7 * gdl)
    assert set(hybrid.terms) == {"ce", "dice"}
    torch.testing.assert_close(hybrid.terms["dice"], gdl)
    torch.testing.assert_close(GeneralizedDiceLoss()(logits, labels).total, gdl)
    combined = CombinedLoss(
        [
            {
                "name": "cross_entropy",
                "weight": 2.0,
                "kwargs": {"class_weights": "inverse_frequency"},
            },
            {"name": "generalized_dice"},
        ]
    )
    result = combined(logits, labels)
    torch.testing.assert_close(result.total, 2.0 * ce + gdl)
    assert set(result.terms) == {"cross_entropy", "generalized_dice"}
    torch.testing.assert_close(result.terms["cross_entropy"], ce)
    with pytest.raises(ValueError, match="terms"):
        CombinedLoss([{"loss": "x"}])
    with pytest.raises(ValueError, match="terms"):
        CombinedLoss([])
    with pytest.raises(ValueError, match="cannot be combined"):
        CombinedLoss([{"name": "vae"}])


def test_combined_names_a_repeated_loss_by_position() -> None:
    gen = torch.Generator().manual_seed(8)
    logits = torch.randn(2, 3, 4, 5, generator=gen, dtype=torch.float64)
    labels = torch.randint(0, 3, (2, 1, 4, 5), generator=gen)
    combined = CombinedLoss(
        [
            {"name": "soft_dice", "weight": 0.5},
            {"name": "cross_entropy"},
            {"name": "soft_dice", "kwargs": {"include_background": True}},
        ]
    )
    result = combined(logits, labels)
    assert list(result.terms) == ["soft_dice_0", "cross_entropy", "soft_dice_2"]
    soft = SoftDiceLoss()(logits, labels).total
    soft_bg = SoftDiceLoss(include_background=True)(logits, labels).total
    torch.testing.assert_close(result.terms["soft_dice_2"], soft_bg)
    torch.testing.assert_close(
        result.total, 0.5 * soft + cross_entropy_loss(logits, labels) + soft_bg
    )
