"""Export a trained run to TorchScript or ONNX, checked against the PyTorch model.

``export_run(run_dir, path, "onnx")`` rebuilds the run's network in eval mode (a VAE branch is
left out: only the segmentation output is exported), traces it on a random input of the training
patch size, and compares the exported model's outputs with PyTorch's on that input and on a
second, larger shape (the spatial axes and the batch axis are dynamic). The run's config, labels
and input channel count travel with the model, so ``volseg predict -m model.onnx`` preprocesses
and decodes exactly like the run:

* ONNX: ``metadata_props`` ``volseg.config`` (JSON), ``volseg.labels``, ``volseg.in_channels``;
* TorchScript: an extra file ``volseg.json`` inside the archive.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from volseg._atomic import atomic_path
from volseg.config import Config, config_from_dict, config_to_dict
from volseg.nn.network import check_network
from volseg.training.checkpoint import load_run

__all__ = ["ExportResult", "OnnxNetwork", "export_model", "export_run", "load_onnx"]

FORMATS = ("onnx", "torchscript")


@dataclass(frozen=True)
class ExportResult:
    """Where the model went and how far its outputs are from PyTorch's."""

    path: Path
    format: str
    max_abs_diff: float
    output_scale: float  # largest |output| of PyTorch's model on the check inputs


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
) -> ExportResult:
    """Export ``model`` (eval mode, segmentation output only) and check it on ``shapes``.

    Args:
        fmt: ``onnx`` or ``torchscript``.
        shapes: input shapes ``(B, C, *spatial)``; the first traces, all are checked.
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
            _export_onnx(net, inputs[0], tmp, metadata or {})
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


def export_run(
    run_dir: str | Path, path: str | Path, fmt: str = "onnx", tolerance: float = 1e-4
) -> ExportResult:
    """Export a run directory's (or checkpoint file's) network; see :func:`export_model`."""
    run = load_run(run_dir)
    model = run.model.eval()
    network = check_network(model)
    divisor = network.divisor
    shapes = _example_shapes(run.config, run.in_channels, divisor)
    config = config_to_dict(run.config)
    metadata = _metadata(config, run.labels, run.in_channels)
    metadata["volseg.divisor"] = str(divisor)
    metadata["volseg.spatial_dims"] = str(network.spatial_dims)
    return export_model(model, path, fmt, shapes, metadata, tolerance)


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
