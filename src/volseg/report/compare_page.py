"""The HTML page of ``volseg compare``: the paired tables, paired plots, the cases that differ.

When the evaluation folders hold the predictions themselves (``volseg evaluate`` writes its
``metrics.csv`` beside them), the cases where the methods differ most open in the viewer: the
first method in red, the second in green, over the scan when ``images`` is given.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from volseg.report import plots
from volseg.report.compare import _COLUMNS, Comparison, lower_is_better
from volseg.report.html import esc, json_script, page, table, write_page

__all__ = ["write_compare"]


def _viewer_cases(
    comparison: Comparison, cases: Sequence[str], images: Path | None, max_voxels: int
) -> dict[str, dict[str, object]]:
    """Base64 volumes of the first two methods' predictions for ``cases`` (where on disk)."""
    from volseg.evaluation import image_files
    from volseg.io import read_volume
    from volseg.report.viewer import nifti_base64, shrink_factor, subsample

    if len(comparison.folders) < 2:
        return {}
    first, second = (image_files(f) for f in comparison.folders[:2])
    scans = image_files(images) if images else {}
    out: dict[str, dict[str, object]] = {}
    for case in cases:
        if case not in first or case not in second:
            continue
        a, b = read_volume(first[case]), read_volume(second[case])
        factor = shrink_factor(a.shape, max_voxels)
        scan = scans.get(case) or scans.get(f"{case}_0000")
        item: dict[str, object] = {
            "factor": factor,
            "note": f"every {factor}th voxel per axis" if factor > 1 else "",
            "prediction": nifti_base64(subsample(a, factor), label=True),
            "reference": nifti_base64(subsample(b, factor), label=True),
            "image": None if scan is None else nifti_base64(subsample(read_volume(scan), factor)),
        }
        out[case] = item
    return out


def write_compare(
    comparison: Comparison,
    output: str | Path,
    images: str | Path | None = None,
    max_voxels: int = 16_000_000,
) -> Path:
    """Write the comparison page (see the module docstring); returns its path."""
    from volseg.report.page import _viewer_html
    from volseg.report.viewer import find_niivue, niivue_script

    names = comparison.names
    parts = [
        f'<p class="meta">methods: {esc(", ".join(names))}; {len(comparison.cases)} cases; '
        f"differences are each method minus {esc(names[0])}, with a 95 % bootstrap interval "
        "(2000 resamples, seed 0) and the Wilcoxon signed-rank p-value.</p>"
    ]
    first_metric = next(iter(comparison.values), None)
    for metric in comparison.values:
        direction = "lower" if lower_is_better(metric) else "higher"
        parts += [
            f"<h2>{esc(metric)} <span class='note'>({direction} is better)</span></h2>",
            table(comparison.rows(metric), _COLUMNS),
            f'<div class="plots"><img alt="{esc(metric)} paired" src="'
            f'{plots.paired_plot(metric, names, comparison.values[metric].tolist())}"></div>',
        ]
    scripts: list[str] = []
    if first_metric is not None:
        differ = comparison.most_different(first_metric)
        data_cases = _viewer_cases(
            comparison, [c for c, _ in differ], Path(images) if images else None, max_voxels
        )
        rows = [
            {
                "case": c,
                "spread": s,
                **{
                    n: float(comparison.values[first_metric][i, comparison.cases.index(c)])
                    for i, n in enumerate(names)
                },
            }
            for c, s in differ
        ]
        buttons = [
            f'<button class="view" data-case="{esc(c)}">view</button>' if c in data_cases else ""
            for c, _ in differ
        ]
        parts += [
            f"<h2>Where the methods differ most ({esc(first_metric)})</h2>",
            table(rows, ["case", "spread", *names], table_id="cases", sortable=True, extra=buttons),
        ]
        if data_cases:
            bundle = find_niivue()
            parts.append(_viewer_html(bundle is not None, max_voxels, []))
            order = [c for c, _ in differ if c in data_cases]
            labels = {"prediction": names[0], "reference": names[1]}
            parts.append(
                json_script("volseg-data", {"order": order, "cases": data_cases, "labels": labels})
            )
            if bundle is not None:
                scripts.append(niivue_script(bundle))
    title = "volseg compare: " + " vs ".join(names)
    return write_page(page(title, "\n".join(parts), scripts), output)
