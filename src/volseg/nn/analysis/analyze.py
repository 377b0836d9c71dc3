"""What a network costs, stage by stage: parameters, forward MACs and activation memory, with
the receptive field of every stage (:mod:`.receptive_field`), from one forward pass.

* **parameters**: every element of ``model.parameters()``;
* **forward FLOPs**: multiply-adds (MACs) of the convolutions, transposed convolutions and
  linear layers, counted by forward hooks on those modules; **1 MAC = 2 FLOPs**; bias additions,
  norms, activations, pooling and interpolation are not counted (they are a few percent of a
  conv net's arithmetic, though not of its run time);
* **activation memory**: the bytes of every new tensor a leaf module (one without children)
  returns in the forward pass, at the given batch size and the output's dtype. This is about what
  autograd keeps for the backward pass; it leaves out tensors made between modules (``torch.cat``
  of skips, the residual ``+``), in-place outputs and identities (not new memory), and the
  convolution workspace.

The model is analysed in ``eval()`` mode (so a training-only branch, such as the VAE of
``segresnet_vae``, is not part of it) and restored to its mode afterwards.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.utils._pytree import tree_leaves

from volseg.nn.analysis.receptive_field import ReceptiveField, ReceptiveFieldMode

__all__ = ["ModelAnalysis", "StageInfo", "analyze_model", "count_parameters"]


@dataclass(frozen=True)
class StageInfo:
    """One stage of a net: a top-level child module (items of a top-level container each)."""

    name: str
    output_shape: tuple[int, ...]
    receptive_field: ReceptiveField
    parameters: int
    macs: int
    activation_bytes: int


@dataclass(frozen=True)
class ModelAnalysis:
    """Result of :func:`analyze_model`; MACs and bytes are for the whole batch."""

    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]
    parameters: int
    trainable_parameters: int
    macs: int
    activation_bytes: int
    receptive_field: ReceptiveField
    stages: tuple[StageInfo, ...]

    @property
    def flops(self) -> int:
        """Forward floating-point operations, ``2 * macs`` (one multiply plus one add)."""
        return 2 * self.macs


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameter elements (shared parameters counted once)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def _module_macs(module: nn.Module, inputs: tuple[Any, ...], output: Any) -> int:
    """Multiply-adds of one conv / transposed conv / linear call (bias not counted)."""
    if not isinstance(output, torch.Tensor):
        return 0
    if isinstance(module, nn.modules.conv._ConvTransposeNd):
        # every input element meets every kernel tap of out_channels / groups filters
        x: torch.Tensor = inputs[0]
        per_input = module.out_channels // module.groups * math.prod(module.kernel_size)
        return x.numel() * per_input
    if isinstance(module, nn.modules.conv._ConvNd):
        per_output = module.in_channels // module.groups * math.prod(module.kernel_size)
        return output.numel() * per_output
    if isinstance(module, nn.Linear):
        return output.numel() * module.in_features
    return 0


def _stages(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """Top-level children, with the items of top-level containers listed one by one."""
    stages: list[tuple[str, nn.Module]] = []
    for name, child in model.named_children():
        if isinstance(child, nn.ModuleList | nn.ModuleDict | nn.Sequential):
            stages.extend((f"{name}.{sub}", m) for sub, m in child.named_children())
        else:
            stages.append((name, child))
    unique: dict[int, tuple[str, nn.Module]] = {}  # a module held twice (a shared activation)
    for name, m in stages:  # is one stage, named where it is first held
        unique.setdefault(id(m), (name, m))
    return list(unique.values())


def _first_tensor(value: Any) -> torch.Tensor | None:
    return next((t for t in tree_leaves(value) if isinstance(t, torch.Tensor)), None)


def analyze_model(
    model: nn.Module,
    input_size: Sequence[int],
    in_channels: int | None = None,
    batch_size: int = 1,
) -> ModelAnalysis:
    """Parameters, forward MACs, activation memory and receptive fields at one input size.

    Args:
        model: a net taking ``(B, C, *input_size)``, e.g. ``(B, C, D, H, W)``.
        input_size: spatial size in array order (``D, H, W`` or ``H, W``).
        in_channels: input channels; default ``model.in_channels``.
        batch_size: ``B``; MACs and activation bytes scale with it.

    The forward pass runs on fake tensors (no arithmetic) in ``eval()`` and ``no_grad``
    mode; a net whose forward needs real values (data-dependent control flow) falls back to a
    real pass on zeros, which for a paper-size 3D net takes seconds.
    """
    from torch._subclasses.fake_tensor import (
        DataDependentOutputException,
        DynamicOutputShapeException,
        FakeTensorMode,
    )

    if in_channels is None:
        in_channels = getattr(model, "in_channels", None)
        if not isinstance(in_channels, int):
            raise ValueError(f"{type(model).__name__} has no in_channels: pass in_channels")
    shape = (batch_size, in_channels, *(int(s) for s in input_size))
    if any(s < 1 for s in shape):
        raise ValueError(f"input size must be positive, got {tuple(shape)}")
    try:
        with FakeTensorMode(allow_non_fake_inputs=True):
            return _analyze(model, shape, torch.empty(shape))
    except (DataDependentOutputException, DynamicOutputShapeException):
        return _analyze(model, shape, torch.zeros(shape))


def _analyze(model: nn.Module, shape: tuple[int, ...], x: torch.Tensor) -> ModelAnalysis:
    n_spatial = len(shape) - 2
    mode = ReceptiveFieldMode(n_spatial)
    totals = {"macs": 0, "bytes": 0}
    records: list[StageInfo] = []
    seen: dict[str, int] = {}
    entry: dict[int, list[tuple[int, int]]] = {}  # per stage, a stack of (MACs, bytes) at entry
    handles = []

    def leaf_hook(module: nn.Module, inputs: tuple[Any, ...], output: Any) -> None:
        totals["macs"] += _module_macs(module, inputs, output)
        ins = {id(t) for t in tree_leaves(inputs) if isinstance(t, torch.Tensor)}
        for t in tree_leaves(output):
            if isinstance(t, torch.Tensor) and id(t) not in ins:
                totals["bytes"] += t.numel() * t.element_size()

    def stage_hooks(name: str, stage: nn.Module) -> tuple[Callable[..., None], Callable[..., None]]:
        def pre(module: nn.Module, inputs: tuple[Any, ...]) -> None:
            entry.setdefault(id(module), []).append((totals["macs"], totals["bytes"]))

        def post(module: nn.Module, inputs: tuple[Any, ...], output: Any) -> None:
            macs0, bytes0 = entry[id(module)].pop()
            t = _first_tensor(output)
            if t is None:
                return
            seen[name] = seen.get(name, 0) + 1
            label = name if seen[name] == 1 else f"{name}#{seen[name]}"
            records.append(
                StageInfo(
                    label,
                    tuple(t.shape),
                    mode.field(t) or ReceptiveField(None),
                    count_parameters(stage),
                    totals["macs"] - macs0,
                    totals["bytes"] - bytes0,
                )
            )

        return pre, post

    for m in model.modules():
        if not any(True for _ in m.children()):
            handles.append(m.register_forward_hook(leaf_hook))
    for name, stage in _stages(model):
        pre, post = stage_hooks(name, stage)
        handles.append(stage.register_forward_pre_hook(pre))
        handles.append(stage.register_forward_hook(post))

    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), mode:
            mode.watch(x)
            out = model(x)
            y = _first_tensor(out)
            field = mode.field(y) if y is not None else None
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    if y is None:
        raise ValueError(f"{type(model).__name__} returned no tensor")
    return ModelAnalysis(
        input_shape=shape,
        output_shape=tuple(y.shape),
        parameters=count_parameters(model),
        trainable_parameters=count_parameters(model, trainable_only=True),
        macs=totals["macs"],
        activation_bytes=totals["bytes"],
        receptive_field=field or ReceptiveField(None),  # None: global
        stages=tuple(records),
    )
