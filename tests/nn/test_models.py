"""Every registered net, default and each switch, 2D and 3D, tiny: shapes, gradients, errors.

Also: the ablation switches of ``fcresnet`` and ``segresnet_vae`` change the module graph as
their names say.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

import volseg
from volseg.nn import Network, blocks, check_network, create_model, list_models
from volseg.nn.blocks import ConvNormAct, ResidualBlock, SkipMerge, SqueezeExcitation
from volseg.nn.fcresnet import FCResNet
from volseg.nn.segresnet_vae import SegResNetVAE, VAEOutput

# name -> tiny keyword arguments (spatial_dims, channels are added per case)
TINY: dict[str, dict[str, Any]] = {
    "vnet": {"base_channels": 2, "kernel_size": 3, "convs_per_stage": (1, 2, 1)},
    "resvolnet": {"channels": (4, 8, 8), "units": 1},
    "resunet": {"channels": (4, 8, 8)},
    "fcresnet": {
        "stem_channels": 4,
        "widths": (4, 8, 16),
        "repeats": (1, 2, 1),
        "block_types": ("basic", "bottleneck", "bottleneck"),
    },
    "segresnet_vae": {"init_filters": 4, "blocks_down": (1, 2, 1), "blocks_up": (1, 1)},
}

# name -> the switches to try one at a time (the default is tried too)
SWITCHES: dict[str, list[dict[str, Any]]] = {
    "vnet": [{"norm": "batch"}, {"norm": "group"}, {"activation": "relu"}, {"dropout": 0.1}],
    "resvolnet": [{"norm": "group"}, {"upsample": "linear"}, {"dropout": 0.1}, {"residual": False}],
    "resunet": [
        {"downsample": "conv"},
        {"upsample": "linear"},
        {"upsample": "nearest"},
        {"merge": "sum"},
        {"norm": "instance"},
    ],
    "fcresnet": [
        {"long_skips": False},
        {"short_skips": False},
        {"long_skips": False, "short_skips": False},
        {"upsample": "transposed"},
        {"block_types": ("basic", "basic", "basic")},
    ],
    "segresnet_vae": [
        {"init_filters": 2},
        {"se_ratio": 2},
        {"downsample": "maxpool"},
        {"upsample": "transposed"},
        {"order": "cna"},
        {"norm": "batch"},
        {"vae": False},
        {"init": "torch"},
    ],
}

# the defaults in 2D and 3D; each switch in the dimension of its paper (2D: resunet, fcresnet)
PAPER_DIMS = {"vnet": 3, "resvolnet": 3, "resunet": 2, "fcresnet": 2, "segresnet_vae": 3}
CASES = [
    pytest.param(name, switch, dims, id=f"{name}-{dims}d-" + ",".join(map(str, switch)))
    for name in TINY
    for switch, all_dims in [({}, (2, 3)), *((s, (PAPER_DIMS[name],)) for s in SWITCHES[name])]
    for dims in all_dims
]


def _size(model: nn.Module, dims: int) -> tuple[int, ...]:
    """A small anisotropic size the net accepts (the VAE's size where it has one)."""
    vae_size = getattr(model, "vae_input_size", None)
    if vae_size is not None:
        return tuple(vae_size)
    d = check_network(model).divisor
    return (d, 2 * d, d)[-dims:] if dims == 3 else (2 * d, d)


def _build(name: str, switch: dict[str, Any], dims: int, in_channels: int = 2) -> nn.Module:
    kwargs = {**TINY[name], **switch}
    if name == "segresnet_vae":
        kwargs.setdefault("vae_input_size", (8, 16, 8)[-dims:] if dims == 3 else (16, 8))
    torch.manual_seed(0)
    return create_model(name, spatial_dims=dims, in_channels=in_channels, out_channels=3, **kwargs)


def test_every_registered_net_is_tested() -> None:
    assert set(TINY) == set(list_models())
    assert {"vnet", "resvolnet", "resunet", "fcresnet", "segresnet_vae"} <= set(
        volseg.list_models()
    )


@pytest.mark.parametrize(("name", "switch", "dims"), CASES)
def test_forward_backward_shape(name: str, switch: dict[str, Any], dims: int) -> None:
    model = _build(name, switch, dims)
    assert isinstance(model.divisor, int)
    size = _size(model, dims)
    x = torch.randn(2, 2, *size)
    out = model(x)
    assert isinstance(out, VAEOutput) == (model.output_kind == "vae")
    if isinstance(out, VAEOutput):
        assert out.reconstruction.shape == x.shape
        assert out.mu.shape == out.logvar.shape == (2, 128)
        loss = out.logits.sigmoid().mean() + (out.reconstruction - x).square().mean()
        loss = loss + out.mu.square().mean() + out.logvar.exp().mean()
        logits = out.logits
    else:
        logits = out
        loss = logits.logsumexp(1).mean()
    assert logits.shape == (2, 3, *size)
    loss.backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), pname
    model.eval()
    with torch.no_grad():
        y = model(x[:1])
    assert isinstance(y, torch.Tensor) and y.shape == (1, 3, *size)


@pytest.mark.parametrize("name", list_models())
@pytest.mark.parametrize("dims", [2, 3])
def test_every_net_is_a_network(name: str, dims: int) -> None:
    """The :class:`Network` attributes say what a forward pass does, for every registered net."""
    model = _build(name, {}, dims)
    assert isinstance(model, Network)
    net = check_network(model)
    assert (net.spatial_dims, net.in_channels, net.out_channels) == (dims, 2, 3)
    size = _size(model, dims)
    assert all(s % net.divisor == 0 for s in size)
    x = torch.randn(1, 2, *size)
    out = model.train()(x)
    if net.output_kind == "vae":
        assert isinstance(out, VAEOutput)
        logits = out.logits
    else:
        assert isinstance(out, torch.Tensor)
        logits = out
    assert logits.shape == (1, net.out_channels, *size)
    with torch.no_grad():
        y = model.eval()(x)
    assert isinstance(y, torch.Tensor) and y.shape == (1, net.out_channels, *size)
    for axis in range(dims if net.divisor > 1 else 0):  # a size off the divisor is refused
        bad = list(size)
        bad[axis] += 1
        with pytest.raises(ValueError, match=f"divisible by {net.divisor}"):
            model(torch.randn(1, 2, *bad))


def test_check_network_names_what_is_wrong() -> None:
    with pytest.raises(TypeError, match="Conv2d is not a Network: no spatial_dims, divisor"):
        check_network(nn.Conv2d(1, 1, 3))
    model = _build("resunet", {}, 2)
    model.divisor = 0
    with pytest.raises(TypeError, match="divisor=0"):
        check_network(model)
    assert _build("segresnet_vae", {"vae": False}, 2).output_kind == "logits"


@pytest.mark.parametrize("name", list(TINY))
@pytest.mark.parametrize("dims", [2, 3])
def test_non_divisible_size_is_a_clear_error(name: str, dims: int) -> None:
    model = _build(name, {}, dims).eval()
    size = list(_size(model, dims))
    size[-1] += 1
    with pytest.raises(ValueError, match=f"divisible by {model.divisor}"):
        model(torch.randn(1, 2, *size))
    with pytest.raises(ValueError, match="expects"):
        model(torch.randn(1, 1, *_size(model, dims)))


@pytest.mark.parametrize("name", list(TINY))
def test_every_conv_has_the_bf16_guard(name: str) -> None:
    model = _build(name, {}, 3)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d | nn.Conv3d)]
    assert convs and all(isinstance(m, blocks.Conv2d | blocks.Conv3d) for m in convs)


# each net's paper defaults: (spatial_dims, in_channels, out_channels)
PAPER_DEFAULTS = {
    "vnet": (3, 1, 2),  # one MRI, prostate / background
    "resvolnet": (3, 1, 2),
    "resunet": (2, 5, 2),  # 2D slices of the 5 ISLES 2018 CTP maps
    "fcresnet": (2, 1, 2),  # 2D EM slices, membrane / not
    "segresnet_vae": (3, 4, 3),  # t1, t1ce, t2, flair -> ET, TC, WT
}


@pytest.mark.parametrize("name", list_models())
def test_create_model_keeps_each_nets_own_defaults(name: str) -> None:
    """``create_model(name)`` is the class with its own (paper) defaults; given kwargs win."""
    with torch.device("meta"):  # paper-size nets without allocating their weights
        made = check_network(create_model(name))
        own = check_network(volseg.nn.MODELS.get(name)())
        given = check_network(create_model(name, spatial_dims=2, in_channels=7, out_channels=6))
    assert type(made) is type(own)
    dims = (made.spatial_dims, made.in_channels, made.out_channels)
    assert dims == (own.spatial_dims, own.in_channels, own.out_channels) == PAPER_DEFAULTS[name]
    count = sum(p.numel() for p in made.parameters())  # type: ignore[attr-defined]
    assert count == sum(p.numel() for p in own.parameters())  # type: ignore[attr-defined]
    assert (given.spatial_dims, given.in_channels, given.out_channels) == (2, 7, 6)


def test_create_model_unknown_name() -> None:
    with pytest.raises(KeyError, match="unknown model"):
        create_model("unet3000")


def test_segresnet_vae_training_size_must_match_vae() -> None:
    model = _build("segresnet_vae", {}, 3)
    with pytest.raises(ValueError, match="vae_input_size"):
        model(torch.randn(1, 2, 8, 8, 8))
    model.eval()
    assert model(torch.randn(1, 2, 8, 8, 8)).shape == (1, 3, 8, 8, 8)
    with pytest.raises(ValueError, match="divisible by 16"):  # 3 halvings + the VAE's one
        SegResNetVAE(init_filters=4, vae_input_size=(8, 16, 16))


# --- the switches change the module graph as named ----------------------------------------


def _count(model: nn.Module, cls: type | tuple[type, ...]) -> int:
    return sum(isinstance(m, cls) for m in model.modules())


def _fcresnet(**kw: Any) -> FCResNet:
    net = _build("fcresnet", kw, 2)
    assert isinstance(net, FCResNet)
    return net


def test_fcresnet_long_skips_switch() -> None:
    calls: list[int] = []
    with_long, without = _fcresnet(), _fcresnet(long_skips=False)
    assert _count(with_long, SkipMerge) == 3 and _count(without, SkipMerge) == 0
    for m in with_long.modules():
        if isinstance(m, SkipMerge):
            m.register_forward_hook(lambda *_: calls.append(1))
    with_long(torch.randn(1, 2, 16, 8))
    assert len(calls) == 3  # one sum per resolution of the expanding path
    # the short skips are untouched by the long switch
    assert _count(with_long, ResidualBlock) == _count(without, ResidualBlock)
    assert [type(b.shortcut) for b in with_long.modules() if isinstance(b, ResidualBlock)] == [
        type(b.shortcut) for b in without.modules() if isinstance(b, ResidualBlock)
    ]


def test_fcresnet_short_skips_switch() -> None:
    with_short, without = _fcresnet(), _fcresnet(short_skips=False)
    res = [b for b in with_short.modules() if isinstance(b, ResidualBlock)]
    plain = [b for b in without.modules() if isinstance(b, ResidualBlock)]
    assert len(res) == len(plain) == 2 * (1 + 2) + 1
    assert all(b.shortcut is not None for b in res)
    assert all(b.shortcut is None for b in plain)
    assert _count(with_short, SkipMerge) == _count(without, SkipMerge) == 3
    # with the residual convs zeroed, a block with a short skip passes its input through
    block = res[-1]
    for p in block.convs.parameters():
        nn.init.zeros_(p)
    x = torch.randn(1, block.convs[0].norm.num_features, 4, 4)
    torch.testing.assert_close(block.eval()(x), x)


def test_fcresnet_depth_past_100_layers() -> None:
    net = FCResNet()  # the paper's plan: 47 residual blocks
    assert net.depth > 100
    assert _count(net, ResidualBlock) == 2 * (1 + 3 + 8 + 10) + 3
    deeper = FCResNet(widths=(4, 8), repeats=(30, 30), block_types=("bottleneck", "bottleneck"))
    assert (
        deeper.depth
        > 100
        + FCResNet(widths=(4, 8), repeats=(1, 1), block_types=("bottleneck", "bottleneck")).depth
        - 10
    )


def _vae(**kw: Any) -> SegResNetVAE:
    net = _build("segresnet_vae", kw, 3)
    assert isinstance(net, SegResNetVAE)
    return net


def test_segresnet_vae_half_filters() -> None:
    full, half = _vae(init_filters=8), _vae(init_filters=4)
    assert full.init_conv.out_channels == 8 and half.init_conv.out_channels == 4
    widths = [lvl[0].convs[-1].conv.out_channels for lvl in half.encoder]
    assert widths == [4, 8, 16]


def test_segresnet_vae_squeeze_excitation() -> None:
    plain, se = _vae(), _vae(se_ratio=2)
    blocks_se = [b for b in se.modules() if isinstance(b, ResidualBlock)]
    assert _count(plain, SqueezeExcitation) == 0
    assert all(isinstance(b.se, SqueezeExcitation) for b in blocks_se)
    assert {b.se.reduce.out_features * 2 for b in blocks_se if b.se} == {4, 8, 16}


def test_segresnet_vae_maxpool() -> None:
    conv_down, pool_down = _vae(), _vae(downsample="maxpool")
    assert _count(conv_down, nn.MaxPool3d) == 0 and _count(pool_down, nn.MaxPool3d) == 2
    assert all(d.conv.stride == (2, 2, 2) for d in conv_down.down)
    assert all(
        d.conv.stride == (1, 1, 1) and d.conv.kernel_size == (1, 1, 1) for d in pool_down.down
    )


def test_segresnet_vae_upsampling() -> None:
    linear, transposed = _vae(), _vae(upsample="transposed")
    assert _count(linear, nn.ConvTranspose3d) == 0
    assert _count(transposed, nn.ConvTranspose3d) == 2 + 3  # decoder + VAE branch
    assert {u.mode for u in linear.up} == {"linear"}


def test_segresnet_vae_conv_order() -> None:
    nac, cna = _vae(), _vae(order="cna")
    layer_nac = nac.encoder[0][0].convs[0]
    layer_cna = cna.encoder[0][0].convs[0]
    assert isinstance(layer_nac, ConvNormAct) and layer_nac.order == "nac"
    assert layer_cna.order == "cna"
    x = torch.randn(1, 4, 4, 4, 4)
    with torch.no_grad():
        ref = layer_nac.conv(layer_nac.act(layer_nac.norm(x.clone())))
        torch.testing.assert_close(layer_nac(x), ref)
        ref = layer_cna.act(layer_cna.norm(layer_cna.conv(x)))
        torch.testing.assert_close(layer_cna(x), ref)
    # ResNet v1 has an activation after the add, pre-activation v2 does not
    assert nac.encoder[0][0].act is None and cna.encoder[0][0].act is not None


def test_segresnet_vae_norms() -> None:
    gn, bn = _vae(), _vae(norm="batch")
    assert _count(gn, nn.GroupNorm) > 0 and _count(gn, nn.BatchNorm3d) == 0
    assert _count(bn, nn.BatchNorm3d) == _count(gn, nn.GroupNorm) and _count(bn, nn.GroupNorm) == 0
    assert {
        m.num_groups for m in _vae(init_filters=16).modules() if isinstance(m, nn.GroupNorm)
    } == {8}


def test_segresnet_vae_without_vae() -> None:
    net = _vae(vae=False)
    assert net.vae is None and not any("vae" in n for n, _ in net.named_parameters())
    assert isinstance(net(torch.randn(1, 2, 8, 8, 8)), torch.Tensor)  # any divisible size


def test_segresnet_vae_init() -> None:
    torch.manual_seed(0)
    he = SegResNetVAE(init_filters=16, blocks_down=(1, 1), blocks_up=(1,), vae=False)
    torch.manual_seed(0)
    default = SegResNetVAE(
        init_filters=16, blocks_down=(1, 1), blocks_up=(1,), vae=False, init="torch"
    )
    w_he = he.encoder[1][0].convs[0].conv.weight  # 32 -> 32, 3^3: fan-in 864
    w_default = default.encoder[1][0].convs[0].conv.weight
    assert abs(w_he.std().item() / (2 / 864) ** 0.5 - 1) < 0.05
    assert (
        abs(w_default.std().item() / (1 / (3 * 864)) ** 0.5 - 1) < 0.05
    )  # kaiming_uniform(a=sqrt 5)
    head = he.head.weight  # Glorot before the sigmoid: 2 / (fan_in + fan_out)
    assert abs(head.std().item() / (2 / (16 + 3)) ** 0.5 - 1) < 0.5


def test_segresnet_vae_init_glorot_before_every_sigmoid() -> None:
    """Adeniji et al.: He-normal, Glorot-normal for layers that feed a sigmoid (the region head
    and the squeeze-excitation gates); measured as weight std against each formula."""
    torch.manual_seed(0)
    net = SegResNetVAE(
        init_filters=32, out_channels=64, se_ratio=16, vae_input_size=(16, 16, 16), vae_latent=16
    )
    gates = [b.se.expand for b in net.modules() if isinstance(b, ResidualBlock) and b.se]
    sigmoid_inputs = {id(m) for m in [net.head, *gates]}
    assert len(gates) == 1 + 2 + 2 + 4 + 3 + 3  # encoder, decoder and VAE decoder blocks
    checked = 0
    for m in net.modules():
        if not isinstance(m, nn.Conv3d | nn.Linear):
            continue
        w = m.weight
        fan_in = w.shape[1] * w[0, 0].numel()
        fan_out = w.shape[0] * w[0, 0].numel()
        glorot, he = (2 / (fan_in + fan_out)) ** 0.5, (2 / fan_in) ** 0.5
        expected = glorot if id(m) in sigmoid_inputs else he
        assert abs(w.std().item() / expected - 1) < 0.3, (m, w.std().item(), glorot, he)
        checked += 1
    assert checked > len(sigmoid_inputs)
    # the two formulas differ enough to tell apart at these sizes (He would be 0.35 here)
    deepest = next(g for g in gates if g.out_features == 256)
    assert abs(deepest.weight.std().item() - (2 / (16 + 256)) ** 0.5) < 0.02


# --- one YAML per paper recipe ---------------------------------------------------------------

CONFIGS = sorted((Path(__file__).parents[2] / "configs").glob("*.yaml"))


def test_every_net_has_a_paper_recipe() -> None:
    names = {volseg.load_config(path).model.name for path in CONFIGS}
    assert names == set(list_models())


@pytest.mark.parametrize("path", CONFIGS, ids=[p.stem for p in CONFIGS])
def test_recipe_builds_its_net(path: Path) -> None:
    config = volseg.load_config(path)
    kwargs = dict(config.model.kwargs)
    kwargs.setdefault("in_channels", 1)
    with torch.device("meta"):  # paper-size nets without allocating their weights
        model = create_model(config.model.name, **kwargs)
    net = check_network(model)
    assert len(config.train.patch_size) == net.spatial_dims
    assert all(p % net.divisor == 0 for p in config.train.patch_size)


@pytest.mark.slow
@pytest.mark.parametrize("name", list(TINY))
def test_traces_as_one_graph(name: str) -> None:
    """``torch.compile(fullgraph=True)`` finds no graph break (eager backend: no codegen)."""
    model = _build(name, {}, 3)
    x = torch.randn(2, 2, *_size(model, 3))
    compiled = torch.compile(model, backend="eager", fullgraph=True)
    out = compiled(x)
    expected = model(x)
    first = out[0] if isinstance(out, tuple) else out
    assert first.shape == (expected[0] if isinstance(expected, tuple) else expected).shape
