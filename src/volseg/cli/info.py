"""``info``: parameters, FLOPs, memory and receptive fields of a model."""

from __future__ import annotations

import argparse

from volseg.cli._common import UsageError


def _cmd_info(args: argparse.Namespace) -> int:
    from typing import Any

    import yaml

    from volseg.nn import create_model
    from volseg.nn.analysis import analyze_model, format_analysis

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
    print(format_analysis(analysis, title=args.model))
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add this module's subcommands."""
    p = sub.add_parser("info", help="parameters, FLOPs, memory and receptive fields of a model")
    p.add_argument("model", help="registered model name (vnet, segresnet_vae, ...)")
    p.add_argument(
        "--input-size", required=True, type=int, nargs="+", metavar="N", help="D H W or H W"
    )
    p.add_argument("--in-channels", type=int, help="input channels (default: the model's)")
    p.add_argument("--kwargs", nargs="+", metavar="KEY=VALUE", help="model arguments (YAML values)")
    p.set_defaults(func=_cmd_info)
