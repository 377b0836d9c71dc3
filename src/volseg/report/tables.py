"""Plain-text tables for the terminal."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

__all__ = ["format_table"]


def _cell(value: object) -> str:
    """Text of one table cell: floats with 4 decimals, None as empty."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float | np.floating):
        v = float(value)
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return f"{v:.4f}"
    return str(value)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float | np.integer | np.floating) and not isinstance(value, bool)


def format_table(rows: Sequence[Mapping[str, object]], columns: list[str]) -> str:
    """A plain-text table with aligned columns, for the terminal.

    Numbers are right-aligned (floats with 4 decimals), other values left-aligned; a missing
    key gives an empty cell. A dashed line separates the header from the rows.

    Example:
        >>> print(format_table([{"case": "a", "dice": 0.9}], ["case", "dice"]))
        case    dice
        ----  ------
        a     0.9000
    """
    cells = [[_cell(row.get(col)) for col in columns] for row in rows]
    numeric = [
        bool(rows) and all(_is_number(row.get(col)) or row.get(col) is None for row in rows)
        for col in columns
    ]
    widths = [max([len(col)] + [len(line[n]) for line in cells]) for n, col in enumerate(columns)]

    def join(parts: list[str]) -> str:
        text = "  ".join(
            part.rjust(w) if num else part.ljust(w)
            for part, w, num in zip(parts, widths, numeric, strict=True)
        )
        return text.rstrip()

    lines = [join(list(columns)), join(["-" * w for w in widths])]
    lines.extend(join(line) for line in cells)
    return "\n".join(lines)
