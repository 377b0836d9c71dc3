"""The loss interface: LossOutput, the registry, and every registered loss built and run the same
way (one parametrised test over ``list_losses()``, as timm tests every model)."""

from __future__ import annotations

import dataclasses
import inspect
from typing import Any

import pytest
import torch

from volseg.losses import (
    LOSSES,
    DiceCELoss,
    Loss,
    LossOutput,
    VNetDiceLoss,
    create_loss,
    list_losses,
)
from volseg.nn.segresnet_vae import VAEOutput

# Only the losses that cannot be built without arguments, with the least they need.
REQUIRED_KWARGS: dict[str, dict[str, Any]] = {
    "combined": {"terms": [{"name": "cross_entropy"}, {"name": "soft_dice", "weight": 0.5}]},
}


def test_registered() -> None:
    assert {"vnet_dice", "dice_ce", "vae", "combined"} <= set(list_losses())
    assert isinstance(create_loss("vnet_dice"), VNetDiceLoss)
    assert isinstance(create_loss("dice_ce", ce_weight=0.5), DiceCELoss)
    with pytest.raises(KeyError, match="known"):
        create_loss("dice")


def test_loss_output() -> None:
    a, b = torch.tensor(2.0), torch.tensor(3.0)
    out = LossOutput.weighted({"a": a, "b": b}, {"a": 0.5, "b": 0.0})
    assert out.total.item() == 1.0  # b has weight 0: reported, not added
    assert out.terms == {"a": a, "b": b}
    single = LossOutput.single("a", a)
    assert single.total is a and single.terms == {"a": a}
    with pytest.raises(dataclasses.FrozenInstanceError):
        out.total = b  # type: ignore[misc]
    with pytest.raises(ValueError, match="scalar"):
        LossOutput(torch.zeros(2), {"a": a})
    with pytest.raises(ValueError, match="at least one"):
        LossOutput(a, {})


def _needs_arguments(name: str) -> bool:
    parameters = inspect.signature(LOSSES.get(name)).parameters.values()
    variadic = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
    return any(p.default is p.empty and p.kind not in variadic for p in parameters)


def test_required_kwargs_table_is_exactly_the_losses_needing_arguments() -> None:
    assert set(REQUIRED_KWARGS) == {name for name in list_losses() if _needs_arguments(name)}


def _batch(
    dims: int, regions: bool, seed: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, VAEOutput]:
    """Tiny logits ``(2, 3, *S)``, a target, an image ``(2, 2, *S)`` and a VAE output."""
    gen = torch.Generator().manual_seed(seed)
    spatial = (3, 4, 5)[-dims:]
    logits = torch.randn(2, 3, *spatial, generator=gen).requires_grad_()
    if regions:  # sigmoid per overlapping region: float masks shaped like the logits
        target = (torch.rand(2, 3, *spatial, generator=gen) > 0.5).float()
    else:  # softmax over exclusive labels: integer (B, 1, *S)
        target = torch.randint(0, 3, (2, 1, *spatial), generator=gen)
    image = torch.randn(2, 2, *spatial, generator=gen)
    vae = VAEOutput(
        logits,
        torch.randn(2, 2, *spatial, generator=gen).requires_grad_(),
        torch.randn(2, 4, generator=gen).requires_grad_(),
        torch.randn(2, 4, generator=gen).requires_grad_(),
    )
    return logits, target, image, vae


def _check(result: object, *leaves: torch.Tensor) -> list[str]:
    """Type, scalar finite total and terms, a finite gradient on every leaf; the term names."""
    assert isinstance(result, LossOutput)
    assert isinstance(result.total, torch.Tensor) and result.total.ndim == 0
    assert torch.isfinite(result.total)
    assert isinstance(result.terms, dict) and result.terms
    assert "loss" not in result.terms  # the trainer logs the total as "loss"
    for name, value in result.terms.items():
        assert isinstance(name, str) and isinstance(value, torch.Tensor), name
        assert value.ndim == 0 and torch.isfinite(value), name
    grads = torch.autograd.grad(result.total, leaves)
    assert all(torch.isfinite(g).all() for g in grads)
    return list(result.terms)


@pytest.mark.parametrize("name", list_losses())
def test_every_registered_loss(name: str) -> None:
    loss_fn = create_loss(name, **REQUIRED_KWARGS.get(name, {}))
    assert isinstance(loss_fn, Loss)
    names_on_logits, names_on_vae = set(), set()
    for seed, (dims, regions) in enumerate(
        [(2, False), (3, False), (2, True), (3, True)]  # every loss takes both regimes
    ):
        logits, target, image, vae = _batch(dims, regions, seed)
        # plain logits (any net; the VAE net in eval mode); image given as the trainer does
        on_logits = loss_fn(logits, target, image)
        names_on_logits.add(tuple(_check(on_logits, logits)))
        torch.testing.assert_close(loss_fn(logits, target).total, on_logits.total)
        if regions:  # boolean masks (volseg.regions' output) are region masks too
            torch.testing.assert_close(loss_fn(logits, target.bool()).total, on_logits.total)
        # the VAE net's training output
        on_vae = loss_fn(vae, target, image)
        if name == "vae":
            names_on_vae.add(tuple(_check(on_vae, *vae)))
            assert set(on_vae.terms) == {"dice", "l2", "kl"}
            assert list(on_logits.terms) == ["dice"]  # VAE branch off: the Dice term alone
            torch.testing.assert_close(on_logits.total, on_vae.terms["dice"])
        else:  # any other loss scores the logits of a VAE output
            names_on_vae.add(tuple(_check(on_vae, logits)))
            torch.testing.assert_close(on_vae.total, on_logits.total)
            assert names_on_vae == names_on_logits
    # the names depend on the loss, never on the batch, its dimension or its regime
    assert len(names_on_logits) == 1 and len(names_on_vae) == 1


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


@pytest.mark.parametrize("regions", [False, True], ids=["softmax", "sigmoid"])
@pytest.mark.parametrize("name", [n for n in list_losses() if n != "vae"])  # vae: test_vae.py
def test_gradcheck_every_loss(name: str, regions: bool) -> None:
    loss_fn = create_loss(name, **GRADCHECK_KWARGS.get(name, {}))
    gen = torch.Generator().manual_seed(3)
    logits = torch.randn(2, 3, 3, 4, generator=gen, dtype=torch.float64, requires_grad=True)
    if regions:
        target = (torch.rand(2, 3, 3, 4, generator=gen) > 0.5).double()
    else:
        target = torch.randint(0, 3, (2, 1, 3, 4), generator=gen)
    assert torch.autograd.gradcheck(lambda x: loss_fn(x, target).total, (logits,))
