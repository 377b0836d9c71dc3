"""The fast paths equal the plain ones: B-spline grid and threaded resampling (and ITK),
slab-wise softmax, restore and decode (and the whole-volume Predictor path)."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
import SimpleITK as sitk
import torch
from torch import nn

from volseg import decoding
from volseg.config import Config, InferConfig, PreprocessConfig
from volseg.data.preprocessing import preprocess, restore
from volseg.data.preprocessing.slabs import restore_rows
from volseg.data.transforms import BSplineParams, RandomBSplineDeformation, Sample
from volseg.data.transforms.bspline import bspline_field, bspline_points
from volseg.data.transforms.grid import regular_points, resample
from volseg.decoding import probabilities
from volseg.inference import Predictor
from volseg.io import Volume


@pytest.fixture
def threads() -> Iterator[None]:
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize(
    "shape,spacing,mesh",
    [((17, 20, 23), (2.0, 0.8, 1.1), (2, 3, 2)), ((30, 25), (0.7, 1.3), (4, 1))],
)
def test_bspline_points_equal_ramp_plus_field(
    shape: tuple[int, ...], spacing: tuple[float, ...], mesh: tuple[int, ...]
) -> None:
    dims = len(shape)
    gen = torch.Generator().manual_seed(1)
    control = torch.randn(dims, *[m + 3 for m in mesh], generator=gen) * 4.0
    expected = regular_points(shape, spacing, plus=bspline_field(control, shape))
    ours = bspline_points(control, shape, spacing)
    assert ours.shape == (*shape, dims)
    torch.testing.assert_close(ours, expected, atol=2e-5, rtol=0)


def _blob(shape: tuple[int, ...]) -> np.ndarray:
    axes = np.meshgrid(*[np.linspace(-1, 1, n) for n in shape], indexing="ij")
    radius2 = sum((a / 0.6) ** 2 for a in axes)
    return (np.cos(3 * axes[-1]) * np.clip(1 - radius2, 0, None) ** 2).astype(np.float32)


@pytest.mark.parametrize("n_threads", [1, 2, 3])
def test_threaded_bspline_matches_simpleitk(n_threads: int, threads: None) -> None:
    """Above the threading threshold (odd depth: the last slab is padded), ITK still agrees."""
    torch.set_num_threads(n_threads)
    shape, spacing, mesh = (37, 40, 36), (2.0, 0.8, 1.1), (2, 3, 2)
    image = _blob(shape)
    control = np.random.default_rng(0).normal(0.0, 2.0, (3, *[m + 3 for m in mesh]))
    params = BSplineParams(control.astype(np.float32))
    sample = Sample(torch.from_numpy(image[None].copy()), spacing=spacing)
    ours = RandomBSplineDeformation().apply(sample, params).image[0].numpy()

    reference = sitk.GetImageFromArray(image)
    reference.SetSpacing([float(s) for s in reversed(spacing)])
    itk = sitk.BSplineTransform(3, 3)
    itk.SetTransformDomainOrigin((0.0, 0.0, 0.0))  # first to last voxel centre
    itk.SetTransformDomainPhysicalDimensions(
        [float(n - 1) * s for n, s in zip(reversed(shape), reversed(spacing))]
    )
    itk.SetTransformDomainMeshSize(list(reversed(mesh)))
    itk.SetTransformDomainDirection((1.0, 0, 0, 0, 1.0, 0, 0, 0, 1.0))
    c = params.control.astype(float)
    itk.SetParameters(np.concatenate([c[2].ravel(), c[1].ravel(), c[0].ravel()]).tolist())
    expected = sitk.GetArrayFromImage(sitk.Resample(reference, itk, sitk.sitkLinear, 0.0))
    assert np.abs(ours - expected).max() < 1e-5
    assert np.abs(ours - image).max() > 0.05  # it did deform


def test_threaded_resample_equals_one_batch(threads: None) -> None:
    """Image channels and an int64 label, slabs of 3 threads against one batch: bit-equal."""
    gen = torch.Generator().manual_seed(2)
    shape, spacing = (35, 33, 31), (1.5, 1.0, 1.2)
    image = torch.randn(2, *shape, generator=gen)
    label = (torch.rand(1, *shape, generator=gen) * 4).long()
    points = regular_points((31, 34, 36), spacing) + torch.randn(1, 1, 1, 3, generator=gen)
    points += 0.7 * torch.randn(points.shape, generator=gen)
    center = [(n - 1) / 2 for n in shape]
    torch.set_num_threads(1)
    one_image, one_label = resample(image, label, points, center, spacing)
    torch.set_num_threads(3)
    image3, label3 = resample(image, label, points, center, spacing)
    assert image3.shape == (2, 31, 34, 36) and image3.is_contiguous()
    assert label3 is not None and one_label is not None and label3.dtype == torch.int64
    assert torch.equal(image3, one_image)
    assert torch.equal(label3, one_label)


# --- inference memory: slab-wise activation, restore and decode ---------------------------


def _scan(shape: tuple[int, ...], seed: int = 0) -> Volume:
    """A scan with an oblique direction and a zero border (crop_nonzero has work to do)."""
    rng = np.random.default_rng(seed)
    array = np.zeros((1, *shape), np.float32)
    array[:, 2:-3, 3:-2, 1:-4] = rng.normal(100.0, 40.0, (shape[0] - 5, shape[1] - 5, shape[2] - 5))
    angle = 0.3
    direction = (np.cos(angle), -np.sin(angle), 0.0, np.sin(angle), np.cos(angle), 0.0, 0, 0, 1.0)
    return Volume(array, (0.9, 1.1, 2.5), (10.0, -5.0, 3.0), tuple(float(v) for v in direction))


@pytest.mark.parametrize(
    "config",
    [
        PreprocessConfig(orient="RAS", target_spacing=(1.3, 0.8, 1.7), normalize="none"),
        PreprocessConfig(orient="LPS", crop_size=(30, 20, 26), normalize="none"),
        PreprocessConfig(orient=None, normalize="none"),
    ],
)
@pytest.mark.parametrize("rows", [1, 4, 7])
def test_restore_rows_equal_whole_restore(config: PreprocessConfig, rows: int) -> None:
    scan = _scan((17, 23, 19))
    _, _, record = preprocess(scan, config)
    gen = np.random.default_rng(3)
    result = Volume(
        gen.random((2, *record.grid.shape)).astype(np.float32),
        record.grid.spacing,
        record.grid.origin,
        record.grid.direction,
    )
    whole = restore(result, record, "linear", [1.0, 0.0]).array
    slabs = [
        restore_rows(result, record, start, min(start + rows, scan.shape[0]), "linear", [1.0, 0.0])
        for start in range(0, scan.shape[0], rows)
    ]
    np.testing.assert_allclose(np.concatenate(slabs, axis=1), whole, atol=1e-6, rtol=0)
    assert (whole[0] == 1.0).any() or record.grid == record.source  # the fill shows somewhere


def test_in_place_softmax_equals_softmax(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(decoding, "_DECODE_VOXELS", 50)  # many slabs of a few rows
    logits = torch.randn(3, 11, 6, 7, generator=torch.Generator().manual_seed(4)) * 5
    expected = logits.softmax(0)
    out = probabilities(logits.clone(), "softmax")
    torch.testing.assert_close(out, expected, atol=1e-7, rtol=0)


class _Threshold(nn.Module):
    spatial_dims, divisor, in_channels, out_channels, output_kind = 3, 1, 1, 2, "logits"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([70.0 - x, x - 70.0], 1) / 10.0


@pytest.mark.parametrize("keep_largest", [(), (1,)])
def test_predict_in_slabs_equals_whole_volume_decoding(
    keep_largest: tuple[int, ...], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(decoding, "_DECODE_VOXELS", 300)  # several slabs
    config = Config(
        preprocess=PreprocessConfig(orient="RAS", target_spacing=(1.2, 1.2, 1.9), normalize="none"),
        infer=InferConfig(window=(8, 8, 8), overlap=0.25, keep_largest=keep_largest),
    )
    predictor = Predictor(_Threshold(), config, [0, 1], 1)
    scan = _scan((17, 23, 19), seed=1)
    expected = predictor.labels_from_probabilities(predictor.predict_probabilities(scan))
    label = predictor.predict(scan)
    assert label.shape == scan.shape and label.array.dtype == np.uint8
    assert (label.spacing, label.origin, label.direction) == (
        scan.spacing,
        scan.origin,
        scan.direction,
    )
    assert 0 < int(label.array.sum()) < label.array.size
    np.testing.assert_array_equal(label.array, expected.array)


# --- U-Net + VAE training: fused channels-last group norm + ReLU, in-place adds -----------


def _grads(model: nn.Module, x: torch.Tensor, seed: int) -> tuple[list[torch.Tensor], ...]:
    torch.manual_seed(seed)  # the same dropout mask and VAE sample in both runs
    model.zero_grad(set_to_none=True)
    out = model(x)
    outputs = [o.detach().clone() for o in out]
    weights = [
        torch.randn(o.shape, generator=torch.Generator().manual_seed(i)) for i, o in enumerate(out)
    ]
    sum((o * w).sum() for o, w in zip(out, weights)).backward()
    return outputs, [p.grad.clone() for p in model.parameters()]


@pytest.mark.parametrize("spatial_dims", [3, 2])
def test_fused_group_norm_relu_net_equals_plain_modules(
    spatial_dims: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SegResNetVAE (channels-last) with the fused op against the plain GroupNorm + ReLU:
    every output and every parameter's gradient."""
    from volseg.nn import create_model
    from volseg.nn.blocks import groupnorm, layers

    torch.manual_seed(0)
    model = create_model(
        "segresnet_vae",
        spatial_dims=spatial_dims,
        in_channels=2,
        out_channels=3,
        init_filters=8,
        vae_input_size=16,
        vae_latent=4,
    ).train()
    if spatial_dims == 2:  # the net runs 2-D in the default layout: make it channels-last
        model = model.to(memory_format=torch.channels_last)
    with torch.no_grad():  # non-trivial affine parameters
        for module in model.modules():
            if isinstance(module, nn.GroupNorm):
                module.weight.normal_(1.0, 0.5)
                module.bias.normal_(0.0, 0.5)
    x = torch.randn(2, 2, *[16] * spatial_dims)
    if spatial_dims == 2:
        x = x.contiguous(memory_format=torch.channels_last)
    calls = []
    real = groupnorm.fused_group_norm_relu

    def counted(*args: object) -> torch.Tensor:
        calls.append(1)
        return real(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(layers, "fused_group_norm_relu", counted)
    fused_out, fused_grads = _grads(model, x, seed=5)
    assert len(calls) > 10  # the fused path did run
    monkeypatch.setattr(layers, "fusable", lambda *args: False)
    plain_out, plain_grads = _grads(model, x, seed=5)
    for a, b in zip(fused_out, plain_out):  # to float32 rounding, amplified over the layers
        assert float((a - b).abs().max()) < 1e-5 * float(b.abs().max()), float(b.abs().max())
    # float32 sums in a different order: compare against the largest gradient, since a
    # parameter whose true gradient is ~0 (a conv bias feeding a norm) holds rounding noise only
    scale = max(float(b.abs().max()) for b in plain_grads)
    worst = max(float((a - b).abs().max()) for a, b in zip(fused_grads, plain_grads))
    assert worst < 1e-5 * scale, worst / scale


def test_train_compile_wraps_the_model_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """``train.compile: true`` runs the step through ``torch.compile(model)`` built once; the
    model's state dict and the optimiser's parameters are the plain model's."""
    from pathlib import Path

    from volseg.config import LossConfig, ModelConfig, TrainConfig, config_from_dict
    from volseg.losses import create_loss
    from volseg.nn import create_model
    from volseg.training.distributed import DistInfo
    from volseg.training.schedules import build_optimizer, build_scheduler
    from volseg.training.state import TrainState
    from volseg.training.step import train_step

    assert config_from_dict({"train": {"compile": True}}).train.compile is True
    built: list[nn.Module] = []

    def fake_compile(model: nn.Module) -> nn.Module:
        built.append(model)
        return model  # the same calls, uncompiled: this test checks the wiring only

    monkeypatch.setattr(torch, "compile", fake_compile)
    torch.manual_seed(0)
    model = create_model("vnet", in_channels=1, out_channels=2, base_channels=4)
    keys = list(model.state_dict())
    train = TrainConfig(compile=True)
    optimizer = build_optimizer(train.optimizer, list(model.parameters()))
    state = TrainState(
        config=Config(model=ModelConfig(), loss=LossConfig(), train=train),
        run_dir=Path("."),
        model=model,
        optimizer=optimizer,
        scheduler=build_scheduler(train, optimizer),
        scaler=torch.amp.GradScaler("cpu", enabled=False),
        dist=DistInfo(),
        labels=[0, 1],
        in_channels=1,
    )
    image = torch.randn(1, 1, 16, 16, 16)
    target = (torch.rand(1, 1, 16, 16, 16) > 0.5).long()
    for _ in range(2):
        train_step(model, image, target, create_loss("vnet_dice"), state, torch.device("cpu"))
    assert built == [model]
    assert list(model.state_dict()) == keys


@pytest.mark.parametrize("spatial_dims", [3, 2])
def test_fused_group_norm_relu_in_bfloat16_is_as_close_to_float32_as_pytorchs_own(
    spatial_dims: int,
) -> None:
    """Under CPU autocast a convolution hands the norm bfloat16: the fused op's output and
    gradients (input, weight, bias) lie as close to the float32 result on the same inputs as
    PyTorch's own bfloat16 group norm + ReLU do (1 % of its error, plus float32 noise)."""
    from volseg.nn.blocks.groupnorm import fusable, fused_group_norm_relu

    torch.manual_seed(0)
    norm = nn.GroupNorm(4, 16)
    with torch.no_grad():
        norm.weight.normal_(1.0, 0.5)
        norm.bias.normal_(0.0, 0.5)
    layout = torch.channels_last_3d if spatial_dims == 3 else torch.channels_last
    shape = (2, 16, *[12] * spatial_dims)
    x16 = (torch.randn(shape) * 3 + 1).to(torch.bfloat16).contiguous(memory_format=layout)
    grad16 = torch.randn(shape).to(torch.bfloat16).contiguous(memory_format=layout)
    assert fusable(norm, nn.ReLU(), x16)

    def run(x: torch.Tensor, fused: bool) -> list[torch.Tensor]:
        x = x.detach().requires_grad_()
        norm.zero_grad(set_to_none=True)
        y = fused_group_norm_relu(x, norm) if fused else torch.relu(norm(x))
        y.backward(grad16.to(x.dtype))
        return [t.detach().float() for t in (y, x.grad, norm.weight.grad, norm.bias.grad)]  # type: ignore[union-attr]

    exact = run(x16.float(), fused=False)
    fused, native = run(x16, fused=True), run(x16, fused=False)
    assert fused[0].dtype == torch.float32 and fused[0].shape == shape
    names = ("output", "input grad", "weight grad", "bias grad")
    for name, f, n, e in zip(names, fused, native, exact, strict=True):
        scale = float(e.abs().max())
        fused_err, native_err = float((f - e).abs().max()), float((n - e).abs().max())
        assert fused_err <= 1.01 * native_err + 1e-5 * scale, (name, fused_err, native_err, scale)
