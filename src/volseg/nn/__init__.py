"""Networks: ``MODELS`` maps names to ``nn.Module`` classes; ``create_model("vnet", ...)``.

Each network module registers itself when imported; this package imports them explicitly below
(no folder crawling), so :func:`list_models` is complete once ``volseg.nn`` is imported.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from volseg.nn.network import Network, OutputKind, check_network
from volseg.registry import Registry

__all__ = [
    "MODELS",
    "Network",
    "OutputKind",
    "check_network",
    "create_model",
    "list_models",
]

MODELS = Registry[nn.Module]("model")


def create_model(
    name: str, spatial_dims: int = 3, in_channels: int = 1, out_channels: int = 2, **kwargs: Any
) -> nn.Module:
    """Build the network registered as ``name`` with the paper's defaults (MONAI's names).

    Args:
        name: a registered name (see :func:`list_models`): ``vnet``, ``resvolnet``, ``resunet``,
            ``fcresnet``, ``segresnet_vae``.
        spatial_dims: 3 for ``(B, C, D, H, W)`` volumes, 2 for ``(B, C, H, W)`` images (the
            papers of ``resunet`` and ``fcresnet`` are 2D: pass 2 for their recipes).
        in_channels: input channels (image modalities).
        out_channels: output channels (classes, or regions for ``segresnet_vae``).
        **kwargs: the net's own arguments (its docstring lists them and their paper values).

    Every net is a :class:`Network`: ``spatial_dims``, ``in_channels``, ``out_channels``,
    ``divisor`` (input spatial sizes must be multiples of it) and ``output_kind``.
    """
    return MODELS.create(
        name,
        spatial_dims=spatial_dims,
        in_channels=in_channels,
        out_channels=out_channels,
        **kwargs,
    )


def list_models() -> list[str]:
    """Names of the registered networks, sorted."""
    return MODELS.list()


# Explicit imports that register the networks (after MODELS exists: they import it from here).
from volseg.nn import fcresnet as fcresnet  # noqa: E402
from volseg.nn import resunet as resunet  # noqa: E402
from volseg.nn import resvolnet as resvolnet  # noqa: E402
from volseg.nn import segresnet_vae as segresnet_vae  # noqa: E402
from volseg.nn import vnet as vnet  # noqa: E402
