"""Model analysis: receptive fields against closed forms and against input gradients; FLOPs
against closed forms and torch's own FlopCounterMode; activation bytes and parameters by hand."""

from __future__ import annotations

import copy
from fractions import Fraction
from typing import Any

import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from volseg.nn import check_network, create_model, list_models
from volseg.nn.analysis import analyze_model, count_parameters, format_analysis


def empirical_interval(
    model: nn.Module, input_size: tuple[int, ...], in_channels: int, index: tuple[int, ...]
) -> tuple[tuple[int, int], ...]:
    """Bounding box of the input voxels with a non-zero gradient of output voxel ``index``.

    All weights are positive constants, biases and norm parameters 0.5 and the input is ones, so
    every pre-activation is positive and no gradient cancels or is cut by a ReLU: the non-zero
    gradient is exactly the set of input voxels the output voxel depends on.
    """
    model = copy.deepcopy(model).double().eval()
    with torch.no_grad():
        for p in model.parameters():
            p.fill_(1.0 / p[0].numel() if p.ndim >= 2 else 0.5)
    x = torch.ones(1, in_channels, *input_size, dtype=torch.float64, requires_grad=True)
    y = model(x)
    y[(0, 0, *index)].backward()
    assert x.grad is not None
    hit = (x.grad[0] != 0).any(0).nonzero()
    return tuple((int(hit[:, d].min()), int(hit[:, d].max())) for d in range(len(input_size)))


def check_against_gradient(
    model: nn.Module, input_size: tuple[int, ...], in_channels: int = 1, offsets: int = 2
) -> None:
    """Theory == gradient extent for the centre output voxel and ``offsets - 1`` neighbours
    (neighbours sit at other positions modulo the net's strides, so their boxes differ)."""
    field = analyze_model(model, input_size, in_channels).receptive_field
    for k in range(offsets):
        index = tuple(s // 2 + k for s in input_size)
        theory = field.interval(index)
        for (lo, hi), size in zip(theory, input_size):  # type: ignore[misc]
            assert lo >= 0 and hi < size, "input too small for the test to see the whole field"
        assert empirical_interval(model, input_size, in_channels, index) == theory


# ---------------------------------------------------------------- closed forms, hand-built nets


def rf(model: nn.Module, size: tuple[int, ...], in_channels: int = 1) -> tuple[int, ...] | None:
    return analyze_model(model, size, in_channels).receptive_field.size


def test_closed_forms() -> None:
    c = nn.Conv2d
    assert rf(c(1, 1, 3, padding=1), (16, 16)) == (3, 3)
    assert rf(nn.Sequential(c(1, 1, 3, padding=1), c(1, 1, 3, padding=1)), (16, 16)) == (5, 5)
    # stride 2 then k=3: 3 + (3 - 1) * 2 = 7; jump 2
    net = nn.Sequential(c(1, 1, 3, stride=2, padding=1), c(1, 1, 3, padding=1))
    field = analyze_model(net, (16, 16), 1).receptive_field
    assert field.size == (7, 7) and field.jump == (Fraction(2), Fraction(2))
    # dilation 2: (3 - 1) * 2 + 1 = 5; anisotropic kernel per axis
    assert rf(c(1, 1, 3, padding=2, dilation=2), (16, 16)) == (5, 5)
    assert rf(c(1, 1, (1, 5), padding=(0, 2)), (16, 16)) == (1, 5)
    # max-pool 2: 2, jump 2; a 2/2 transposed conv back adds nothing and restores jump 1
    pool = nn.Sequential(nn.MaxPool2d(2), nn.ConvTranspose2d(1, 1, 2, stride=2))
    field = analyze_model(pool, (16, 16), 1).receptive_field
    assert field.size == (2, 2) and field.jump == (Fraction(1), Fraction(1))
    # a spatial mean (squeeze-excitation style) is global
    assert rf(nn.AdaptiveAvgPool2d(1), (16, 16)) is None


def test_half_voxel_positions_after_upsampling() -> None:
    # k=2/s=2 conv then 2x nearest up-sampling: voxel 2m and 2m+1 both see input [2m, 2m+1]
    net = nn.Sequential(nn.Conv1d(1, 1, 2, stride=2), nn.Upsample(scale_factor=2))
    field = analyze_model(net, (16,), 1).receptive_field
    assert [field.interval((i,)) for i in range(4)] == [((0, 1),), ((0, 1),), ((2, 3),), ((2, 3),)]


class HandNet(nn.Module):
    """Every kind of operation the propagation handles, with merges of unequal paths."""

    def __init__(self) -> None:
        super().__init__()
        self.in_channels = 1
        self.a = nn.Conv2d(1, 2, 3, stride=2, padding=1)
        self.b = nn.Conv2d(2, 2, 3, padding=2, dilation=2)
        self.c = nn.AvgPool2d(3, stride=2, padding=1)
        self.d = nn.Upsample(scale_factor=2, mode="bilinear")
        self.e = nn.ConvTranspose2d(2, 2, 3, stride=2, padding=1, output_padding=1)
        self.f = nn.Conv2d(4, 1, (1, 3), padding=(0, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.a(x)  # 1/2
        deep = self.d(self.c(torch.relu(self.b(h))))  # 1/4 then back to 1/2
        merged = torch.cat((deep, h), dim=1)[:, :2] + h  # slice channels, sum
        up = self.e(merged)  # 1/1, overlapping transposed conv
        up = nn.functional.pad(up, (1, 1, 2, 0))[:, :, 1:-1, 1:-1]  # pad then crop
        up = torch.cat((up, nn.functional.interpolate(h, scale_factor=2)), dim=1)
        return self.f(up)


def test_hand_built_net_against_gradient() -> None:
    check_against_gradient(HandNet(), (48, 48), offsets=4)


# ---------------------------------------------------------------- the registered nets

# name -> small configs of that registered net, each with an input size its field fits in
SMALL: dict[str, list[tuple[dict[str, Any], tuple[int, ...]]]] = {
    "vnet": [
        ({"spatial_dims": 2, "base_channels": 2, "convs_per_stage": (1, 2, 3)}, (112, 112)),
        (
            {"spatial_dims": 3, "base_channels": 2, "convs_per_stage": (1, 1, 1), "kernel_size": 3},
            (32, 32, 32),
        ),
    ],
    "resvolnet": [({"spatial_dims": 2, "channels": (2, 4, 8), "units": 1}, (64, 64))],
    "resunet": [({"spatial_dims": 2, "channels": (2, 4, 8), "downsample": "conv"}, (64, 64))],
    "fcresnet": [
        (
            {
                "spatial_dims": 2,
                "stem_channels": 4,
                "widths": (4, 8, 8),
                "repeats": (1, 1, 1),
                "block_types": ("basic", "bottleneck", "basic"),
            },
            (96, 96),
        )
    ],
    "segresnet_vae": [
        (
            {
                "spatial_dims": 2,
                "in_channels": 1,
                "init_filters": 4,
                "blocks_down": (1, 1, 1),
                "blocks_up": (1, 1),
                "norm": "batch",  # group norm couples all voxels: the gradient would be global
                "vae": False,
            },
            (64, 64),
        )
    ],
}
RF_CASES = [
    pytest.param(name, kwargs, size, id=f"{name}-{len(size)}d")
    for name in list_models()
    for kwargs, size in SMALL.get(name, [])
]


def test_every_registered_net_has_a_small_config() -> None:
    assert set(SMALL) == set(list_models())


@pytest.mark.parametrize(("name", "kwargs", "size"), RF_CASES)
def test_receptive_field_equals_gradient_extent(
    name: str, kwargs: dict[str, Any], size: tuple[int, ...]
) -> None:
    model = create_model(name, **kwargs)
    check_against_gradient(model, size, check_network(model).in_channels)


def test_vnet_paper_table() -> None:
    # Encoder stages agree with Milletari et al.'s Table 1 (5, 22, 72, 172, 372); the decoder
    # differs because a 2^3/stride-2 transposed conv adds nothing (see docs/analysis.md).
    a = analyze_model(create_model("vnet"), (128, 128, 64))
    size = {s.name: s.receptive_field.size for s in a.stages}
    assert [
        size[k] for k in ("input_stage", "encoder.0", "encoder.1", "encoder.2", "encoder.3")
    ] == [(r, r, r) for r in (5, 22, 72, 172, 372)]
    assert [size[f"decoder.{i}"] for i in range(4)] == [(r, r, r) for r in (468, 516, 532, 548)]
    assert a.receptive_field.min_size == (532, 532, 532)
    assert a.parameters == 65_175_314  # the figure pinned in tests/nn/test_vnet.py
    assert a.output_shape == (1, 2, 128, 128, 64)


# ---------------------------------------------------------------- FLOPs, memory, parameters


def test_macs_closed_forms() -> None:
    conv = nn.Conv3d(2, 4, 3, padding=1)
    assert analyze_model(conv, (8, 8, 8), 2).macs == 4 * 8**3 * 2 * 27
    grouped = nn.Conv2d(4, 6, 3, padding=1, groups=2)
    assert analyze_model(grouped, (5, 5), 4).macs == 6 * 25 * 2 * 9
    # transposed: every input element times out_channels kernels of 2^3 taps
    up = nn.ConvTranspose3d(4, 2, 2, stride=2)
    assert analyze_model(up, (4, 4, 4), 4, batch_size=3).macs == 3 * 4 * 64 * 2 * 8
    a = analyze_model(nn.Linear(7, 5), (7,), 10)  # acts on the last axis: (1, 10, 7) -> (1, 10, 5)
    assert a.macs == 10 * 5 * 7 and a.flops == 2 * a.macs


@pytest.mark.parametrize("name", list_models())
def test_flops_equal_torch_flop_counter(name: str) -> None:
    kwargs = SMALL[name][0][0]
    model = create_model(name, **kwargs).eval()
    size = (32, 32, 32) if kwargs.get("spatial_dims", 3) == 3 else (64, 64)
    channels = check_network(model).in_channels
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        model(torch.zeros(1, channels, *size))
    assert analyze_model(model, size).flops == counter.get_total_flops()


def test_activation_bytes_by_hand() -> None:
    net = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.ReLU(inplace=True))
    net.in_channels = 1  # type: ignore[assignment]
    a = analyze_model(net, (8, 8), batch_size=2)
    # conv output and the out-of-place ReLU's: 2 x 4 x 8 x 8 float32 each; in-place adds none
    assert a.activation_bytes == 2 * (2 * 4 * 64 * 4)
    assert [s.name for s in a.stages] == ["0", "1", "2"]
    assert [s.activation_bytes for s in a.stages] == [2048, 2048, 0]


def test_parameters_and_modes() -> None:
    shared = nn.Conv2d(1, 1, 3, padding=1)
    net = nn.Sequential(shared, shared, nn.BatchNorm2d(1))
    net[2].weight.requires_grad_(False)
    assert count_parameters(net) == 10 + 2
    assert count_parameters(net, trainable_only=True) == 10 + 1
    net.train()
    a = analyze_model(net, (6, 6), 1)
    assert net.training  # mode restored
    assert [s.name for s in a.stages] == ["0", "0#2", "2"]  # one module, run twice
    assert a.parameters == 12


def test_errors_and_table() -> None:
    with pytest.raises(ValueError, match="in_channels"):
        analyze_model(nn.Sequential(nn.Conv2d(1, 1, 3)), (8, 8))
    with pytest.raises(ValueError, match="global"):
        analyze_model(nn.AdaptiveAvgPool2d(1), (8, 8), 1).receptive_field.interval((0, 0))
    text = format_analysis(analyze_model(create_model("vnet", base_channels=2), (32, 32, 32)))
    assert "1 MAC = 2 FLOPs" in text and "encoder.3" in text and "receptive field" in text


def test_cli_info(capsys: pytest.CaptureFixture[str]) -> None:
    from volseg.cli import main

    args = ["info", "vnet", "--input-size", "32", "32", "--kwargs", "base_channels=2"]
    assert main([*args, "convs_per_stage=[1, 1, 1]"]) == 0
    out = capsys.readouterr().out
    assert "input 1x1x32x32" in out and "encoder.1" in out and "encoder.2" not in out
    assert main(["info", "vnet", "--input-size", "32", "32", "--kwargs", "nope"]) == 2
    assert "expected key=value" in capsys.readouterr().err
