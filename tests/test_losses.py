"""Losses: the V-Net Dice loss against hand values and the paper's analytic gradient (Eq. 2)."""

from __future__ import annotations

import math
from types import SimpleNamespace
from typing import Any

import pytest
import torch
import torch.nn.functional as F

from volseg.losses import (
    CombinedLoss,
    CrossEntropyLoss,
    DiceCELoss,
    FocalLoss,
    GeneralizedDiceLoss,
    HybridLoss,
    SoftDiceLoss,
    VAELoss,
    VNetDiceLoss,
    create_loss,
    cross_entropy_loss,
    focal_loss,
    generalized_dice_loss,
    inverse_frequency_weights,
    kl_divergence,
    list_losses,
    one_hot,
    soft_dice_loss,
    vae_loss,
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


# --- every registered loss: float64 gradcheck in both regimes --------------------------------


GRADCHECK_KWARGS: dict[str, dict[str, Any]] = {
    "combined": {
        "terms": [
            {"name": "cross_entropy", "weight": 0.5},
            {"name": "soft_dice", "kwargs": {"eps": 1.0}},
        ]
    },
    "cross_entropy": {"class_weights": "inverse_frequency"},
    "focal": {"gamma": 2.0},
}


def _inputs(regions: bool) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(3)
    logits = torch.randn(2, 3, 3, 4, generator=gen, dtype=torch.float64)
    if regions:
        target = (torch.rand(2, 3, 3, 4, generator=gen) > 0.5).double()
    else:
        target = torch.randint(0, 3, (2, 1, 3, 4), generator=gen)
    return logits.requires_grad_(), target


@pytest.mark.parametrize("regions", [False, True], ids=["softmax", "sigmoid"])
@pytest.mark.parametrize("name", [n for n in list_losses() if n != "vae"])
def test_gradcheck_every_loss(name: str, regions: bool) -> None:
    loss_fn = create_loss(name, **GRADCHECK_KWARGS.get(name, {}))
    logits, target = _inputs(regions)
    value = loss_fn(logits, target)
    assert value.ndim == 0 and torch.isfinite(value)
    assert torch.autograd.gradcheck(lambda x: loss_fn(x, target), (logits,))


@pytest.mark.parametrize("regions", [False, True], ids=["softmax", "sigmoid"])
def test_gradcheck_vae(regions: bool) -> None:
    gen = torch.Generator().manual_seed(4)
    logits, target = _inputs(regions)
    image = torch.randn(2, 2, 3, 4, generator=gen, dtype=torch.float64)
    recon = torch.randn(2, 2, 3, 4, generator=gen, dtype=torch.float64, requires_grad=True)
    mu = torch.randn(2, 5, generator=gen, dtype=torch.float64, requires_grad=True)
    logvar = torch.randn(2, 5, generator=gen, dtype=torch.float64, requires_grad=True)
    loss_fn = create_loss("vae", dice_kwargs={"eps": 1.0, "include_background": True})

    def total(*xs: torch.Tensor) -> torch.Tensor:
        out = SimpleNamespace(logits=xs[0], reconstruction=xs[1], mu=xs[2], logvar=xs[3])
        return loss_fn(out, target, image)["loss"]

    assert torch.autograd.gradcheck(total, (logits, recon, mu, logvar))


def test_gradcheck_pure_functions() -> None:
    gen = torch.Generator().manual_seed(5)
    p = torch.rand(2, 3, 5, generator=gen, dtype=torch.float64).requires_grad_()
    g = (torch.rand(2, 3, 5, generator=gen) > 0.5).double()
    g[0, 1] = 0.0  # an absent class exercises the generalized-Dice guard
    for fn in (vnet_dice_loss, soft_dice_loss, generalized_dice_loss):
        assert torch.autograd.gradcheck(lambda x, fn=fn: fn(x, g), (p,))


# --- hand-worked values ---------------------------------------------------------------------


def test_soft_dice_hand_values() -> None:
    # channel 0: p = (1, .5, 0, 0), g = (1, 1, 0, 0): (2*1.5 + 1) / (1.25 + 2 + 1) = 4 / 4.25
    # channel 1: p = 0, g = 0: (0 + 1) / (0 + 0 + 1) = 1 -> loss 0 (smoothing at work)
    p = torch.tensor([[[1.0, 0.5, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]]], dtype=torch.float64)
    g = torch.tensor([[[1.0, 1.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]]], dtype=torch.float64)
    assert soft_dice_loss(p, g).item() == pytest.approx(1 - 4 / 4.25)
    assert soft_dice_loss(p, g, reduction="mean").item() == pytest.approx((1 - 4 / 4.25) / 2)
    # a tiny eps: channel 0 is the V-Net Dice 3 / 3.25, the empty channel 1 still eps / eps = 1
    assert soft_dice_loss(p, g, eps=1e-12).item() == pytest.approx(1 - 3 / 3.25)


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


def test_focal_hand_values() -> None:
    # two voxels, p_t = 0.5 and 0.9: (1 - p_t)^2 * -log p_t
    logits = torch.log(torch.tensor([[[0.5, 0.1], [0.5, 0.9]]], dtype=torch.float64))
    labels = torch.tensor([[[1, 1]]])
    expected = (0.25 * -math.log(0.5) + 0.01 * -math.log(0.9)) / 2
    assert focal_loss(logits, labels, gamma=2.0).item() == pytest.approx(expected)
    # gamma = 0 is the cross-entropy
    torch.testing.assert_close(focal_loss(logits, labels, 0.0), cross_entropy_loss(logits, labels))


def test_sigmoid_regime_matches_binary_cross_entropy() -> None:
    gen = torch.Generator().manual_seed(6)
    logits = torch.randn(2, 3, 4, 5, generator=gen, dtype=torch.float64)
    masks = (torch.rand(2, 3, 4, 5, generator=gen) > 0.6).double()
    bce = F.binary_cross_entropy_with_logits(logits, masks)
    torch.testing.assert_close(CrossEntropyLoss()(logits, masks), bce)
    torch.testing.assert_close(FocalLoss(gamma=0.0)(logits, masks), bce)
    # class-balanced: per region, mean of (mean BCE inside, mean BCE outside)
    per_voxel = F.binary_cross_entropy_with_logits(logits, masks, reduction="none")
    balanced = torch.stack(
        [
            0.5
            * (per_voxel[:, r][masks[:, r] > 0].mean() + per_voxel[:, r][masks[:, r] == 0].mean())
            for r in range(3)
        ]
    ).mean()
    torch.testing.assert_close(CrossEntropyLoss("inverse_frequency")(logits, masks), balanced)
    # Dice family: sigmoid per channel, every channel scored
    expected = soft_dice_loss(torch.sigmoid(logits), masks)
    torch.testing.assert_close(SoftDiceLoss()(logits, masks), expected)


def test_hybrid_and_combined() -> None:
    gen = torch.Generator().manual_seed(7)
    logits = torch.randn(2, 3, 4, 5, generator=gen, dtype=torch.float64)
    labels = torch.randint(0, 3, (2, 1, 4, 5), generator=gen)
    ce = cross_entropy_loss(logits, labels, "inverse_frequency")
    gdl = generalized_dice_loss(torch.softmax(logits, 1), one_hot(labels, 3).double())
    torch.testing.assert_close(
        HybridLoss(ce_weight=0.3, dice_weight=0.7)(logits, labels), 0.3 * ce + 0.7 * gdl
    )
    torch.testing.assert_close(GeneralizedDiceLoss()(logits, labels), gdl)
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
    torch.testing.assert_close(combined(logits, labels), 2.0 * ce + gdl)
    with pytest.raises(ValueError, match="terms"):
        CombinedLoss([{"loss": "x"}])
    with pytest.raises(ValueError, match="cannot be combined"):
        CombinedLoss([{"name": "vae"}])


def test_vae_loss_hand_values() -> None:
    image = torch.tensor([[[1.0, 2.0, 3.0, 4.0]]], dtype=torch.float64)  # (B=1, C=1, N=4)
    recon = torch.tensor([[[1.0, 2.0, 2.0, 6.0]]], dtype=torch.float64)  # errors 0, 0, 1, 2
    mu = torch.tensor([[0.0, 1.0]], dtype=torch.float64)
    logvar = torch.tensor([[0.0, math.log(2.0)]], dtype=torch.float64)
    l2, kl = vae_loss(recon, image, mu, logvar)
    assert l2.item() == pytest.approx((0 + 0 + 1 + 4) / 4)
    # latent 0: 0 + 1 - 0 - 1 = 0; latent 1: 1 + 2 - log 2 - 1 = 2 - log 2; N = 4 voxels
    assert kl.item() == pytest.approx((2 - math.log(2)) / 4)
    assert kl_divergence(torch.zeros(3, 8), torch.zeros(3, 8), 10).item() == 0.0
    # total L = L_dice + 0.1 L_L2 + 0.1 L_KL, with the Dice on region logits
    logits = torch.tensor([[[2.0, -1.0, 0.5, 3.0]]], dtype=torch.float64)
    masks = torch.tensor([[[1.0, 0.0, 0.0, 1.0]]], dtype=torch.float64)
    out = SimpleNamespace(logits=logits, reconstruction=recon, mu=mu, logvar=logvar)
    terms = VAELoss()(out, masks, image)
    dice = soft_dice_loss(torch.sigmoid(logits), masks, eps=1.0)
    torch.testing.assert_close(terms["dice"], dice)
    torch.testing.assert_close(terms["loss"], dice + 0.1 * l2 + 0.1 * kl)
    assert set(VAELoss()(logits, masks)) == {"loss", "dice"}  # evaluation mode: logits only
    with pytest.raises(ValueError, match="image"):
        VAELoss()(out, masks)
