"""Cross-entropy family: inverse-frequency weights, weighted CE and focal loss by hand, and the
sigmoid regime against torch's binary cross-entropy."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from volseg.losses import (
    CrossEntropyLoss,
    FocalLoss,
    cross_entropy_loss,
    focal_loss,
    inverse_frequency_weights,
)


def test_inverse_frequency_and_weighted_ce_hand_values() -> None:
    labels = torch.tensor([[[0, 0, 0, 1]]])  # 3 background, 1 foreground, N = 4, K = 2
    w = inverse_frequency_weights(labels, 3)
    torch.testing.assert_close(w, torch.tensor([4 / 6, 4 / 2, 0.0]))
    # logits giving p(true) = (.5, .5, .25, .8) via two classes: -log p per voxel
    logits = torch.log(
        torch.tensor([[[0.5, 0.5, 0.75, 0.2], [0.5, 0.5, 0.25, 0.8], [1e-9] * 4]])
    ).double()
    nll_bg = [-math.log(0.5), -math.log(0.5), -math.log(0.75)]
    nll_fg = -math.log(0.8)
    # inverse frequency = mean over the present classes of the per-class mean loss
    expected = 0.5 * (sum(nll_bg) / 3 + nll_fg)
    got = cross_entropy_loss(logits, labels, "inverse_frequency").item()
    assert got == pytest.approx(expected, rel=1e-6)
    plain = cross_entropy_loss(logits, labels).item()
    assert plain == pytest.approx((sum(nll_bg) + nll_fg) / 4, rel=1e-6)
    given = cross_entropy_loss(logits, labels, [1.0, 3.0, 1.0]).item()
    assert given == pytest.approx((sum(nll_bg) + 3 * nll_fg) / 6, rel=1e-6)
    with pytest.raises(ValueError, match="class_weights"):
        cross_entropy_loss(logits, labels, [1.0, 2.0])
    with pytest.raises(ValueError, match="class_weights"):
        cross_entropy_loss(logits, labels, "balanced")  # type: ignore[arg-type]
    result = CrossEntropyLoss("inverse_frequency")(logits, labels)
    assert set(result.terms) == {"cross_entropy"}
    assert result.total.item() == pytest.approx(expected, rel=1e-6)


def test_focal_hand_values() -> None:
    # two voxels, p_t = 0.5 and 0.9: (1 - p_t)^2 * -log p_t
    logits = torch.log(torch.tensor([[[0.5, 0.1], [0.5, 0.9]]], dtype=torch.float64))
    labels = torch.tensor([[[1, 1]]])
    expected = (0.25 * -math.log(0.5) + 0.01 * -math.log(0.9)) / 2
    assert focal_loss(logits, labels, gamma=2.0).item() == pytest.approx(expected)
    # gamma = 0 is the cross-entropy
    torch.testing.assert_close(focal_loss(logits, labels, 0.0), cross_entropy_loss(logits, labels))
    result = FocalLoss()(logits, labels)
    assert set(result.terms) == {"focal"}
    assert result.total.item() == pytest.approx(expected)


def test_sigmoid_regime_matches_binary_cross_entropy() -> None:
    gen = torch.Generator().manual_seed(6)
    logits = torch.randn(2, 3, 4, 5, generator=gen, dtype=torch.float64)
    masks = (torch.rand(2, 3, 4, 5, generator=gen) > 0.6).double()
    bce = F.binary_cross_entropy_with_logits(logits, masks)
    torch.testing.assert_close(CrossEntropyLoss()(logits, masks).total, bce)
    torch.testing.assert_close(FocalLoss(gamma=0.0)(logits, masks).total, bce)
    # class-balanced: per region, mean of (mean BCE inside, mean BCE outside)
    per_voxel = F.binary_cross_entropy_with_logits(logits, masks, reduction="none")
    balanced = torch.stack(
        [
            0.5
            * (per_voxel[:, r][masks[:, r] > 0].mean() + per_voxel[:, r][masks[:, r] == 0].mean())
            for r in range(3)
        ]
    ).mean()
    torch.testing.assert_close(CrossEntropyLoss("inverse_frequency")(logits, masks).total, balanced)
