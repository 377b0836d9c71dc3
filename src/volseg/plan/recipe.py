"""A recipe as YAML with the planner's reasons as comments.

:func:`recipe_yaml` writes nested mappings in block style, every list and every list item in
flow style (``patch_size: [64, 64, 64]``, ``- {name: flip, p: 0.5}``), a comment block at the
top and a comment after any key that has one. ``yaml.safe_load`` of the text gives back the
data exactly (checked on every write).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import yaml

__all__ = ["recipe_yaml"]


def _flow(value: Any) -> str:
    text: str = yaml.safe_dump(value, default_flow_style=True, sort_keys=False, width=10_000)
    return text.strip().removesuffix("...").strip()


def _lines(
    data: Mapping[str, Any], notes: Mapping[str, str], prefix: str, indent: int
) -> list[str]:
    lines: list[str] = []
    pad = "  " * indent
    for key, value in data.items():
        path = f"{prefix}{key}"
        note = notes.get(path)
        if isinstance(value, Mapping) and value:
            lines.append(f"{pad}{_flow(key)}:" + (f"  # {note}" if note else ""))
            lines += _lines(value, notes, path + ".", indent + 1)
        elif (
            isinstance(value, Sequence)
            and not isinstance(value, str)
            and value
            and all(isinstance(v, Mapping) for v in value)
        ):
            lines.append(f"{pad}{_flow(key)}:" + (f"  # {note}" if note else ""))
            lines += [f"{pad}  - {_flow(dict(v))}" for v in value]
        else:
            line = f"{pad}{_flow(key)}: {_flow(value)}"
            lines.append(line + (f"  # {note}" if note else ""))
    return lines


def recipe_yaml(data: Mapping[str, Any], notes: Mapping[str, str], header: Sequence[str]) -> str:
    """YAML text of ``data`` with ``header`` lines as a top comment block and ``notes``
    (dotted key -> reason) as comments after their keys.

    Raises:
        ValueError: the text would not read back as ``data`` (a value YAML cannot hold).
    """
    top = [f"# {line}".rstrip() for line in header]
    text = "\n".join([*top, *_lines(data, notes, "", 0)]) + "\n"
    if yaml.safe_load(text) != _plain(data):
        raise ValueError("recipe_yaml: the YAML does not read back as the recipe")
    return text


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, Sequence) and not isinstance(value, str):
        return [_plain(v) for v in value]
    return value
