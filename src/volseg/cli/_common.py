"""What every subcommand shares: the error type for problems the user can fix, ``--set``, and
the files a dataset command reads (which its outputs must never overwrite)."""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = [
    "UsageError",
    "add_set_argument",
    "dataset_files",
    "reject_duplicates",
    "section_overrides",
]


class UsageError(Exception):
    """A problem with the user's input, reported as one line."""


def add_set_argument(
    parser: argparse.ArgumentParser,
    what: str = "the config",
    examples: str = "train.epochs=3, train.patch_size=[64,64,32], model.kwargs.base_channels=8",
) -> None:
    """Add ``--set KEY=VALUE`` (repeatable; the values land in ``args.overrides``)."""
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help=f"override a key of {what}: dotted as in the YAML, the value read as YAML "
        f"({examples}); repeatable; keys: docs/config.md",
    )


def reject_duplicates(overrides: Sequence[str], given: Mapping[str, str]) -> None:
    """A :class:`UsageError` when a key is set both by ``--set`` and by a flag.

    ``given`` maps each dotted key that a flag of this command line set to that flag's name
    (``{"train.epochs": "--epochs"}``).
    """
    from volseg.config import override_keys

    for key in override_keys(overrides):
        if key in given:
            raise UsageError(f"{given[key]} and --set {key} both given; keep one")


def section_overrides(overrides: Sequence[str], section: str) -> dict[str, Any]:
    """The typed values of ``--set SECTION.KEY=VALUE`` overrides as ``{KEY: value}``.

    Values are checked as in a config file (against a default :class:`volseg.config.Config`);
    a key outside ``section`` is a :class:`UsageError`.
    """
    from volseg.config import Config, apply_overrides, override_keys

    keys = override_keys(overrides)
    for key in keys:
        if not key.startswith(f"{section}.") or key.count(".") != 1:
            raise UsageError(f"--set {key}: only {section}.KEY=VALUE applies here")
    typed = getattr(apply_overrides(Config(), overrides), section)
    return {key.split(".")[1]: getattr(typed, key.split(".")[1]) for key in keys}


def dataset_files(path: str | Path, layout: str = "auto") -> list[Path]:
    """What a command reading the dataset at ``path`` reads: ``path`` itself (a manifest, or a
    folder, whose own files such as ``dataset.json`` count) and every case's images and label,
    wherever they lie. Give it to :func:`volseg._atomic.check_not_inputs` with the outputs."""
    from volseg.data.layouts import find_cases

    files = [Path(path)]
    for case in find_cases(path, layout).cases:
        files += [*case.images, *([case.label] if case.label is not None else [])]
    return files
