"""Dice losses: V-Net Dice against hand values and the paper's analytic gradient (Eq. 2), soft and
generalized Dice against hand values, the modules against the pure functions."""

from __future__ import annotations

import pytest
import torch

from volseg.losses import (
    GeneralizedDiceLoss,
    SoftDiceLoss,
    VNetDiceLoss,
    generalized_dice_loss,
    one_hot,
    soft_dice_loss,
    vnet_dice_loss,
)


def test_hand_value_single_class() -> None:
    # p = (1, .5, 0, 0), g = (1, 1, 0, 0): sum pg = 1.5, sum p^2 = 1.25, sum g^2 = 2
    p = torch.tensor([[[1.0, 0.5, 0.0, 0.0]]], dtype=torch.float64)
    g = torch.tensor([[[1.0, 1.0, 0.0, 0.0]]], dtype=torch.float64)
    loss = vnet_dice_loss(p, g, eps=0.0)
    assert loss.item() == pytest.approx(1 - 3.0 / 3.25)


def test_background_excluded_by_default_and_mean_over_samples() -> None:
    fg = torch.tensor([[1.0, 0.5, 0.0, 0.0], [1.0, 1.0, 1.0, 1.0]], dtype=torch.float64)
    gt = torch.tensor([[1.0, 1.0, 0.0, 0.0], [1.0, 1.0, 0.0, 0.0]], dtype=torch.float64)
    probs = torch.stack([1 - fg, fg], dim=1)  # (B=2, C=2, N=4)
    target = torch.stack([1 - gt, gt], dim=1)
    d0 = 3.0 / 3.25  # sample 0, foreground
    d1 = 4.0 / 6.0  # sample 1: sum pg = 2, sum p^2 = 4, sum g^2 = 2
    loss = vnet_dice_loss(probs, target, eps=0.0)
    assert loss.item() == pytest.approx(1 - (d0 + d1) / 2)
    # with background: sample 0 bg p = (0, .5, 1, 1), g = (0, 0, 1, 1) -> 2*2 / (2.25 + 2)
    # sample 1 bg p = 0, g = (0, 0, 1, 1) -> 0
    b0, b1 = 4.0 / 4.25, 0.0
    loss_bg = vnet_dice_loss(probs, target, eps=0.0, include_background=True)
    assert loss_bg.item() == pytest.approx(1 - (d0 + d1 + b0 + b1) / 4)


def test_gradient_matches_paper_closed_form() -> None:
    gen = torch.Generator().manual_seed(0)
    p = torch.rand(1, 1, 5, 6, 7, generator=gen, dtype=torch.float64).requires_grad_()
    g = (torch.rand(1, 1, 5, 6, 7, generator=gen, dtype=torch.float64) > 0.6).double()
    loss = vnet_dice_loss(p, g, eps=0.0)
    (grad,) = torch.autograd.grad(loss, p)
    pd = p.detach()
    s_pg, s_p2, s_g2 = (pd * g).sum(), (pd * pd).sum(), (g * g).sum()
    dD = 2 * (g * (s_p2 + s_g2) - 2 * pd * s_pg) / (s_p2 + s_g2) ** 2
    torch.testing.assert_close(grad, -dD, rtol=1e-12, atol=1e-14)


def test_perfect_prediction_gives_zero() -> None:
    labels = torch.zeros(2, 1, 8, 8, 8, dtype=torch.int64)
    labels[:, :, 2:6, 2:6, 2:6] = 1
    logits = (one_hot(labels, 2) * 2 - 1) * 30.0
    loss_fn = VNetDiceLoss()
    assert loss_fn(logits, labels).total.item() == pytest.approx(0.0, abs=1e-6)
    # labels without the channel axis give the same value
    assert loss_fn(logits, labels[:, 0]).total.item() == pytest.approx(0.0, abs=1e-6)
    # the worst prediction gives ~1
    assert loss_fn(-logits, labels).total.item() == pytest.approx(1.0, abs=1e-6)


def test_module_matches_pure_function() -> None:
    gen = torch.Generator().manual_seed(1)
    logits = torch.randn(2, 3, 4, 5, generator=gen)
    labels = torch.randint(0, 3, (2, 1, 4, 5), generator=gen)
    expected = vnet_dice_loss(torch.softmax(logits, 1), one_hot(labels, 3))
    result = VNetDiceLoss()(logits, labels)
    torch.testing.assert_close(result.total, expected)
    assert set(result.terms) == {"vnet_dice"}
    torch.testing.assert_close(result.terms["vnet_dice"], expected)
    gdl = generalized_dice_loss(torch.softmax(logits, 1), one_hot(labels, 3))
    torch.testing.assert_close(GeneralizedDiceLoss()(logits, labels).total, gdl)
    # softmax regime: the soft Dice drops the background unless asked
    probs, target = torch.softmax(logits, 1), one_hot(labels, 3)
    soft = soft_dice_loss(probs[:, 1:], target[:, 1:])
    torch.testing.assert_close(SoftDiceLoss()(logits, labels).total, soft)
    soft_bg = soft_dice_loss(probs, target)
    torch.testing.assert_close(SoftDiceLoss(include_background=True)(logits, labels).total, soft_bg)


def test_sigmoid_regime_scores_every_channel() -> None:
    gen = torch.Generator().manual_seed(6)
    logits = torch.randn(2, 3, 4, 5, generator=gen, dtype=torch.float64)
    masks = (torch.rand(2, 3, 4, 5, generator=gen) > 0.6).double()
    expected = soft_dice_loss(torch.sigmoid(logits), masks)
    torch.testing.assert_close(SoftDiceLoss()(logits, masks).total, expected)
    vnet = vnet_dice_loss(torch.sigmoid(logits), masks, include_background=True)
    torch.testing.assert_close(VNetDiceLoss()(logits, masks).total, vnet)


def test_gradcheck_pure_functions() -> None:
    gen = torch.Generator().manual_seed(5)
    p = torch.rand(2, 3, 5, generator=gen, dtype=torch.float64).requires_grad_()
    g = (torch.rand(2, 3, 5, generator=gen) > 0.5).double()
    g[0, 1] = 0.0  # an absent class exercises the generalized-Dice guard
    for fn in (vnet_dice_loss, soft_dice_loss, generalized_dice_loss):
        assert torch.autograd.gradcheck(lambda x, fn=fn: fn(x, g), (p,))


def test_soft_dice_hand_values() -> None:
    # channel 0: p = (1, .5, 0, 0), g = (1, 1, 0, 0): (2*1.5 + 1) / (1.25 + 2 + 1) = 4 / 4.25
    # channel 1: p = 0, g = 0: (0 + 1) / (0 + 0 + 1) = 1 -> loss 0 (smoothing at work)
    p = torch.tensor([[[1.0, 0.5, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]]], dtype=torch.float64)
    g = torch.tensor([[[1.0, 1.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]]], dtype=torch.float64)
    assert soft_dice_loss(p, g).item() == pytest.approx(1 - 4 / 4.25)
    assert soft_dice_loss(p, g, reduction="mean").item() == pytest.approx((1 - 4 / 4.25) / 2)
    # a tiny eps: channel 0 is the V-Net Dice 3 / 3.25, the empty channel 1 still eps / eps = 1
    assert soft_dice_loss(p, g, eps=1e-12).item() == pytest.approx(1 - 3 / 3.25)
    with pytest.raises(ValueError, match="reduction"):
        soft_dice_loss(p, g, reduction="max")  # type: ignore[arg-type]


def test_generalized_dice_hand_values() -> None:
    # class 0: g = (1, 1, 1, 0), p = (1, 1, .5, 0): w = 1/9, inter 2.5, sum p + g = 2.5 + 3
    # class 1: g = (0, 0, 0, 1), p = (0, 0, .5, 1): w = 1,   inter 1,   sum p + g = 1.5 + 1
    g = torch.tensor([[[1.0, 1, 1, 0], [0, 0, 0, 1]]], dtype=torch.float64)
    p = torch.tensor([[[1.0, 1, 0.5, 0], [0, 0, 0.5, 1]]], dtype=torch.float64)
    expected = 1 - 2 * (2.5 / 9 + 1.0) / (5.5 / 9 + 2.5)
    assert generalized_dice_loss(p, g, eps=0.0).item() == pytest.approx(expected)
    # absent class 1 (g = 0) takes the largest present weight (1/9), so its false positive
    # p = (0, 0, .5, 1) still costs: 1 - 2 (w*3 + w*0) / (w*(3.5+3) + w*1.5)
    g_absent = torch.tensor([[[1.0, 1, 1, 0], [0, 0, 0, 0]]], dtype=torch.float64)
    p2 = torch.tensor([[[1.0, 1, 1, 0.5], [0, 0, 0.5, 1]]], dtype=torch.float64)
    assert generalized_dice_loss(p2, g_absent, eps=0.0).item() == pytest.approx(1 - 6 / 8)
    # nothing present, nothing predicted: loss 0, finite
    zeros = torch.zeros(1, 2, 4, dtype=torch.float64)
    assert generalized_dice_loss(zeros, zeros).item() == pytest.approx(0.0)
