"""Losses: the V-Net Dice loss against hand values and the paper's analytic gradient (Eq. 2)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from volseg.losses import (
    DiceCELoss,
    VNetDiceLoss,
    create_loss,
    list_losses,
    one_hot,
    vnet_dice_loss,
)


def test_registered() -> None:
    assert {"vnet_dice", "dice_ce"} <= set(list_losses())
    assert isinstance(create_loss("vnet_dice"), VNetDiceLoss)
    assert isinstance(create_loss("dice_ce", ce_weight=0.5), DiceCELoss)


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
    assert loss_fn(logits, labels).item() == pytest.approx(0.0, abs=1e-6)
    # labels without the channel axis give the same value
    assert loss_fn(logits, labels[:, 0]).item() == pytest.approx(0.0, abs=1e-6)
    # the worst prediction gives ~1
    assert loss_fn(-logits, labels).item() == pytest.approx(1.0, abs=1e-6)


def test_module_matches_pure_function() -> None:
    gen = torch.Generator().manual_seed(1)
    logits = torch.randn(2, 3, 4, 5, generator=gen)
    labels = torch.randint(0, 3, (2, 1, 4, 5), generator=gen)
    expected = vnet_dice_loss(torch.softmax(logits, 1), one_hot(labels, 3))
    torch.testing.assert_close(VNetDiceLoss()(logits, labels), expected)


def test_one_hot() -> None:
    labels = torch.tensor([[[0, 2, 1]]])
    oh = one_hot(labels, 3)
    assert oh.shape == (1, 3, 3)
    assert oh[0].argmax(0).tolist() == [0, 2, 1]
    assert oh.sum(1).eq(1).all()
    with pytest.raises(ValueError):
        one_hot(labels, 2)


def test_dice_ce() -> None:
    gen = torch.Generator().manual_seed(2)
    logits = torch.randn(2, 2, 6, 6, generator=gen, requires_grad=True)
    labels = torch.randint(0, 2, (2, 6, 6), generator=gen)
    loss = DiceCELoss(dice_weight=0.7, ce_weight=0.3)(logits, labels)
    expected = 0.7 * VNetDiceLoss()(logits, labels) + 0.3 * F.cross_entropy(logits, labels)
    torch.testing.assert_close(loss, expected)
    loss.backward()
    assert logits.grad is not None
    weighted = DiceCELoss(dice_weight=0.0, class_weights=[0.2, 0.8])(logits, labels)
    w = torch.tensor([0.2, 0.8])
    torch.testing.assert_close(weighted, F.cross_entropy(logits, labels, weight=w))


def test_shape_errors() -> None:
    with pytest.raises(ValueError):
        vnet_dice_loss(torch.rand(1, 2, 4), torch.rand(1, 2, 5))
    with pytest.raises(ValueError):
        VNetDiceLoss()(torch.randn(1, 1, 4, 4), torch.zeros(1, 4, 4, dtype=torch.int64))
    with pytest.raises(ValueError):
        VNetDiceLoss()(torch.randn(1, 2, 4, 4), torch.zeros(1, 2, 4, 4, dtype=torch.int64))
