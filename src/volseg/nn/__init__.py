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


def create_model(name: str, **kwargs: Any) -> nn.Module:
    """Build the network registered as ``name``; with no keyword arguments, its paper's recipe.

    Args:
        name: a registered name (see :func:`list_models`): ``vnet``, ``resvolnet``, ``resunet``,
            ``fcresnet``, ``segresnet_vae``.
        **kwargs: the net's own constructor arguments (MONAI's names for the common ones:
            ``spatial_dims``, ``in_channels``, ``out_channels``); its docstring lists each with
            its paper value. What is not given keeps the net's own default, so
            ``create_model("resunet")`` is 2D with 5 CTP input maps and
            ``create_model("segresnet_vae")`` takes 4 MRI modalities to 3 regions.

    Every net is a :class:`Network`: ``spatial_dims``, ``in_channels``, ``out_channels``,
    ``divisor`` (input spatial sizes must be multiples of it) and ``output_kind``.
    """
    return MODELS.create(name, **kwargs)


def list_models() -> list[str]:
    """Names of the registered networks, sorted."""
    return MODELS.list()


# Explicit imports that register the networks (after MODELS exists: they import it from here).
from volseg.nn import fcresnet as fcresnet  # noqa: E402
from volseg.nn import resunet as resunet  # noqa: E402
from volseg.nn import resvolnet as resvolnet  # noqa: E402
from volseg.nn import segresnet_vae as segresnet_vae  # noqa: E402
from volseg.nn import vnet as vnet  # noqa: E402
