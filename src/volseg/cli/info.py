"""``info``: what a run directory, an exported ``.onnx`` or a registered model is.

* a run directory (or a checkpoint file): the network and its parameter count, the config in
  brief, epochs trained, the best ``train.monitor`` value, the labels with their names, the
  input channels and the preprocessing;
* an ``.onnx`` file written by ``volseg export``: its inputs and outputs (names, shapes), opset,
  the metadata volseg stored in it (labels, channels, the run's config) and its parameter count;
* a registered model name (``vnet``, ...) with ``--input-size``: parameters, FLOPs, memory and
  receptive field (:mod:`volseg.nn.analysis`).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from volseg.cli._common import UsageError


def _facts(items: list[tuple[str, object]]) -> str:
    """``name: value`` lines with the names aligned."""
    width = max(len(name) for name, _ in items)
    return "\n".join(f"{name.ljust(width)}  {value}" for name, value in items)


def _brief(values: dict[str, Any]) -> str:
    """``key value, ...`` of a config section, leaving out empty values."""
    return ", ".join(f"{k} {v}" for k, v in values.items() if v not in (None, (), [], {}))


def _labels_text(labels: list[int], names: tuple[str, ...] | None) -> str:
    from volseg.metrics.names import label_keys

    named = dict(zip(labels, names or (), strict=False))
    keys = label_keys([v for v in labels if v != 0], named)
    parts = []
    for v in labels:
        text = f"{v} {named[v]}" if v in named else str(v)
        if v in keys and keys[v] != named.get(v, str(v)):
            text += f" (columns *_{keys[v]})"
        parts.append(text)
    return ", ".join(parts)


def _run_info(path: Path) -> str:
    from volseg.config import config_to_dict
    from volseg.nn.analysis import count_parameters
    from volseg.training.checkpoint import find_checkpoint, load_checkpoint, load_run
    from volseg.training.state import MONITOR_SIGN

    run = load_run(path)
    config = run.config
    last_path = run.path.with_name("checkpoint_last.pt") if path.is_dir() else run.path
    last = load_checkpoint(last_path if last_path.is_file() else find_checkpoint(path))
    monitor = config.train.monitor
    if monitor in last.metrics and last.trainer.best_epoch > 0:
        value = MONITOR_SIGN.get(monitor, 1.0) * last.trainer.best_score
        best = f"{monitor} {value:.4f} (epoch {last.trainer.best_epoch})"
    else:
        best = "n/a (no validation cases)"
    data = config.data
    channels = ", ".join(data.channels) if data.channels else "all of the dataset's"
    regions = f"; regions {data.regions}" if data.regions else ""
    train = config.train
    items: list[tuple[str, object]] = [
        ("run", run.path.parent if path.is_dir() else run.path),
        ("network", f"{config.model.name} {config.model.kwargs or ''}".strip()),
        ("parameters", f"{count_parameters(run.model):,}"),
        ("loss", f"{config.loss.name} {config.loss.kwargs or ''}".strip()),
        ("data", f"{data.root} (layout {data.layout})"),
        ("labels", _labels_text(run.labels, data.label_names) + regions),
        ("input channels", f"{run.in_channels} ({channels})"),
        ("preprocessing", _brief(config_to_dict(config.preprocess))),
        (
            "training",
            f"patch {list(train.patch_size)}, batch {train.batch_size}, "
            f"{train.epochs} epochs x {train.iterations_per_epoch} iterations, "
            f"{train.optimizer.name} lr {train.optimizer.lr:g}",
        ),
        ("epochs trained", last.epoch),
        ("best", best),
    ]
    if last.trainer.stop_reason:
        items.append(("stopped", last.trainer.stop_reason))
    if last.trainer.seconds:
        items.append(("training time", f"{last.trainer.seconds / 60:.1f} min"))
    return _facts(items)


def _dims(value_info: Any) -> list[int | str]:
    """An ONNX value's shape: integers, or the names of dynamic axes (``?`` when unnamed)."""
    dims = value_info.type.tensor_type.shape.dim
    return [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in dims]


def _onnx_info(path: Path) -> str:
    import json

    import numpy as np
    import onnx

    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception as err:  # onnx raises several types for corrupt files
        raise ValueError(f"{path}: unreadable ONNX model ({type(err).__name__})") from None
    graph = proto.graph
    stored = {init.name for init in graph.initializer}
    params = sum(int(np.prod(init.dims)) for init in graph.initializer)
    opsets = ", ".join(f"{o.domain or 'ai.onnx'} {o.version}" for o in proto.opset_import)
    items: list[tuple[str, object]] = [("model", path)]
    items += [(f"input {v.name}", _dims(v)) for v in graph.input if v.name not in stored]
    items += [(f"output {v.name}", _dims(v)) for v in graph.output]
    items += [
        ("opset", opsets),
        ("producer", f"{proto.producer_name} {proto.producer_version}".strip()),
        ("parameters", f"{params:,} (initializer values)"),
    ]
    meta = {p.key: p.value for p in proto.metadata_props}
    if "volseg.config" in meta:
        config = json.loads(meta["volseg.config"])
        model, data = config.get("model") or {}, config.get("data") or {}
        labels = [int(v) for v in json.loads(meta.get("volseg.labels", "[]"))]
        names = data.get("label_names")
        items += [
            ("network", f"{model.get('name')} {model.get('kwargs') or ''}".strip()),
            ("labels", _labels_text(labels, tuple(names) if names else None)),
            ("input channels", meta.get("volseg.in_channels", "?")),
            ("preprocessing", _brief(config.get("preprocess") or {})),
        ]
    items += [(f"metadata {k}", v) for k, v in meta.items() if k != "volseg.config"]
    if "volseg.config" in meta:
        items.append(("metadata volseg.config", f"(JSON, {len(meta['volseg.config'])} chars)"))
    else:
        items.append(("note", "no volseg metadata: not written by volseg export"))
    return _facts(items)


def _model_info(args: argparse.Namespace) -> str:
    import yaml

    from volseg.nn import create_model
    from volseg.nn.analysis import analyze_model, format_analysis

    if not args.input_size:
        raise UsageError(f"info {args.model}: a model name needs --input-size D H W (or H W)")
    kwargs: dict[str, Any] = {"spatial_dims": len(args.input_size)}
    if args.in_channels is not None:
        kwargs["in_channels"] = args.in_channels
    for item in args.kwargs or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"--kwargs {item!r}: expected key=value")
        kwargs[key] = yaml.safe_load(value)  # 3 -> int, [1, 2] -> list, true -> bool
    try:
        model = create_model(args.model, **kwargs)
    except TypeError as err:
        raise UsageError(f"{err} (model {args.model})") from None
    analysis = analyze_model(model, args.input_size, args.in_channels)
    return format_analysis(analysis, title=args.model)


def _cmd_info(args: argparse.Namespace) -> int:
    path = Path(args.model)
    if path.suffix.lower() == ".onnx":
        if not path.is_file():
            raise UsageError(f"{path}: ONNX model not found")
        print(_onnx_info(path))
    elif path.is_dir() or (path.is_file() and path.suffix == ".pt"):
        print(_run_info(path))
    else:
        print(_model_info(args))
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add this module's subcommands."""
    p = sub.add_parser(
        "info",
        help="what a run directory, an exported .onnx or a registered model is (parameters, "
        "labels, FLOPs, ...)",
    )
    p.add_argument(
        "model",
        help="run directory (or checkpoint .pt), exported .onnx, or registered model name "
        "(vnet, segresnet_vae, ...)",
    )
    p.add_argument(
        "--input-size", type=int, nargs="+", metavar="N", help="D H W or H W (model names only)"
    )
    p.add_argument("--in-channels", type=int, help="input channels (default: the model's)")
    p.add_argument("--kwargs", nargs="+", metavar="KEY=VALUE", help="model arguments (YAML values)")
    p.set_defaults(func=_cmd_info)
