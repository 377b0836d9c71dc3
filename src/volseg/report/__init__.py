"""Human-readable outputs: terminal tables, overlay pictures and self-contained HTML reports.

* :func:`format_table` — aligned plain-text tables (:mod:`~volseg.report.tables`);
* :func:`save_overlay_png` — tri-planar overlays (:mod:`~volseg.report.overlay`);
* :func:`write_report` — ``volseg report``: one HTML file per run or folder of predictions
  (:mod:`~volseg.report.page`);
* :func:`compare_folders`, :func:`write_compare` — ``volseg compare``
  (:mod:`~volseg.report.compare`, :mod:`~volseg.report.compare_page`).

Importing this package is cheap: matplotlib, SimpleITK-heavy work and scipy load inside the
functions that need them.
"""

from __future__ import annotations

from typing import Any

from volseg.report.overlay import save_overlay_png
from volseg.report.tables import format_table

__all__ = ["compare_folders", "format_table", "save_overlay_png", "write_compare", "write_report"]


def __getattr__(name: str) -> Any:
    if name == "write_report":
        from volseg.report.page import write_report

        return write_report
    if name == "compare_folders":
        from volseg.report.compare import compare_folders

        return compare_folders
    if name == "write_compare":
        from volseg.report.compare_page import write_compare

        return write_compare
    raise AttributeError(name)
