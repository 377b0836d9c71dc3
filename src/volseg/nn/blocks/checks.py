"""The input check every net runs first: channels, spatial rank, sizes divisible by its divisor."""

from __future__ import annotations

import torch

__all__ = ["check_input"]


def check_input(
    x: torch.Tensor, net: str, spatial_dims: int, in_channels: int, divisor: int
) -> None:
    """Raise ``ValueError`` unless ``x`` is ``(B, in_channels, *S)`` with ``S % divisor == 0``.

    The message names the net, the size it got and the padded size it would accept.
    """
    if x.ndim != spatial_dims + 2 or x.shape[1] != in_channels:
        raise ValueError(
            f"{net} expects (B, {in_channels}, *{spatial_dims} spatial sizes), got {tuple(x.shape)}"
        )
    spatial = tuple(x.shape[2:])
    if any(s % divisor for s in spatial):
        padded = tuple(-(-s // divisor) * divisor for s in spatial)
        raise ValueError(
            f"{net} needs spatial sizes divisible by {divisor}; got {spatial} (pad to {padded})"
        )
