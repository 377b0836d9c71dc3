"""Shared blocks: known answers by hand (zeroed weights, closed-form inits, commuting maps)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from volseg.nn.blocks import (
    ConvNormAct,
    Downsample,
    ResidualBlock,
    SkipMerge,
    SqueezeExcitation,
    Upsample,
    check_input,
    glorot_normal_,
    he_normal_,
    init_he,
)


def _zero_convs(block: nn.Module) -> None:
    for p in block.convs.parameters():  # type: ignore[union-attr]
        nn.init.zeros_(p)


@pytest.mark.parametrize("dims", [2, 3])
def test_nac_order_normalises_the_input_channels(dims: int) -> None:
    layer = ConvNormAct(dims, 4, 6, 3, norm="group", act="relu", groups=2, order="nac")
    assert layer.norm.num_channels == 4 and layer.conv.bias is not None
    x = torch.randn(2, 4, *(5,) * dims)
    expected = layer.conv(torch.relu(F.group_norm(x, 2, layer.norm.weight, layer.norm.bias)))
    torch.testing.assert_close(layer(x), expected)


def test_nac_without_norm_leaves_its_input_alone() -> None:
    layer = ConvNormAct(2, 3, 3, 3, norm="none", act="relu", order="nac")
    x = torch.randn(1, 3, 4, 4)
    before = x.clone()
    layer(x)
    torch.testing.assert_close(x, before)


def test_residual_block_with_zero_convs_is_its_skip() -> None:
    x = torch.randn(2, 4, 6, 6)
    v1 = ResidualBlock(2, 4, 4, norm="batch", order="cna").eval()
    v2 = ResidualBlock(2, 4, 4, norm="batch", order="nac").eval()
    _zero_convs(v1)
    _zero_convs(v2)
    torch.testing.assert_close(v1(x), torch.relu(x))  # ResNet v1: act after the add
    torch.testing.assert_close(v2(x), x)  # pre-activation: the sum is the output


def test_residual_block_projection_and_stride() -> None:
    block = ResidualBlock(3, 4, 8, stride=2, norm="group", groups=4)
    assert isinstance(block.shortcut, nn.Sequential)
    proj = block.shortcut[0]
    assert proj.kernel_size == (1, 1, 1) and proj.stride == (2, 2, 2)
    assert block(torch.randn(1, 4, 8, 6, 4)).shape == (1, 8, 4, 3, 2)


def test_bottleneck_block() -> None:
    block = ResidualBlock(2, 16, 16, (1, 3, 1), stride=2, order="nac", mid_channels=4)
    kernels = [layer.conv.kernel_size for layer in block.convs]
    strides = [layer.conv.stride for layer in block.convs]
    assert kernels == [(1, 1), (3, 3), (1, 1)] and strides == [(1, 1), (2, 2), (1, 1)]
    assert [layer.conv.out_channels for layer in block.convs] == [4, 4, 16]
    assert block(torch.randn(1, 16, 8, 8)).shape == (1, 16, 4, 4)
    plain = ResidualBlock(2, 16, 16, (1, 3, 1), residual=False)
    assert plain.shortcut is None


def test_squeeze_excitation_known_gate() -> None:
    se = SqueezeExcitation(8, ratio=4)
    assert se.reduce.out_features == 2
    nn.init.zeros_(se.expand.weight)
    nn.init.zeros_(se.expand.bias)
    x = torch.randn(2, 8, 3, 4, 5)
    torch.testing.assert_close(se(x), 0.5 * x)  # sigmoid(0) = 1/2
    with torch.no_grad():
        se.expand.bias.copy_(torch.arange(8.0))
    gate = torch.sigmoid(torch.arange(8.0)).reshape(1, 8, 1, 1, 1)
    torch.testing.assert_close(se(x), gate * x)


def test_residual_block_se_scales_the_residual_only() -> None:
    block = ResidualBlock(2, 4, 4, norm="none", order="nac", se_ratio=2)
    assert block.se is not None
    nn.init.zeros_(block.se.expand.weight)
    nn.init.constant_(block.se.expand.bias, -100.0)  # gate ~ 0: only the identity is left
    x = torch.randn(1, 4, 5, 5)
    torch.testing.assert_close(block(x), x)


@pytest.mark.parametrize("dims", [2, 3])
def test_downsample_modes(dims: int) -> None:
    x = torch.randn(1, 4, *(8,) * dims)
    strided = Downsample(dims, 4, 8, "conv")
    assert strided(x).shape == (1, 8, *(4,) * dims)
    pool = Downsample(dims, 4, 4, "maxpool")
    assert pool.conv is None
    ref = F.max_pool3d(x, 2) if dims == 3 else F.max_pool2d(x, 2)
    torch.testing.assert_close(pool(x), ref)
    assert Downsample(dims, 4, 8, "maxpool")(x).shape == (1, 8, *(4,) * dims)
    with pytest.raises(ValueError, match="downsampling"):
        Downsample(dims, 4, 8, "avgpool")


@pytest.mark.parametrize("dims", [2, 3])
@pytest.mark.parametrize("mode", ["linear", "nearest"])
def test_upsample_conv_commutes_with_interpolation(dims: int, mode: str) -> None:
    up = Upsample(dims, 6, 3, mode)
    x = torch.randn(2, 6, *(4, 5, 3)[:dims])
    interp = {"linear": "trilinear" if dims == 3 else "bilinear", "nearest": "nearest"}[mode]
    kwargs = {"align_corners": False} if mode == "linear" else {}
    upsampled = F.interpolate(x, scale_factor=2.0, mode=interp, **kwargs)
    assert up.conv is not None
    torch.testing.assert_close(up(x), up.conv(upsampled), rtol=1e-5, atol=1e-5)


def test_upsample_transposed() -> None:
    up = Upsample(3, 8, 4, "transposed")
    assert isinstance(up.conv, nn.ConvTranspose3d)
    assert up(torch.randn(1, 8, 2, 3, 4)).shape == (1, 4, 4, 6, 8)


def test_skip_merge() -> None:
    a, b = torch.randn(1, 3, 4, 4), torch.randn(1, 3, 4, 4)
    cat, add = SkipMerge("cat"), SkipMerge("sum")
    torch.testing.assert_close(cat(a, b), torch.cat((a, b), 1))
    torch.testing.assert_close(add(a, b), a + b)
    assert cat.out_channels(3, 5) == 8 and add.out_channels(3, 3) == 3
    with pytest.raises(ValueError, match="skip merge"):
        SkipMerge("max")


def test_he_and_glorot_normal_std() -> None:
    torch.manual_seed(0)
    w = torch.empty(64, 32, 3, 3, 3)
    he_normal_(w, "relu")
    assert abs(w.std().item() / (2 / (32 * 27)) ** 0.5 - 1) < 0.02
    he_normal_(w, "prelu")  # gain 2 / (1 + 0.25^2)
    assert abs(w.std().item() / (2 / 1.0625 / (32 * 27)) ** 0.5 - 1) < 0.02
    glorot_normal_(w)
    assert abs(w.std().item() / (2 / (32 * 27 + 64 * 27)) ** 0.5 - 1) < 0.02


def test_init_he_keeps_the_squeeze_excitation_gate_glorot() -> None:
    """The gate feeds a sigmoid: Glorot-normal; the squeeze feeds a ReLU: He-normal."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(256, 256, 1), SqueezeExcitation(256, ratio=16))
    init_he(net, "relu")
    se = net[1]
    assert abs(se.expand.weight.std().item() / (2 / (16 + 256)) ** 0.5 - 1) < 0.1  # 0.086
    assert abs(se.reduce.weight.std().item() / (2 / 256) ** 0.5 - 1) < 0.1
    assert abs(net[0].weight.std().item() / (2 / 256) ** 0.5 - 1) < 0.1


def test_check_input_messages() -> None:
    check_input(torch.zeros(1, 2, 8, 16), "Net", 2, 2, 8)
    with pytest.raises(ValueError, match=r"Net needs .* divisible by 8; got \(8, 12\) .*16"):
        check_input(torch.zeros(1, 2, 8, 12), "Net", 2, 2, 8)
    with pytest.raises(ValueError, match="expects"):
        check_input(torch.zeros(1, 2, 8, 8, 8), "Net", 2, 2, 8)
