"""ResVolNet's ``residual`` switch: the same net with and without the units' identity skips."""

from __future__ import annotations

import torch
from torch import nn

from volseg.nn.blocks import ResidualBlock, SkipMerge
from volseg.nn.resvolnet import ResVolNet

TINY = {"channels": (4, 8, 8), "units": 2, "in_channels": 2, "out_channels": 3}


def _pair() -> tuple[ResVolNet, ResVolNet]:
    torch.manual_seed(0)
    residual = ResVolNet(**TINY)  # type: ignore[arg-type]
    torch.manual_seed(0)
    plain = ResVolNet(**TINY, residual=False)  # type: ignore[arg-type]
    return residual, plain


def _units(net: nn.Module) -> list[ResidualBlock]:
    return [m for m in net.modules() if isinstance(m, ResidualBlock)]


def test_plain_net_has_the_same_layers_and_outputs() -> None:
    residual, plain = _pair()
    assert residual.residual and not plain.residual
    count = sum(p.numel() for p in residual.parameters())
    assert count == sum(p.numel() for p in plain.parameters())  # identity skips have none
    assert [n for n, _ in residual.named_parameters()] == [n for n, _ in plain.named_parameters()]
    assert len(_units(residual)) == len(_units(plain)) == 2 * (3 + 2)
    assert all(isinstance(u.shortcut, nn.Identity) for u in _units(residual))
    assert all(u.shortcut is None for u in _units(plain))
    # the long skips are summed in both (the paper's junctions are not residual units)
    assert [m.mode for m in plain.modules() if isinstance(m, SkipMerge)] == ["sum", "sum"]
    for dims, size in ((3, (8, 16, 8)), (2, (16, 8))):
        for flag in (True, False):
            net = ResVolNet(spatial_dims=dims, residual=flag, **TINY)  # type: ignore[arg-type]
            assert net(torch.randn(2, 2, *size)).shape == (2, 3, *size)
    x = torch.randn(1, 2, 8, 16, 8)
    with torch.no_grad():  # same init, different graph: different outputs
        assert not torch.allclose(residual.eval()(x), plain.eval()(x))


def test_plain_unit_is_its_conv_path_alone() -> None:
    residual, plain = _pair()
    unit, res_unit = plain.encoder[1][0], residual.encoder[1][0]
    x = torch.randn(2, 8, 4, 4, 4)
    with torch.no_grad():
        plain.eval()
        torch.testing.assert_close(unit(x), unit.act(unit.convs(x)))  # conv-BN-ReLU, conv-BN, ReLU
        for u in (unit, res_unit):
            for p in u.convs.parameters():
                nn.init.zeros_(p)
        torch.testing.assert_close(unit(x), torch.zeros_like(x))  # not the input
        torch.testing.assert_close(res_unit.eval()(x), torch.relu(x))  # the identity skip
