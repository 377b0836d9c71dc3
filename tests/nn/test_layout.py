"""Channels-last conversion: the layout-keeping instance norm against PyTorch's own."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from volseg.nn import create_model
from volseg.nn.layout import InstanceNorm3d, to_channels_last

CL = torch.channels_last_3d


def _input(channels: int = 12, shape: tuple[int, ...] = (6, 7, 5)) -> torch.Tensor:
    torch.manual_seed(0)
    return (torch.randn(3, channels, *shape) * 4.0 + 2.0).contiguous(memory_format=CL)


@pytest.mark.parametrize("affine", [False, True])
def test_instance_norm_matches_pytorch_and_stays_channels_last(affine: bool) -> None:
    reference = nn.InstanceNorm3d(12, affine=affine)
    if affine:
        with torch.no_grad():
            reference.weight.uniform_(0.5, 1.5)
            reference.bias.uniform_(-1.0, 1.0)
    fast = InstanceNorm3d(12, affine=affine)
    fast.load_state_dict(reference.state_dict())
    x = _input()
    with torch.no_grad():
        out = fast(x)
    assert out.is_contiguous(memory_format=CL)
    torch.testing.assert_close(out, reference(x), rtol=0, atol=1e-5)


def test_instance_norm_gradients_match_pytorch() -> None:
    reference = nn.InstanceNorm3d(12, affine=True).double()
    with torch.no_grad():
        reference.weight.uniform_(0.5, 1.5)
    fast = InstanceNorm3d(12, affine=True).double()
    fast.load_state_dict(reference.state_dict())
    x = _input().double().requires_grad_()
    x_ref = x.detach().clone().requires_grad_()
    upstream = torch.randn(x.shape, dtype=torch.float64)
    (fast(x) * upstream).sum().backward()
    (reference(x_ref) * upstream).sum().backward()
    assert x.grad is not None and x_ref.grad is not None
    torch.testing.assert_close(x.grad, x_ref.grad)
    torch.testing.assert_close(fast.weight.grad, reference.weight.grad)
    torch.testing.assert_close(fast.bias.grad, reference.bias.grad)


@pytest.mark.parametrize(
    "x",
    [
        _input().contiguous(),  # default layout
        _input(channels=2),  # too few channels to gain
        _input().to(torch.bfloat16),  # reduced precision: PyTorch keeps float32 statistics
    ],
    ids=["default-layout", "few-channels", "bfloat16"],
)
def test_instance_norm_falls_back_to_pytorch(x: torch.Tensor) -> None:
    channels = x.shape[1]
    with torch.no_grad():
        assert torch.equal(InstanceNorm3d(channels)(x), nn.InstanceNorm3d(channels)(x))


def test_to_channels_last_keeps_parameters_and_outputs() -> None:
    torch.manual_seed(0)
    net = create_model("vnet", base_channels=8, kernel_size=3, norm="instance").eval()
    original = copy.deepcopy(net)
    weights = {name: p for name, p in net.named_parameters()}
    keys = list(net.state_dict())
    running = nn.InstanceNorm3d(8, track_running_stats=True)
    holder = nn.Sequential(net, running)

    to_channels_last(holder)

    assert list(net.state_dict()) == keys
    assert all(p is weights[name] for name, p in net.named_parameters())
    swapped = [m for m in net.modules() if isinstance(m, nn.InstanceNorm3d)]
    assert swapped and all(type(m) is InstanceNorm3d for m in swapped)
    assert type(holder[1]) is nn.InstanceNorm3d  # running statistics: left as it was
    x = torch.randn(2, 1, 32, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(net(x), original(x), rtol=1e-5, atol=1e-5)
