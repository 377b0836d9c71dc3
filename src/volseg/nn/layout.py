"""Channels-last memory layout for 2-D and 3-D networks on the CPU, kept from end to end.

oneDNN's convolutions run fastest on channels-last tensors (``(B, C, D, H, W)`` stored as
``B, D, H, W, C``). A net converted with ``.to(memory_format=torch.channels_last_3d)`` only gets
part of that gain when it holds instance norms: PyTorch's instance norm views the input as
``(1, B * C, ...)``, which a channels-last tensor cannot be viewed as, so every call copies its
input to the default layout and the next convolution reorders it back. With
:class:`InstanceNorm3d` (and :class:`InstanceNorm2d`) the statistics are taken over the spatial
axes of a ``(B, D*H*W, C)`` view instead: no copy, and the output stays channels-last.

Measured on the 2-core development machine (``python benchmarks/inference.py --only layout``),
time of one forward pass against the default layout: MONAI's 3-D ``UNet`` (instance norm +
PReLU, 4 windows of 96^3) 0.84 after ``.to(channels_last_3d)`` and 0.78 after
:func:`to_channels_last`; volseg's 2-D ``resunet`` with instance norm 0.88, ``fcresnet`` 0.74.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.modules.instancenorm import _InstanceNorm

__all__ = ["InstanceNorm2d", "InstanceNorm3d", "to_channels_last"]

# Below this many channels the (B, D*H*W, C) reduction has too little to vectorise over and
# PyTorch's own instance norm is faster (measured: 2 channels of 96^3, 18 ms against 12 ms).
_MIN_CHANNELS = 8

_CHANNELS_LAST = {4: torch.channels_last, 5: torch.channels_last_3d}


class _LayoutKeepingInstanceNorm(_InstanceNorm):
    """Instance norm that keeps a channels-last input channels-last (see the module docstring).

    Same parameters, buffers and state-dict keys as PyTorch's module, and the same result (to
    float32 rounding: the mean and biased variance are two plain passes over each channel).
    Inputs in the default layout, with few channels or in reduced precision (autocast: PyTorch
    keeps the statistics in float32), and modules that track running statistics take PyTorch's
    own path.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        layout = _CHANNELS_LAST.get(x.ndim)
        if (
            layout is None
            or self.track_running_stats
            or x.shape[1] < _MIN_CHANNELS
            or x.dtype not in (torch.float32, torch.float64)
            or not x.is_contiguous(memory_format=layout)
        ):
            return super().forward(x)
        batch, channels, *spatial = x.shape
        last = x.ndim - 1
        flat = x.permute(0, *range(2, x.ndim), 1).reshape(batch, -1, channels)  # a view
        centred = flat - flat.mean(1, keepdim=True)
        variance = (centred * centred).mean(1, keepdim=True)
        scale = torch.rsqrt(variance + self.eps)
        if self.affine:
            scale = scale * self.weight
        in_place = not torch.is_grad_enabled()  # autograd needs ``centred`` intact
        out = centred.mul_(scale) if in_place else centred * scale
        if self.affine:
            out = out.add_(self.bias) if in_place else out + self.bias
        return out.view(batch, *spatial, channels).permute(0, last, *range(1, last))


class InstanceNorm2d(_LayoutKeepingInstanceNorm, nn.InstanceNorm2d):
    """``torch.nn.InstanceNorm2d`` that keeps a channels-last input channels-last."""


class InstanceNorm3d(_LayoutKeepingInstanceNorm, nn.InstanceNorm3d):
    """``torch.nn.InstanceNorm3d`` that keeps a channels-last input channels-last."""


_REPLACEMENTS: dict[type[nn.Module], type[_LayoutKeepingInstanceNorm]] = {
    nn.InstanceNorm2d: InstanceNorm2d,
    nn.InstanceNorm3d: InstanceNorm3d,
}


def _replace_instance_norms(module: nn.Module) -> None:
    for name, child in module.named_children():
        replacement = _REPLACEMENTS.get(type(child))
        if replacement is not None and isinstance(child, _InstanceNorm):
            if child.track_running_stats:
                continue
            fast = replacement(child.num_features, eps=child.eps, affine=child.affine)
            if child.affine:  # the same Parameter objects: state dicts and optimisers unaffected
                fast.weight, fast.bias = child.weight, child.bias
            setattr(module, name, fast.train(child.training))
        else:
            _replace_instance_norms(child)


def to_channels_last(model: nn.Module) -> nn.Module:
    """Convert a 2-D or 3-D network in place to run channels-last end to end; returns it.

    Stores 4-D parameters and buffers (2-D convolution weights) as ``torch.channels_last`` and
    5-D ones as ``torch.channels_last_3d``, and swaps every ``torch.nn.InstanceNorm2d/3d``
    without running statistics for :class:`InstanceNorm2d` / :class:`InstanceNorm3d`, which take
    over its parameters (state-dict keys and values are unchanged). Works for any ``nn.Module``:
    volseg's nets, MONAI's, your own.
    """
    _replace_instance_norms(model)
    with torch.no_grad():
        for tensor in (*model.parameters(), *model.buffers()):
            layout = _CHANNELS_LAST.get(tensor.ndim)
            if layout is not None:  # ``to`` (not ``contiguous``) sets channels-last strides
                # also where both layouts coincide (1 channel, 1x1x1 kernel); oneDNN reads them
                tensor.data = tensor.data.to(memory_format=layout)
    return model
