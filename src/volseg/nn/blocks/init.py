"""Weight initialisation: He-normal for ReLU-family layers, Glorot-normal before a sigmoid."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

__all__ = ["glorot_normal_", "he_normal_", "init_he"]


_RELU_GAIN = {"relu": 2.0, "prelu": 2.0 / (1 + 0.25**2), "leakyrelu": 2.0 / (1 + 0.01**2)}


def he_normal_(weight: torch.Tensor, act: str = "relu") -> torch.Tensor:
    """He-normal init in place: ``N(0, gain / fan_in)``, fan-in = input channels x kernel.

    ``gain`` is 2 for ReLU, ``2 / (1 + a^2)`` for PReLU (a = 0.25) and LeakyReLU (a = 0.01), 1
    for anything else (ELU, no activation).
    """
    fan_in = weight.shape[1] * math.prod(weight.shape[2:])
    std = math.sqrt(_RELU_GAIN.get(act.lower(), 1.0) / fan_in)
    with torch.no_grad():
        return weight.normal_(0.0, std)


def glorot_normal_(weight: torch.Tensor) -> torch.Tensor:
    """Glorot-normal init in place (for layers before a sigmoid): ``N(0, 2 / (fan_in+fan_out))``."""
    nn.init.xavier_normal_(weight)
    return weight


def init_he(module: nn.Module, act: str = "relu", glorot: Sequence[nn.Module] = ()) -> None:
    """He-normal init of every conv/linear weight in ``module``, zero biases; layers whose
    outputs feed a sigmoid get Glorot-normal instead (Adeniji et al.): those in ``glorot`` (a
    net's sigmoid head) and those a submodule names in its ``glorot_layers`` attribute (a tuple
    of attribute names, e.g. the gate layer of
    :class:`~volseg.nn.blocks.layers.SqueezeExcitation`). Transposed convs count fan-in as
    ``C_in x kernel / stride`` (the inputs each output actually sees)."""
    skip = {id(m) for m in glorot}
    for m in module.modules():
        skip.update(id(getattr(m, name)) for name in getattr(m, "glorot_layers", ()))
    for m in module.modules():
        if isinstance(
            m, nn.Conv2d | nn.Conv3d | nn.Linear | nn.ConvTranspose2d | nn.ConvTranspose3d
        ):
            if id(m) in skip:
                glorot_normal_(m.weight)
            elif isinstance(m, nn.ConvTranspose2d | nn.ConvTranspose3d):
                w = m.weight
                fan_in = w.shape[0] * math.prod(w.shape[2:]) // math.prod(m.stride)
                std = math.sqrt(_RELU_GAIN.get(act.lower(), 1.0) / fan_in)
                with torch.no_grad():
                    w.normal_(0.0, std)
            else:
                he_normal_(m.weight, act)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
