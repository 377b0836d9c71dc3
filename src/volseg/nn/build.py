"""The configured network, with channel counts taken from the data."""

from __future__ import annotations

from torch import nn

from volseg.config import Config
from volseg.nn import create_model
from volseg.nn.network import check_network
from volseg.regions import get_regions

__all__ = ["build_model", "output_channels"]


def output_channels(config: Config, num_labels: int) -> int:
    """One channel per label (softmax), or per region with ``data.regions`` (sigmoid)."""
    if config.data.regions is None:
        return num_labels
    return len(get_regions(config.data.regions))


def build_model(config: Config, in_channels: int, num_labels: int) -> nn.Module:
    """``config.model`` built for ``in_channels`` inputs and the outputs the labels imply.

    Channel counts given in ``model.kwargs`` must agree with the data; a mismatch is an error
    naming the key. The result satisfies :class:`volseg.nn.network.Network` (checked).
    """
    kwargs = dict(config.model.kwargs)
    out_channels = output_channels(config, num_labels)
    for key, value in (("in_channels", in_channels), ("out_channels", out_channels)):
        if key in kwargs and kwargs[key] != value:
            raise ValueError(f"model.kwargs.{key}={kwargs[key]} but the data implies {value}")
        kwargs[key] = value
    model = create_model(config.model.name, **kwargs)
    check_network(model)  # what training, inference and export rely on
    return model
