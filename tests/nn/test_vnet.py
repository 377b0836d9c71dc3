"""V-Net (Milletari et al. 2016): shapes in 3D and 2D, paper-size parameter count, gradients."""

from __future__ import annotations

import pytest
import torch

from volseg.nn import MODELS, create_model, list_models
from volseg.nn.blocks import ConvNormAct, activation, conv, conv_transpose, norm
from volseg.nn.vnet import VNet, _add_tiled

# Paper size: in 1, out 2, channels 16-32-64-128-256, 5^3 kernels, encoder convs 1,2,3,3,3,
# decoder convs 3,3,2,1, conv biases, channel-wise PReLU, no norm. MONAI's VNet (45.6M) differs:
# its encoder has 1,1,2,3,2 convs and its decoder 2,2,1,1 (the vnet.pytorch plan), it adds a
# 5^3 output conv before the 1^3 one and BatchNorm everywhere. Our 3 extra 256-channel 5^3
# convs alone are 3 * 8.19M; the 2 extra convs at 64 and 128 channels add the rest (~19.6M).
PAPER_PARAMETERS = 65_175_314


def n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_registered() -> None:
    assert "vnet" in list_models()
    assert "vnet" in MODELS
    assert isinstance(create_model("vnet", base_channels=2), VNet)


def test_paper_size_parameter_count() -> None:
    model = VNet()
    assert n_params(model) == PAPER_PARAMETERS
    assert VNet.divisor == 16 and model.divisor == 16
    # channels 16-32-64-128-256 in the encoder, 256-128-64-32 in the decoder (Fig. 2)
    assert [s.act.num_parameters for s in [model.input_stage, *model.encoder]] == [
        16,
        32,
        64,
        128,
        256,
    ]
    assert [s.act.num_parameters for s in model.decoder] == [256, 128, 64, 32]
    assert [len(s.convs) for s in [model.input_stage, *model.encoder]] == [1, 2, 3, 3, 3]
    assert [len(s.convs) for s in model.decoder] == [3, 3, 2, 1]
    assert tuple(model.input_stage.convs[0].conv.kernel_size) == (5, 5, 5)


def test_output_shape_3d() -> None:
    model = VNet(base_channels=4)
    x = torch.randn(1, 1, 32, 32, 32)
    with torch.no_grad():
        y = model(x)
    assert y.shape == (1, 2, 32, 32, 32)
    assert torch.isfinite(y).all()


def test_output_shape_2d_anisotropic_size() -> None:
    model = VNet(spatial_dims=2, base_channels=4, out_channels=3)
    with torch.no_grad():
        y = model(torch.randn(2, 1, 32, 48))
    assert y.shape == (2, 3, 32, 48)


@pytest.mark.parametrize("norm_name", ["batch", "group", "instance"])
def test_norm_options(norm_name: str) -> None:
    model = VNet(spatial_dims=2, base_channels=8, norm=norm_name, dropout=0.1)
    y = model(torch.randn(2, 1, 32, 32))  # instance norm needs > 1 voxel at the bottom
    assert y.shape == (2, 2, 32, 32)


def test_forward_backward() -> None:
    model = VNet(base_channels=4, norm="group")
    x = torch.randn(2, 1, 16, 16, 32)
    y = model(x)
    y.logsumexp(1).mean().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name


@pytest.mark.parametrize("in_channels", [2, 3])
def test_multichannel_input(in_channels: int) -> None:
    model = VNet(in_channels=in_channels, base_channels=4, spatial_dims=2)
    assert (model.input_proj is None) == (4 % in_channels == 0)
    assert model(torch.randn(1, in_channels, 16, 16)).shape == (1, 2, 16, 16)


@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
def test_add_tiled_matches_repeat(layout: torch.memory_format) -> None:
    out = torch.randn(2, 8, 3, 4).contiguous(memory_format=layout)
    for x in (torch.randn(2, 2, 3, 4), torch.randn(2, 1, 3, 4), torch.randn(2, 8, 3, 4)):
        expected = out + x.repeat(1, 8 // x.shape[1], 1, 1)
        torch.testing.assert_close(_add_tiled(out, x), expected)
        with torch.no_grad():  # without autograd the sum is written into ``out``
            target = out.clone()
            result = _add_tiled(target, x)
        torch.testing.assert_close(result, expected)
        torch.testing.assert_close(target, expected)


def test_non_divisible_size_raises() -> None:
    model = VNet(base_channels=2)
    with pytest.raises(ValueError, match=r"\(32, 30, 32\)"):
        model(torch.randn(1, 1, 32, 30, 32))
    with pytest.raises(ValueError, match="expects"):
        model(torch.randn(1, 2, 32, 32, 32))


def test_invalid_arguments() -> None:
    with pytest.raises(ValueError):
        VNet(kernel_size=4)
    with pytest.raises(ValueError):
        VNet(spatial_dims=1)
    with pytest.raises(ValueError):
        VNet(convs_per_stage=(1, 2, 3), decoder_convs=(1,))


def test_fewer_stages_changes_divisor() -> None:
    model = VNet(spatial_dims=2, base_channels=4, convs_per_stage=(1, 2, 2))
    assert model.divisor == 4
    assert model(torch.randn(1, 1, 12, 8)).shape == (1, 2, 12, 8)


def test_blocks_2d_and_3d() -> None:
    assert isinstance(conv(2, 1, 4, 3), torch.nn.Conv2d)
    c3 = conv(3, 1, 4, 5)
    assert isinstance(c3, torch.nn.Conv3d) and c3.padding == (2, 2, 2)
    down = conv(3, 4, 8, 2, stride=2)
    assert down(torch.randn(1, 4, 8, 8, 8)).shape == (1, 8, 4, 4, 4)
    up = conv_transpose(2, 8, 4)
    assert up(torch.randn(1, 8, 5, 6)).shape == (1, 4, 10, 12)
    assert isinstance(norm("group", 3, 16), torch.nn.GroupNorm)
    assert isinstance(norm("none", 3, 16), torch.nn.Identity)
    assert isinstance(activation("prelu", 7), torch.nn.PReLU)
    block = ConvNormAct(3, 2, 4, 3, norm="batch", act="leakyrelu")
    assert block.conv.bias is None
    assert block(torch.randn(2, 2, 6, 6, 6)).shape == (2, 4, 6, 6, 6)
    with pytest.raises(ValueError):
        norm("layer", 3, 4)
    with pytest.raises(ValueError):
        activation("gelu", 4)
