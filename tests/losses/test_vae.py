"""The VAE loss L = L_dice + 0.1 L_L2 + 0.1 L_KL: its terms by hand, gradcheck, and both outputs
of the VAE net (training: VAEOutput; evaluation: logits)."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch

from volseg.losses import LossOutput, VAELoss, create_loss, kl_divergence, soft_dice_loss, vae_loss
from volseg.nn.segresnet_vae import VAEOutput


def _inputs(regions: bool) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(3)
    logits = torch.randn(2, 3, 3, 4, generator=gen, dtype=torch.float64)
    if regions:
        target = (torch.rand(2, 3, 3, 4, generator=gen) > 0.5).double()
    else:
        target = torch.randint(0, 3, (2, 1, 3, 4), generator=gen)
    return logits.requires_grad_(), target


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
        return loss_fn(VAEOutput(*xs), target, image).total

    assert torch.autograd.gradcheck(total, (logits, recon, mu, logvar))


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
    out = VAEOutput(logits, recon, mu, logvar)
    result = VAELoss()(out, masks, image)
    assert isinstance(result, LossOutput)
    dice = soft_dice_loss(torch.sigmoid(logits), masks, eps=1.0)
    assert set(result.terms) == {"dice", "l2", "kl"}  # unweighted
    torch.testing.assert_close(result.terms["dice"], dice)
    torch.testing.assert_close(result.terms["l2"], l2)
    torch.testing.assert_close(result.terms["kl"], kl)
    torch.testing.assert_close(result.total, dice + 0.1 * l2 + 0.1 * kl)
    # any object with the four fields will do (duck-typed, like the net's NamedTuple)
    duck = SimpleNamespace(logits=logits, reconstruction=recon, mu=mu, logvar=logvar)
    torch.testing.assert_close(VAELoss()(duck, masks, image).total, result.total)
    # evaluation mode, logits only: the Dice term is the total
    eval_result = VAELoss()(logits, masks)
    assert set(eval_result.terms) == {"dice"}
    torch.testing.assert_close(eval_result.total, dice)
    with pytest.raises(ValueError, match="image"):
        VAELoss()(out, masks)
    with pytest.raises(TypeError, match="VAE"):
        VAELoss()(SimpleNamespace(logits=logits), masks, image)
    with pytest.raises(ValueError, match="segmentation loss"):
        VAELoss(dice="vae")
