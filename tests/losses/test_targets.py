"""Target handling shared by the losses: one-hot labels and the checks that pick the regime."""

from __future__ import annotations

import pytest
import torch

from volseg.losses import CrossEntropyLoss, VNetDiceLoss, one_hot, vnet_dice_loss


def test_one_hot() -> None:
    labels = torch.tensor([[[0, 2, 1]]])
    oh = one_hot(labels, 3)
    assert oh.shape == (1, 3, 3)
    assert oh[0].argmax(0).tolist() == [0, 2, 1]
    assert oh.sum(1).eq(1).all()
    with pytest.raises(ValueError):
        one_hot(labels, 2)


def test_shape_errors() -> None:
    with pytest.raises(ValueError):
        vnet_dice_loss(torch.rand(1, 2, 4), torch.rand(1, 2, 5))
    # one channel of logits with integer labels: not a softmax problem (pass float masks)
    with pytest.raises(ValueError):
        VNetDiceLoss()(torch.randn(1, 1, 4, 4), torch.zeros(1, 4, 4, dtype=torch.int64))
    # integer labels must be (B, 1, *S) or (B, *S)
    with pytest.raises(ValueError):
        VNetDiceLoss()(torch.randn(1, 2, 4, 4), torch.zeros(1, 2, 4, 4, dtype=torch.int64))


def test_boolean_region_masks_select_the_sigmoid_regime() -> None:
    # volseg.regions.batch_labels_to_regions returns boolean masks: same loss as float masks
    gen = torch.Generator().manual_seed(9)
    logits = torch.randn(2, 3, 4, 5, generator=gen)
    masks = torch.rand(2, 3, 4, 5, generator=gen) > 0.5
    for loss_fn in (VNetDiceLoss(), CrossEntropyLoss("inverse_frequency")):
        expected = loss_fn(logits, masks.float()).total
        torch.testing.assert_close(loss_fn(logits, masks).total, expected)
