"""Group norm + ReLU fused, on channels-last tensors, with its own backward.

PyTorch's ``GroupNorm`` followed by ``ReLU`` makes, per call, a normalised tensor, a separate
ReLU output and (in training) two more full-size tensors in the backward pass (the ReLU's
gradient and the norm's). Here the forward is PyTorch's own group-norm kernel (its
channels-last CPU path: one statistics pass, one output pass) with the ReLU applied in place,
and the backward is fused: a ``(B, C, *S)`` channels-last tensor is viewed as ``(B, S, C)``, the
ReLU mask and the per-channel sums the norm's gradient needs come from one pass, and the input
gradient is written in place of the output gradient's masked copy. Every backward pass runs
over slabs of rows small enough to stay in cache, so no temporary of the full size is made; the
sums run in float64 per channel. The result equals ``relu(group_norm(x))`` exactly and its
gradients to float32 rounding.

bfloat16 tensors (what a convolution gives under CPU autocast) take the same path: each
backward slab is widened to float32 in cache and the input gradient is rounded to bfloat16
once, as PyTorch's own bfloat16 kernels do; no sum runs in bfloat16.

Measured on the U-Net+VAE at 4x128^3 (``docs/training.md``): PyTorch's forward kernel beat a
slab-wise forward of our own (3.47 against 4.18 s per forward in float32).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn
from torch.autograd.function import once_differentiable

__all__ = ["fusable", "fused_group_norm_relu"]

_CHANNELS_LAST = {4: torch.channels_last, 5: torch.channels_last_3d}
_SLAB = 1 << 18  # elements of a slab (per batch item): 256 KiB of float32, cache-resident
_DTYPES = (torch.float32, torch.bfloat16)


def fusable(norm: nn.Module, act: nn.Module, x: torch.Tensor) -> bool:
    """Whether ``act(norm(x))`` may run as :func:`fused_group_norm_relu`."""
    layout = _CHANNELS_LAST.get(x.ndim)
    return (
        layout is not None
        and type(norm) is nn.GroupNorm
        and norm.affine
        and type(act) is nn.ReLU
        and x.dtype in _DTYPES
        and x.numel() > 0  # an empty batch takes the plain modules
        and x.device.type == "cpu"
        and x.is_contiguous(memory_format=layout)
        and not torch.compiler.is_compiling()  # let the compiler fuse the plain ops itself
        and not torch.onnx.is_in_onnx_export()
        and not torch.jit.is_tracing()
    )


def _rows(x: torch.Tensor) -> torch.Tensor:
    """``(B, C, *S)`` channels-last as a ``(B, S, C)`` view."""
    return x.permute(0, *range(2, x.ndim), 1).reshape(x.shape[0], -1, x.shape[1])


def _group_sum(values: torch.Tensor, groups: int) -> torch.Tensor:
    """``(B, C)`` -> per-group sums broadcast back to ``(B, C)``."""
    batch, channels = values.shape
    sums = values.view(batch, groups, channels // groups).sum(-1, keepdim=True)
    return sums.expand(batch, groups, channels // groups).reshape(batch, channels)


class _GroupNormReLU(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx: Any,
        x: torch.Tensor,
        weight: torch.Tensor,
        bias: torch.Tensor,
        groups: int,
        eps: float,
    ) -> torch.Tensor:
        batch, channels = x.shape[:2]
        # PyTorch's own kernel (one statistics pass and one output pass, channels-last kept),
        # then the ReLU in place: the forward needs nothing more, the backward is fused below
        out, mean, rstd = torch.ops.aten.native_group_norm(
            x, weight, bias, batch, channels, math.prod(x.shape[2:]), groups, eps
        )
        out.relu_()
        per_channel = channels // groups
        mean = mean.float().repeat_interleave(per_channel, dim=1)
        rstd = rstd.float().repeat_interleave(per_channel, dim=1)
        ctx.save_for_backward(x, out, weight, mean, rstd)
        ctx.groups = groups
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[Any, ...]:
        x, out, weight, mean, rstd = ctx.saved_tensors
        groups = ctx.groups
        layout = _CHANNELS_LAST[x.ndim]
        grad = grad.to(x.dtype).contiguous(memory_format=layout)
        rows, y, g = _rows(x), _rows(out), _rows(grad)
        batch, count, channels = rows.shape
        dx = torch.empty_like(x)
        dx_rows = _rows(dx)
        db = torch.zeros(batch, channels, dtype=torch.float64)
        dxs = torch.zeros(batch, channels, dtype=torch.float64)
        step = max(1, _SLAB // channels)
        for start in range(0, count, step):  # dz = grad where the output is positive
            stop = start + step
            dz = dx_rows[:, start:stop]
            torch.ops.aten.threshold_backward.grad_input(
                g[:, start:stop], y[:, start:stop], 0.0, grad_input=dz
            )
            dz = dz.float()  # a view when x is float32, a cache-resident copy for bfloat16
            db += dz.sum(1)
            dxs += (dz * rows[:, start:stop].float()).sum(1)
        mean_d, rstd_d, w = mean.double(), rstd.double(), weight.double()
        dxhat = rstd_d * (dxs - mean_d * db)  # sum over S of dz * xhat, per (B, C)
        n = count * (channels // groups)
        m1 = _group_sum(w * db, groups) / n
        m2 = _group_sum(w * dxhat, groups) / n
        # dx = rstd (w dz - m1 - xhat m2) = A dz + B x + C
        a = (rstd_d * w).float()[:, None]
        b = (-rstd_d * rstd_d * m2).float()[:, None]
        c = (rstd_d * (mean_d * rstd_d * m2 - m1)).float()[:, None]
        for start in range(0, count, step):
            stop = start + step
            dz = dx_rows[:, start:stop]  # float32 arithmetic, one rounding to x's dtype
            dz.copy_(torch.addcmul(c, rows[:, start:stop].float(), b).addcmul_(dz.float(), a))
        grad_weight = dxhat.sum(0).to(weight.dtype) if ctx.needs_input_grad[1] else None
        grad_bias = db.sum(0).to(weight.dtype) if ctx.needs_input_grad[2] else None
        return dx, grad_weight, grad_bias, None, None


def fused_group_norm_relu(x: torch.Tensor, norm: nn.GroupNorm) -> torch.Tensor:
    """``relu(norm(x))`` for a channels-last float32 or bfloat16 ``x`` (see :func:`fusable`)."""
    return _GroupNormReLU.apply(x, norm.weight, norm.bias, norm.num_groups, norm.eps)
