"""The ``volseg`` command: thin subcommands over the library; heavy imports happen inside them.

One module per group of subcommands; each has ``register(sub)``, which adds its parsers.
Errors the user can fix (a bad file, a bad config) end as one line on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Sequence
from typing import TextIO

from volseg.cli import (
    config,
    evaluate,
    experiment,
    fingerprint,
    info,
    plan,
    predict,
    report,
    train,
)
from volseg.cli._common import UsageError

__all__ = ["UsageError", "build_parser", "main"]

_COMMAND_MODULES = (train, predict, evaluate, experiment, fingerprint, plan, info, report, config)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="volseg", description="Segment medical volumes with the networks of five papers."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for module in _COMMAND_MODULES:
        module.register(sub)
    return parser


def _one_line_warning(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: TextIO | None = None,
    line: str | None = None,
) -> None:
    """Show a warning as one ``volseg: warning: ...`` line, not Python's two (where + source)."""
    text = str(message).strip()
    text = text.splitlines()[0] if text else category.__name__
    print(f"volseg: warning: {text}", file=sys.stderr if file is None else file)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``volseg`` console script and ``python -m volseg``."""
    raw = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(raw)
    args.argv = raw  # the command line as given: --nproc starts torchrun with it
    with warnings.catch_warnings():
        warnings.showwarning = _one_line_warning
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        print("volseg: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `volseg info vnet ... | head`
        sys.stderr.close()
        return 0
    except (UsageError, ValueError, KeyError, OSError) as err:
        if isinstance(err, OSError) and err.filename and err.strerror:  # "[Errno 2] ..." -> plain
            err = OSError(f"{err.filename}: {err.strerror}")
        if isinstance(err, KeyError) and err.args:  # str(KeyError) quotes its message
            err = ValueError(str(err.args[0]))
        message = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        print(f"volseg: error: {message.strip(chr(39))}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
