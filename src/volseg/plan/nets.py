"""What the planner may change in each registered net: its depth and its width.

Each net keeps its own structure (the paper's blocks, skips, kernels); the planner changes two
numbers only, through the net's own constructor arguments:

* **depth**, the number of 2x downsamplings (:attr:`volseg.nn.Network.divisor` is ``2 ** n``),
  so that the deepest feature map of the patch keeps at least :data:`MIN_EDGE` voxels per axis;
  never more downsamplings than the paper's net has;
* **width**, the channels of every level scaled by one factor (CPU budgets only), never below
  :data:`MIN_CHANNELS` in the first level.

A net without an entry in :data:`KNOBS` is planned without either change.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = [
    "KNOBS",
    "MIN_CHANNELS",
    "MIN_EDGE",
    "PAPER_RECIPES",
    "NetKnobs",
    "constructor_defaults",
    "depth_for",
    "downsamplings",
    "first_channels",
    "patch_step",
    "takes_spatial_dims",
    "with_downsamplings",
    "with_width",
]

MIN_EDGE = 4
"""Smallest edge (voxels) of the deepest feature map: nnU-Net's ``featuremap_min_edge_length``."""

MIN_CHANNELS = 8
"""Fewest channels the first level keeps when a CPU budget narrows a net (8 groups of group
norm need 8; the demo's V-Net has 8)."""

PAPER_RECIPES: dict[str, str] = {
    "fcresnet": "fcresnet_isbi2012.yaml",
    "resunet": "resunet_isles2018.yaml",
    "resvolnet": "resvolnet_isles.yaml",
    "segresnet_vae": "segresnet_vae_brats.yaml",
    "vnet": "vnet_promise12.yaml",
}
"""The paper recipe (``configs/``) each registered net is planned from."""


@dataclass(frozen=True)
class NetKnobs:
    """How one net's depth and width are read from and written to its keyword arguments.

    Attributes:
        depth_keys: sequence arguments with one entry per level (truncated together, deepest
            entries dropped); ``up_keys``: sequences with one entry per decoder level, deepest
            first (their first entries are dropped).
        extra_level: 1 when the net has one level per downsampling plus the full-resolution
            one (``len(levels) - 1`` downsamplings), 0 when every level downsamples (FC-ResNet).
        width_ints: integer arguments scaled by the width factor; ``width_seqs``: sequences of
            channel counts scaled by it.
    """

    depth_keys: tuple[str, ...]
    up_keys: tuple[str, ...] = ()
    extra_level: int = 1
    width_ints: tuple[str, ...] = ()
    width_seqs: tuple[str, ...] = ()


KNOBS: dict[str, NetKnobs] = {
    "vnet": NetKnobs(("convs_per_stage",), ("decoder_convs",), 1, ("base_channels",)),
    "resunet": NetKnobs(("channels",), (), 1, (), ("channels",)),
    "resvolnet": NetKnobs(("channels",), (), 1, (), ("channels",)),
    "fcresnet": NetKnobs(
        ("widths", "repeats", "block_types"), (), 0, ("stem_channels",), ("widths",)
    ),
    "segresnet_vae": NetKnobs(("blocks_down",), ("blocks_up",), 1, ("init_filters",)),
}


def _factory(name: str) -> Callable[..., Any]:
    from volseg.nn import MODELS

    return MODELS.get(name)


def constructor_defaults(name: str) -> dict[str, Any]:
    """The registered net's constructor arguments that have defaults, with those defaults."""
    signature = inspect.signature(_factory(name))
    return {
        key: p.default
        for key, p in signature.parameters.items()
        if p.default is not inspect.Parameter.empty
    }


def takes_spatial_dims(name: str) -> bool:
    """Whether the net is built in 2-D and 3-D (its constructor takes ``spatial_dims``)."""
    return "spatial_dims" in inspect.signature(_factory(name)).parameters


def _value(name: str, kwargs: dict[str, Any], key: str) -> Any:
    return kwargs[key] if key in kwargs else constructor_defaults(name).get(key)


def downsamplings(name: str, kwargs: dict[str, Any]) -> int | None:
    """The net's 2x downsamplings with these arguments (``None``: the planner cannot tell)."""
    knobs = KNOBS.get(name)
    if knobs is None:
        return None
    return len(_value(name, kwargs, knobs.depth_keys[0])) - knobs.extra_level


def with_downsamplings(name: str, kwargs: dict[str, Any], n: int) -> dict[str, Any]:
    """``kwargs`` with the deepest levels dropped so that the net has ``n`` downsamplings."""
    knobs = KNOBS[name]
    current = downsamplings(name, kwargs)
    if current is None or n >= current:
        return dict(kwargs)
    levels = n + knobs.extra_level
    out = dict(kwargs)
    for key in knobs.depth_keys:
        out[key] = list(_value(name, kwargs, key))[:levels]
    for key in knobs.up_keys:
        value = _value(name, kwargs, key)
        if value is not None:  # deepest first: keep the shallow end
            out[key] = list(value)[len(value) - (levels - 1) :]
    return out


def first_channels(name: str, kwargs: dict[str, Any]) -> int | None:
    """Channels of the net's first level (``None``: no width knob)."""
    knobs = KNOBS.get(name)
    if knobs is None:
        return None
    if knobs.width_ints:
        return int(_value(name, kwargs, knobs.width_ints[0]))
    return int(_value(name, kwargs, knobs.width_seqs[0])[0])


def with_width(name: str, kwargs: dict[str, Any], factor: float) -> dict[str, Any]:
    """``kwargs`` with every level's channels times ``factor`` (rounded, at least 1)."""
    knobs = KNOBS[name]
    out = dict(kwargs)
    for key in knobs.width_ints:
        out[key] = max(1, round(_value(name, kwargs, key) * factor))
    for key in knobs.width_seqs:
        out[key] = [max(1, round(c * factor)) for c in _value(name, kwargs, key)]
    return out


def patch_step(name: str, kwargs: dict[str, Any], divisor: int) -> int:
    """What every patch axis must be a multiple of: the divisor, or twice it for a net whose
    VAE branch halves the encoder output once more (``segresnet_vae`` with ``vae``)."""
    if name == "segresnet_vae" and _value(name, kwargs, "vae"):
        return 2 * divisor
    return divisor


def depth_for(min_axis: int, paper: int) -> int:
    """Downsamplings for a patch whose smallest axis has ``min_axis`` voxels: as many as keep
    :data:`MIN_EDGE` voxels in the deepest map, at least 1, at most the paper's ``paper``."""
    fit = math.floor(math.log2(max(min_axis, 1) / MIN_EDGE)) if min_axis >= MIN_EDGE else 0
    return max(1, min(paper, fit))
