"""Plain-text tables for the terminal."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence

import numpy as np

__all__ = ["format_table", "is_count_column"]


_COUNT = re.compile(r"(^|_)(n|count|counts|nonfinite|components|cases|voxels|epochs?)(_|$)")
"""Column names that hold counts (``n``, ``lesion_count_diff``, ``n_cases``, ``voxels``...)."""


def _cell(value: object, count: bool = False) -> str:
    """Text of one table cell: integers as such, floats with 4 decimals, None as empty.

    ``count``: the column holds counts, so an integral float prints as an integer (``2``).
    """
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
        return str(int(v)) if count and v.is_integer() else f"{v:.4f}"
    return str(value)


def is_count_column(column: str, rows: Sequence[Mapping[str, object]]) -> bool:
    """A count column: named like one (``n``, ``nonfinite``, ``lesion_count_diff``, ``components``,
    ``n_cases``...) and holding only whole numbers (or nothing): printed without decimals."""
    if not _COUNT.search(column.lower()):
        return False
    for row in rows:
        value = row.get(column)
        if value is None:
            continue
        if not isinstance(value, int | float | np.integer | np.floating) or isinstance(value, bool):
            return False
        if math.isfinite(float(value)) and not float(value).is_integer():
            return False
    return True


def _is_number(value: object) -> bool:
    return isinstance(value, int | float | np.integer | np.floating) and not isinstance(value, bool)


def format_table(rows: Sequence[Mapping[str, object]], columns: list[str]) -> str:
    """A plain-text table with aligned columns, for the terminal.

    Numbers are right-aligned (floats with 4 decimals; integers, and whole numbers in a column
    named as a count such as ``n`` or ``lesion_count_diff``, without), other values
    left-aligned; a missing key gives an empty cell. A dashed line separates the header from
    the rows.

    Example:
        >>> print(format_table([{"case": "a", "dice": 0.9}], ["case", "dice"]))
        case    dice
        ----  ------
        a     0.9000
    """
    counts = [is_count_column(col, rows) for col in columns]
    cells = [[_cell(row.get(c), n) for c, n in zip(columns, counts, strict=True)] for row in rows]
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
