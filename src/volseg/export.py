"""Export a trained run to TorchScript or ONNX, checked against the PyTorch model.

``export_run(run_dir, path, "onnx")`` rebuilds the run's network in eval mode (a VAE branch is
left out: only the segmentation output is exported), traces it on a random input of the training
patch size, and compares the exported model's outputs with PyTorch's on that input, on a second,
larger shape (the spatial axes and the batch axis are dynamic) and on a real-like input: a scan
(the run's first training case, or one the user gives) preprocessed like the run. Random input
alone hides precision losses that real intensities show.

Instance norm goes to ONNX as axis-by-axis means with a two-pass variance
(:class:`StagedInstanceNorm`): onnxruntime's ``InstanceNormalization`` (and one ``ReduceMean``
over all voxels) sums a whole channel (half a million voxels of a head) in float32; see
``docs/inference.md`` for the measured effect.

The run's config, labels and input channel count travel with the model, so ``volseg predict -m
model.onnx`` preprocesses and decodes exactly like the run:

* ONNX: ``metadata_props`` ``volseg.config`` (JSON), ``volseg.labels``, ``volseg.in_channels``;
* TorchScript: an extra file ``volseg.json`` inside the archive.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from volseg._atomic import atomic_path, check_not_inputs
from volseg.config import Config, config_from_dict, config_to_dict
from volseg.nn.network import check_network
from volseg.nn.sliding_window import pad_to_multiple
from volseg.training.checkpoint import find_checkpoint, load_run

__all__ = [
    "ExportResult",
    "OnnxNetwork",
    "StagedInstanceNorm",
    "export_model",
    "export_run",
    "load_onnx",
]

FORMATS = ("onnx", "torchscript")


@dataclass(frozen=True)
class ExportResult:
    """Where the model went and how far its outputs are from PyTorch's."""

    path: Path
    format: str
    max_abs_diff: float
    output_scale: float  # largest |output| of PyTorch's model on the check inputs
    real_input: str | None = None  # the scan the real-like check used, if any


class _SegmentationOnly(nn.Module):
    """The network's first output only (drops a VAE reconstruction if one is returned)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.model(x)
        if isinstance(out, (tuple, list)):
            out = out[0]
        return out


class StagedInstanceNorm(nn.Module):
    """Instance norm as ONNX-friendly means: one spatial axis at a time, variance in two passes.

    The same function as the ``InstanceNorm`` it replaces (statistics of the input, eval mode),
    but each reduction sums one axis (tens to hundreds of values), so float32 keeps its
    precision where a single sum over every voxel of a channel does not.
    """

    def __init__(self, norm: nn.modules.instancenorm._InstanceNorm) -> None:
        super().__init__()
        self.eps = norm.eps
        self.weight = norm.weight if norm.affine else None
        self.bias = norm.bias if norm.affine else None

    @staticmethod
    def _mean(x: torch.Tensor) -> torch.Tensor:
        for axis in range(x.ndim - 1, 1, -1):
            x = x.mean(dim=axis, keepdim=True)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        centred = x - self._mean(x)
        y = centred / torch.sqrt(self._mean(centred * centred) + self.eps)
        if self.weight is not None and self.bias is not None:
            shape = (1, -1) + (1,) * (x.ndim - 2)
            y = y * self.weight.reshape(shape) + self.bias.reshape(shape)
        return y


def _staged_norms(model: nn.Module) -> nn.Module:
    """A copy of ``model`` with every input-statistics instance norm staged (ONNX export)."""
    model = copy.deepcopy(model)
    for module in list(model.modules()):
        for name, child in module.named_children():
            if (
                isinstance(child, nn.modules.instancenorm._InstanceNorm)
                and not child.track_running_stats
            ):
                setattr(module, name, StagedInstanceNorm(child))
    return model


class OnnxNetwork(nn.Module):
    """An ONNX model run by onnxruntime (CPU), callable like a network on ``(B, C, *spatial)``.

    It carries the exported net's ``spatial_dims`` and ``divisor`` (from the model's metadata),
    so the Predictor runs it exactly like the PyTorch net.
    """

    output_kind = "logits"

    def __init__(self, path: str | Path, spatial_dims: int, divisor: int = 1) -> None:
        super().__init__()
        import onnxruntime

        options = onnxruntime.SessionOptions()
        self.session = onnxruntime.InferenceSession(
            str(path), options, providers=["CPUExecutionProvider"]
        )
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        self.input_name = inputs[0].name
        self.spatial_dims = spatial_dims
        self.divisor = divisor
        self.in_channels = int(inputs[0].shape[1])  # channel axes are static, the rest dynamic
        self.out_channels = int(outputs[0].shape[1])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        array = np.ascontiguousarray(x.detach().float().cpu().numpy())
        (out,) = self.session.run(None, {self.input_name: array})[:1]
        return torch.from_numpy(out)


def _example_shapes(config: Config, in_channels: int, divisor: int) -> list[tuple[int, ...]]:
    """The training patch (rounded up to the divisor) and a larger, non-cubic second shape."""
    patch = [-(-s // divisor) * divisor for s in config.train.patch_size]
    other = [p + divisor * (1 + i % 2) for i, p in enumerate(patch)]
    return [(1, in_channels, *patch), (2, in_channels, *other)]


def _metadata(config: dict[str, Any], labels: list[int], in_channels: int) -> dict[str, str]:
    return {
        "volseg.config": json.dumps(config),
        "volseg.labels": json.dumps(labels),
        "volseg.in_channels": str(in_channels),
    }


def export_model(
    model: nn.Module,
    path: str | Path,
    fmt: str,
    shapes: list[tuple[int, ...]],
    metadata: dict[str, str] | None = None,
    tolerance: float = 1e-4,
    real: torch.Tensor | None = None,
) -> ExportResult:
    """Export ``model`` (eval mode, segmentation output only) and check it on ``shapes``.

    Args:
        fmt: ``onnx`` or ``torchscript``.
        shapes: input shapes ``(B, C, *spatial)``; the first traces, all are checked.
        real: a real-like input ``(1, C, *spatial)`` (spatial sizes multiples of the net's
            divisor), checked as well.
        metadata: strings stored with the model (ONNX metadata props / TorchScript extra file).
        tolerance: largest allowed absolute difference from PyTorch's outputs while those are at
            most 1 in magnitude; larger outputs scale it by their largest magnitude (float32
            rounding is relative: an untrained net with batch norm can output thousands).

    Raises:
        ValueError: unknown format, or the exported model differs by more than the tolerance
            (the file is then not written).
    """
    if fmt not in FORMATS:
        raise ValueError(f"export format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    path = Path(path)
    net = _SegmentationOnly(model).eval()
    generator = torch.Generator().manual_seed(0)
    inputs = [torch.randn(shape, generator=generator) for shape in shapes]
    if real is not None:
        inputs.append(real.float())
    with torch.no_grad():
        expected = [net(x).numpy() for x in inputs]
    scale = max(float(np.abs(e).max()) for e in expected)
    allowed = tolerance * max(1.0, scale)
    with warnings.catch_warnings(), atomic_path(path) as tmp:
        # shape checks inside a net's forward are constant under tracing: expected, not news;
        # torch 2.13 marks TorchScript and the TorchScript-based ONNX exporter deprecated (the
        # formats this function promises; docs/inference.md says so once)
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        if fmt == "torchscript":
            with torch.no_grad():
                traced = torch.jit.trace(net, inputs[0], check_trace=False)
            extra = {"volseg.json": json.dumps(metadata or {})}
            torch.jit.save(traced, str(tmp), _extra_files=extra)
            loaded = torch.jit.load(str(tmp))
            with torch.no_grad():
                got = [loaded(x).numpy() for x in inputs]
        else:
            _export_onnx(_staged_norms(net).eval(), inputs[0], tmp, metadata or {})
            runner = OnnxNetwork(tmp, len(shapes[0]) - 2)
            got = [runner(x).numpy() for x in inputs]
        diff = max(float(np.abs(g - e).max()) for g, e in zip(got, expected))
        if not diff < allowed:  # raising here leaves no file: atomic_path removes ``tmp``
            raise ValueError(
                f"{path}: exported {fmt} model differs from PyTorch by {diff:.3g} "
                f"(allowed {allowed:.3g}: tolerance {tolerance:g} x outputs up to {scale:.3g})"
            )
    return ExportResult(path, fmt, diff, scale)


def _export_onnx(
    net: nn.Module, example: torch.Tensor, path: Path, metadata: dict[str, str]
) -> None:
    import onnx

    spatial = {i + 2: f"s{i}" for i in range(example.ndim - 2)}
    with torch.no_grad():
        torch.onnx.export(
            net,
            (example,),
            str(path),
            input_names=["image"],
            output_names=["logits"],
            dynamic_axes={"image": {0: "batch", **spatial}, "logits": {0: "batch", **spatial}},
            opset_version=17,
            dynamo=False,
        )
    proto = onnx.load(str(path))
    for key, value in metadata.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(proto, str(path))


def _real_input(
    config: Config, scan: str | Path | None, divisor: int, dims: int
) -> tuple[torch.Tensor, str] | None:
    """A scan preprocessed like the run and padded to the divisor: ``scan`` if given, else the
    run's first training case if it can still be found; ``None`` when there is none."""
    from volseg.data.layouts import LayoutError, find_cases
    from volseg.data.preprocessing import preprocess
    from volseg.io import read_volume

    if scan is None:
        try:
            cases = find_cases(config.data.root, config.data.layout, config.data.channels).cases
        except (LayoutError, OSError):
            return None
        if not cases or not all(Path(p).is_file() for p in cases[0].images):
            return None
        files: list[Path] = list(cases[0].images)
    else:
        files = [Path(scan)]
    work, _, _ = preprocess(read_volume(files), config.preprocess)
    x = torch.from_numpy(np.ascontiguousarray(work.array, dtype=np.float32))
    if dims == 2 and x.ndim == 4:  # a 2-D net: the middle slice
        x = x[:, x.shape[1] // 2]
    padded, _ = pad_to_multiple(x[None], divisor)
    return padded, ";".join(str(f) for f in files)


def export_run(
    run_dir: str | Path,
    path: str | Path,
    fmt: str = "onnx",
    tolerance: float = 1e-4,
    check_input: str | Path | None = None,
) -> ExportResult:
    """Export a run directory's (or checkpoint file's) network; see :func:`export_model`.

    ``check_input``: a scan for the real-like check (default: the run's first training case,
    skipped when it cannot be found). The output may not be the checkpoint or that scan.
    """
    check_not_inputs([path], [find_checkpoint(run_dir), *([check_input] if check_input else [])])
    run = load_run(run_dir)
    model = run.model.eval()
    network = check_network(model)
    divisor = network.divisor
    shapes = _example_shapes(run.config, run.in_channels, divisor)
    real = _real_input(run.config, check_input, divisor, network.spatial_dims)
    config = config_to_dict(run.config)
    metadata = _metadata(config, run.labels, run.in_channels)
    metadata["volseg.divisor"] = str(divisor)
    metadata["volseg.spatial_dims"] = str(network.spatial_dims)
    result = export_model(
        model, path, fmt, shapes, metadata, tolerance, None if real is None else real[0]
    )
    return dataclasses.replace(result, real_input=None if real is None else real[1])


def load_onnx(path: str | Path) -> tuple[OnnxNetwork, Config, list[int], int]:
    """An exported ONNX model with the config, labels and input channels stored in it."""
    import onnx

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: ONNX model not found")
    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception as err:  # onnx raises several types for corrupt files
        raise ValueError(f"{path}: unreadable ONNX model ({type(err).__name__})") from None
    meta = {p.key: p.value for p in proto.metadata_props}
    missing = [k for k in ("volseg.config", "volseg.labels", "volseg.in_channels") if k not in meta]
    if missing:
        raise ValueError(
            f"{path}: not exported by volseg export (no {', '.join(missing)} metadata)"
        )
    config = config_from_dict(json.loads(meta["volseg.config"]), warn_moved=False)
    labels = [int(v) for v in json.loads(meta["volseg.labels"])]
    dims = int(meta.get("volseg.spatial_dims", len(config.train.patch_size)))
    network = OnnxNetwork(path, dims, int(meta.get("volseg.divisor", "1")))
    return network, config, labels, int(meta["volseg.in_channels"])
