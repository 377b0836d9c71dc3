"""Config commands: ``config show`` (a resolved config as YAML) and ``config doc`` (the key
reference, ``docs/config.md``)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from volseg.cli._common import UsageError, add_set_argument


def _cmd_show(args: argparse.Namespace) -> int:
    from volseg.config import apply_overrides, config_yaml, load_config

    source = Path(args.config)
    if source.is_dir():  # a run: the config its checkpoint holds
        from volseg.training.checkpoint import resume_config

        config = resume_config(source)
    elif source.suffix in (".yaml", ".yml") or source.is_file():
        config = load_config(source)
    else:
        raise UsageError(f"{source}: no such config file or run directory")
    sys.stdout.write(config_yaml(apply_overrides(config, args.overrides)))
    return 0


def _cmd_doc(args: argparse.Namespace) -> int:
    from volseg.config import render_config_reference

    text = render_config_reference()
    if args.output is None:
        sys.stdout.write(text)
        return 0
    from volseg._atomic import atomic_path

    with atomic_path(args.output) as tmp:
        tmp.write_text(text, encoding="utf-8")
    print(f"wrote {args.output}", file=sys.stderr)
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add this module's subcommands."""
    p = sub.add_parser("config", help="show a resolved config, or write the key reference")
    config_sub = p.add_subparsers(dest="config_command", required=True)

    q = config_sub.add_parser(
        "show", help="print a config as YAML with every key (defaults filled, --set applied)"
    )
    q.add_argument("config", help="YAML config, or a run directory (its checkpoint's config)")
    add_set_argument(q)
    q.set_defaults(func=_cmd_show)

    q = config_sub.add_parser(
        "doc", help="the reference of every config key (type, default, meaning) as Markdown"
    )
    q.add_argument("-o", "--output", help="write it here (docs/config.md) instead of stdout")
    q.set_defaults(func=_cmd_doc)
