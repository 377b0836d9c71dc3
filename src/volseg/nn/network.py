"""What the rest of volseg may rely on about a network: the :class:`Network` protocol.

Every registered net (:func:`volseg.nn.list_models`) satisfies it, so training, inference and
export read these attributes instead of probing with ``getattr(model, "divisor", 1)`` or
``hasattr(output, "reconstruction")``. A test checks every registered net against it, and the
attribute values against a forward pass.
"""

from __future__ import annotations

from typing import Literal, Protocol, runtime_checkable

__all__ = ["Network", "OutputKind", "check_network"]

OutputKind = Literal["logits", "vae"]
"""What ``forward`` returns: ``"logits"``, always a ``(B, out_channels, *S)`` tensor; ``"vae"``,
in training mode a :class:`volseg.nn.segresnet_vae.VAEOutput` (its ``logits`` field is that
tensor) and in ``eval()`` mode the logits tensor alone."""

_OUTPUT_KINDS: tuple[OutputKind, ...] = ("logits", "vae")


@runtime_checkable
class Network(Protocol):
    """A segmentation network ``(B, in_channels, *S) -> (B, out_channels, *S)``.

    ``S`` is ``(D, H, W)`` for ``spatial_dims == 3`` and ``(H, W)`` for 2. Structural: any
    ``nn.Module`` with these attributes is a ``Network``; ``isinstance`` checks that they exist,
    :func:`check_network` also checks their values.

    Attributes:
        spatial_dims: 2 or 3, the number of spatial axes of the input.
        in_channels: input channels ``C`` (image modalities).
        out_channels: output channels (classes, or regions for a sigmoid-regime net).
        divisor: every input spatial size must be a multiple of it (``2 ** downsamplings``);
            ``forward`` raises ``ValueError`` on another size rather than crop or pad silently.
        output_kind: what ``forward`` returns, see :data:`OutputKind`.
    """

    spatial_dims: int
    in_channels: int
    out_channels: int
    divisor: int
    output_kind: OutputKind


def check_network(model: object) -> Network:
    """``model`` as a :class:`Network`; ``TypeError`` naming what is missing or wrong."""
    missing = [name for name in Network.__annotations__ if not hasattr(model, name)]
    if missing:
        raise TypeError(f"{type(model).__name__} is not a Network: no {', '.join(missing)}")
    assert isinstance(model, Network)
    problems = []
    if model.spatial_dims not in (2, 3):
        problems.append(f"spatial_dims={model.spatial_dims!r} (expected 2 or 3)")
    for name in ("in_channels", "out_channels", "divisor"):
        value = getattr(model, name)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            problems.append(f"{name}={value!r} (expected a positive int)")
    if model.output_kind not in _OUTPUT_KINDS:
        problems.append(f"output_kind={model.output_kind!r} (expected logits or vae)")
    if problems:
        raise TypeError(f"{type(model).__name__} is not a Network: {'; '.join(problems)}")
    return model
