"""Channels-last conversion: the layout-keeping instance norms against PyTorch's own."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from volseg.nn import create_model
from volseg.nn.layout import InstanceNorm2d, InstanceNorm3d, to_channels_last

LAYOUT = {2: torch.channels_last, 3: torch.channels_last_3d}
OURS = {2: InstanceNorm2d, 3: InstanceNorm3d}
PYTORCH = {2: nn.InstanceNorm2d, 3: nn.InstanceNorm3d}


def _input(dims: int, channels: int = 12) -> torch.Tensor:
    torch.manual_seed(0)
    x = torch.randn(3, channels, *(6, 7, 5)[:dims]) * 4.0 + 2.0
    return x.contiguous(memory_format=LAYOUT[dims])


@pytest.mark.parametrize("dims", [2, 3])
@pytest.mark.parametrize("affine", [False, True])
def test_instance_norm_matches_pytorch_and_stays_channels_last(dims: int, affine: bool) -> None:
    reference = PYTORCH[dims](12, affine=affine)
    if affine:
        with torch.no_grad():
            reference.weight.uniform_(0.5, 1.5)
            reference.bias.uniform_(-1.0, 1.0)
    fast = OURS[dims](12, affine=affine)
    fast.load_state_dict(reference.state_dict())
    x = _input(dims)
    with torch.no_grad():
        out = fast(x)
    assert out.is_contiguous(memory_format=LAYOUT[dims])
    torch.testing.assert_close(out, reference(x), rtol=0, atol=1e-5)


@pytest.mark.parametrize("dims", [2, 3])
def test_instance_norm_gradients_match_pytorch(dims: int) -> None:
    reference = PYTORCH[dims](12, affine=True).double()
    with torch.no_grad():
        reference.weight.uniform_(0.5, 1.5)
    fast = OURS[dims](12, affine=True).double()
    fast.load_state_dict(reference.state_dict())
    x = _input(dims).double().requires_grad_()
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
        _input(3).contiguous(),  # default layout
        _input(3, channels=2),  # too few channels to gain
        _input(3).to(torch.bfloat16),  # reduced precision: PyTorch keeps float32 statistics
    ],
    ids=["default-layout", "few-channels", "bfloat16"],
)
def test_instance_norm_falls_back_to_pytorch(x: torch.Tensor) -> None:
    channels = x.shape[1]
    with torch.no_grad():
        assert torch.equal(InstanceNorm3d(channels)(x), nn.InstanceNorm3d(channels)(x))


@pytest.mark.parametrize(
    ("dims", "name", "shape"), [(3, "vnet", (32, 32, 32)), (2, "resunet", (64, 64))]
)
def test_to_channels_last_keeps_parameters_and_outputs(
    dims: int, name: str, shape: tuple[int, ...]
) -> None:
    torch.manual_seed(0)
    kwargs = {"base_channels": 8, "kernel_size": 3} if name == "vnet" else {}
    net = create_model(name, spatial_dims=dims, norm="instance", **kwargs).eval()
    original = copy.deepcopy(net)
    weights = dict(net.named_parameters())
    keys = list(net.state_dict())
    running = PYTORCH[dims](8, track_running_stats=True)
    holder = nn.Sequential(net, running)

    to_channels_last(holder)

    assert list(net.state_dict()) == keys
    assert all(p is weights[n] for n, p in net.named_parameters())
    # strides as Module.to(memory_format) sets them, also where the layouts coincide (1 input
    # channel, 1x1x1 kernels): oneDNN picks its format from the strides
    plain = copy.deepcopy(original).to(memory_format=LAYOUT[dims])  # type: ignore[call-overload]
    assert [p.stride() for p in net.parameters()] == [p.stride() for p in plain.parameters()]
    swapped = [m for m in net.modules() if isinstance(m, PYTORCH[dims])]
    assert swapped and all(type(m) is OURS[dims] for m in swapped)
    assert type(holder[1]) is PYTORCH[dims]  # running statistics: left as it was
    x = torch.randn(2, net.in_channels, *shape)
    with torch.no_grad():
        out, expected = net(x), original(x)
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5 * float(expected.abs().max()))
