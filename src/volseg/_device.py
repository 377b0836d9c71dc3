"""Where a net runs: ``auto``, ``cpu`` or ``cuda``, and the host-to-device copies that suit it."""

from __future__ import annotations

import torch

__all__ = ["resolve_device", "to_device"]


def resolve_device(name: str, key: str) -> torch.device:
    """The torch device of a config value.

    Args:
        name: ``auto`` (the first CUDA device when there is one, else the CPU), ``cpu`` or
            ``cuda``.
        key: the config key or flag that gave ``name``, for the error message.

    Raises:
        ValueError: ``cuda`` was asked for on a machine without a CUDA device.
    """
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"{key} is {name} but no CUDA device is available (use cpu or auto)")
    return torch.device(name)


def to_device(tensor: torch.Tensor, device: torch.device) -> torch.Tensor:
    """Copy a host tensor to ``device``: through pinned memory and asynchronously for CUDA
    (the copy overlaps the previous kernels), a no-op on the CPU."""
    if device.type != "cuda" or tensor.device == device:
        return tensor.to(device)
    if tensor.device.type == "cpu" and not tensor.is_pinned():
        tensor = tensor.pin_memory()
    return tensor.to(device, non_blocking=True)
