"""Networks: ``MODELS`` maps names to ``nn.Module`` classes; ``create_model("vnet", ...)``.

Each network module registers itself when imported; this package imports them explicitly below
(no folder crawling), so :func:`list_models` is complete once ``volseg.nn`` is imported.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from volseg.registry import Registry

__all__ = ["MODELS", "create_model", "list_models"]

MODELS = Registry[nn.Module]("model")


def create_model(name: str, **kwargs: Any) -> nn.Module:
    """Build the network registered as ``name`` with its keyword arguments."""
    return MODELS.create(name, **kwargs)


def list_models() -> list[str]:
    """Names of the registered networks, sorted."""
    return MODELS.list()


# Explicit imports that register the networks (after MODELS exists: they import it from here).
from volseg.nn import vnet as vnet  # noqa: E402
