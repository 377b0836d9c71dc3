"""Segmentation losses of the five papers: pure functions first, thin registered modules over them.

``LOSSES`` maps names to :class:`Loss` classes; ``create_loss(name, **kwargs)`` builds one from
the config's ``loss.name`` / ``loss.kwargs``. Every registered loss is called the same way and
returns a :class:`LossOutput` (see :mod:`volseg.losses.base`)::

    result = loss_fn(output, target, image)  # output: logits, or the VAE net's VAEOutput
    result.total.backward()  # scalar
    result.terms  # {"dice": ..., "ce": ...}: the named, unweighted parts, to log

Modules (one concept each): :mod:`~volseg.losses.base` (``LossOutput``, ``Loss``, the registry),
:mod:`~volseg.losses.dice`, :mod:`~volseg.losses.cross_entropy`, :mod:`~volseg.losses.compound`,
:mod:`~volseg.losses.vae`; target handling in ``_targets``.

Two regimes, chosen by the **target** handed to a module (so the config never repeats it):

* **softmax over exclusive labels**: ``loss(logits (B, C, *S), labels (B, 1, *S) or (B, *S)
  integer)``; the module applies a softmax over C and one-hot encodes the labels;
* **sigmoid over overlapping regions** (BraTS whole tumour / core / enhancing, see
  :mod:`volseg.regions`): ``loss(logits (B, R, *S), masks (B, R, *S) float or bool)``; the module
  applies a sigmoid per channel. A float or boolean target shaped like the logits selects this
  regime.

The pure functions (``vnet_dice_loss``, ``cross_entropy_loss``, ``vae_loss``...) return tensors;
they take probabilities (Dice family) or logits (cross-entropy family) and one-hot / region
targets, with the activation outside them.

Registered:

=====================  ==========================================================================
``vnet_dice``          V-Net Dice ``1 - 2 sum(pg) / (sum p^2 + sum g^2)`` (Milletari 2016, Eq. 1)
``soft_dice``          soft Dice with smoothing ``eps = 1`` summed over channels (Myronenko 2018)
``generalized_dice``   generalized Dice, class weights ``1 / (sum g)^2`` (Sudre 2017)
``cross_entropy``      cross-entropy with class weights: none, given, or ``"inverse_frequency"``
                       (the latter is V-Net's "multinomial logistic loss with sample re-weighting")
``dice_ce``            V-Net Dice + cross-entropy
``hybrid``             weighted cross-entropy + generalized Dice (Liu et al., ISLES 2018)
``focal``              focal loss ``-(1 - p_t)^gamma log p_t`` (Lin 2017; Adeniji's future work)
``vae``                ``L_dice + 0.1 L_L2 + 0.1 L_KL`` for a U-Net + VAE (Myronenko 2018, Adeniji)
``combined``           a weighted sum of any of the above (but ``vae``)
=====================  ==========================================================================
"""

from __future__ import annotations

# Every module that registers a loss is imported here, explicitly: list_losses() is complete.
from volseg.losses._targets import one_hot
from volseg.losses.base import LOSSES, Loss, LossOutput, create_loss, list_losses, register_loss
from volseg.losses.compound import CombinedLoss, DiceCELoss, HybridLoss
from volseg.losses.cross_entropy import (
    CrossEntropyLoss,
    FocalLoss,
    cross_entropy_loss,
    focal_loss,
    inverse_frequency_weights,
)
from volseg.losses.dice import (
    GeneralizedDiceLoss,
    SoftDiceLoss,
    VNetDiceLoss,
    generalized_dice_loss,
    soft_dice_loss,
    vnet_dice_loss,
)
from volseg.losses.vae import VAELoss, kl_divergence, vae_loss

__all__ = [
    "LOSSES",
    "CombinedLoss",
    "CrossEntropyLoss",
    "DiceCELoss",
    "FocalLoss",
    "GeneralizedDiceLoss",
    "HybridLoss",
    "Loss",
    "LossOutput",
    "SoftDiceLoss",
    "VAELoss",
    "VNetDiceLoss",
    "create_loss",
    "cross_entropy_loss",
    "focal_loss",
    "generalized_dice_loss",
    "inverse_frequency_weights",
    "kl_divergence",
    "list_losses",
    "one_hot",
    "register_loss",
    "soft_dice_loss",
    "vae_loss",
    "vnet_dice_loss",
]
