"""What every registered loss is: a :class:`Loss` module returning a typed :class:`LossOutput`.

One call for every loss and every network::

    loss_fn = create_loss(config.loss.name, **config.loss.kwargs)
    result = loss_fn(output, target, image)  # LossOutput(total, terms)
    result.total.backward()  # the scalar to optimise
    log = {name: float(value) for name, value in result.terms.items()}  # its named parts

``output`` is what the network returned: a logits tensor ``(B, C, *S)``, or an object with a
``logits`` attribute such as the VAE net's ``VAEOutput``; a loss that needs only logits takes them
from it, and the ``vae`` loss uses its other fields. ``image`` (the network input) is needed by
the ``vae`` loss only and ignored by the others. The caller never inspects the output or the
result to decide how to call.

Registry (timm's pattern): ``@register_loss("name")`` on a :class:`Loss` subclass,
:func:`create_loss` and :func:`list_losses`. ``volseg.losses`` imports every module that registers
a loss explicitly, so the list is complete once it is imported.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import torch
from torch import nn

from volseg.registry import Registry

__all__ = [
    "LOSSES",
    "HasLogits",
    "Loss",
    "LossOutput",
    "NetOutput",
    "create_loss",
    "list_losses",
    "logits_of",
    "register_loss",
]


@dataclass(frozen=True, eq=False)
class LossOutput:
    """The result of every registered loss (compared and hashed by identity: it holds tensors).

    Attributes:
        total: scalar tensor to backpropagate (the weighted sum of the terms).
        terms: the named parts, unweighted and still attached to the graph (detach them to log):
            ``{"dice": ..., "ce": ...}`` for ``dice_ce``, ``{"dice": ..., "l2": ..., "kl": ...}``
            for ``vae``, one entry named after the loss for a single-term loss (``{"focal": ...}``).
            The names depend on the loss and its arguments only, never on the batch.
    """

    total: torch.Tensor
    terms: dict[str, torch.Tensor]

    def __post_init__(self) -> None:
        if self.total.ndim != 0:
            raise ValueError(f"total must be a scalar, got shape {tuple(self.total.shape)}")
        if not self.terms:
            raise ValueError("terms must name at least one part of the loss")

    @classmethod
    def single(cls, name: str, value: torch.Tensor) -> LossOutput:
        """A one-term loss: ``total = value``, ``terms = {name: value}``."""
        return cls(value, {name: value})

    @classmethod
    def weighted(
        cls, terms: Mapping[str, torch.Tensor], weights: Mapping[str, float]
    ) -> LossOutput:
        """``total = sum_k weights[k] * terms[k]``; terms of weight 0 are reported, not added."""
        first = next(iter(terms.values()))
        total = first.new_zeros(())
        for name, value in terms.items():
            if weights[name]:
                total = total + weights[name] * value
        return cls(total, dict(terms))


class HasLogits(Protocol):
    """A network output that carries its segmentation logits (e.g. ``VAEOutput``)."""

    @property
    def logits(self) -> torch.Tensor: ...


NetOutput = torch.Tensor | HasLogits
"""What a loss takes as ``output``: logits ``(B, C, *S)``, or an output holding them."""


def logits_of(output: NetOutput) -> torch.Tensor:
    """The segmentation logits ``(B, C, *S)`` of a network output."""
    return output if isinstance(output, torch.Tensor) else output.logits


class Loss(nn.Module):
    """Base of the registered losses: ``forward(output, target, image=None) -> LossOutput``.

    ``target``: integer labels ``(B, 1, *S)`` or ``(B, *S)`` (softmax over exclusive labels) or
    float or boolean region masks shaped like the logits (sigmoid per region); see
    :mod:`volseg.losses`.
    """

    def forward(
        self, output: NetOutput, target: torch.Tensor, image: torch.Tensor | None = None
    ) -> LossOutput:
        raise NotImplementedError

    if TYPE_CHECKING:  # nn.Module.__call__ returns Any; say what a loss returns

        def __call__(
            self, output: NetOutput, target: torch.Tensor, image: torch.Tensor | None = None
        ) -> LossOutput: ...


LOSSES = Registry[Loss]("loss")

L = TypeVar("L", bound=type[Loss])


def register_loss(name: str) -> Callable[[L], L]:
    """Class decorator registering a :class:`Loss` subclass as ``name`` (keeps the class type)."""

    def decorator(cls: L) -> L:
        LOSSES.register(name)(cls)
        return cls

    return decorator


def create_loss(name: str, **kwargs: Any) -> Loss:
    """Build the loss registered as ``name`` with its keyword arguments."""
    return LOSSES.create(name, **kwargs)


def list_losses() -> list[str]:
    """Names of the registered losses, sorted."""
    return LOSSES.list()
