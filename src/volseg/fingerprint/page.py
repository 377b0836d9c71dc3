"""The fingerprint as one self-contained HTML page, in the style of ``volseg report``.

Sections: what was read; the cases and classes to look at first (with the rules that flagged
them); the dataset in numbers (sizes, spacings, orientations, channels, classes); the
distributions as plots (PNG, inlined), a flagged case drawn in red; and a sortable table with
one row per case.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from volseg.fingerprint.outliers import MIN_CASES, RANGE_SHARE, SPACING_RATIO, Z_LIMIT
from volseg.fingerprint.schema import Fingerprint, Spread
from volseg.fingerprint.stats import CT_MIN_RANGE
from volseg.report.html import esc, page, table, write_page
from volseg.report.plots import figure_uri, new_figure

__all__ = ["RULES", "write_fingerprint_page"]

RULES = (
    "orientation: a case whose orientation code differs from the most common one.",
    f"spacing (per axis, {MIN_CASES}+ cases): robust z-score of log spacing "
    f"(|log s - median| / 1.4826 MAD) > {Z_LIMIT:g} and more than a factor {SPACING_RATIO:g} "
    "from the median.",
    f"intensity (per channel, {MIN_CASES}+ cases): the foreground 0.5th or 99.5th percentile "
    f"more than {Z_LIMIT:g} robust standard deviations (1.4826 MAD, at least "
    f"{RANGE_SHARE:.0%} of the median 0.5-99.5 range) from the median over cases.",
    "label: a class present in fewer than half of the labeled cases.",
)

_RED, _GREY = "#d70015", "#4a6fa5"


def _log_axis(ax: Any) -> None:
    """A log y axis labelled with plain numbers (0.6, 2, 100), not powers of ten; one spanning
    less than a decade gets five evenly spaced (in log) labelled ticks. Call after plotting."""
    from matplotlib.ticker import FormatStrFormatter, LogFormatter, NullFormatter

    ax.set_yscale("log")
    low, high = ax.get_ylim()
    if high < 10 * low:
        ax.set_yticks(np.geomspace(low, high, 5))
        ax.yaxis.set_major_formatter(FormatStrFormatter("%.3g"))
        ax.yaxis.set_minor_formatter(NullFormatter())
        ax.set_ylim(low, high)
    else:  # matplotlib's choice of labelled ticks, written as plain numbers

        class Plain(LogFormatter):
            def _num_to_string(self, x: float, vmin: float, vmax: float) -> str:
                return f"{x:g}"

        ax.yaxis.set_major_formatter(Plain())
        ax.yaxis.set_minor_formatter(Plain(labelOnlyBase=False, minor_thresholds=(2, 0.4)))


def _strip(
    ax: Any, groups: Sequence[Sequence[float]], flagged: Sequence[Sequence[bool]], names: list[str]
) -> None:
    """One column of dots per group (cases jittered), a box behind; flagged dots red."""
    rng = np.random.default_rng(0)
    data = [np.asarray(g, dtype=float) for g in groups]
    ax.boxplot([d if d.size else [np.nan] for d in data], showfliers=False, widths=0.5)
    for i, (values, flags) in enumerate(zip(data, flagged, strict=True), start=1):
        x = i + rng.uniform(-0.15, 0.15, values.size)
        colours = [_RED if f else _GREY for f in flags]
        ax.scatter(x, values, c=colours, s=14, alpha=0.8, zorder=3)
    ax.set_xticks(range(1, len(names) + 1), names)


def _flag_sets(fp: Fingerprint) -> dict[str, set[str]]:
    kinds: dict[str, set[str]] = {}
    for o in fp.outliers:
        if o.case_id is not None:
            kinds.setdefault(o.kind, set()).add(o.case_id)
    return kinds


def _geometry_plot(fp: Fingerprint) -> str:
    flags = _flag_sets(fp)
    axes = list(fp.dataset.axes)
    fig, (a1, a2, a3) = new_figure(11.0, 3.2, 3)
    spacing_flag = [[c.case_id in flags.get("spacing", set()) for c in fp.cases]] * len(axes)
    _strip(a1, [[c.spacing[i] for c in fp.cases] for i in range(len(axes))], spacing_flag, axes)
    _log_axis(a1)
    a1.set(ylabel="mm", title="spacing per axis")
    none = [[False] * len(fp.cases)] * len(axes)
    _strip(a2, [[c.shape[i] for c in fp.cases] for i in range(len(axes))], none, axes)
    _log_axis(a2)
    a2.set(ylabel="voxels", title="shape per axis")
    _strip(a3, [[c.anisotropy for c in fp.cases]], [spacing_flag[0]], ["max / min"])
    a3.set(ylabel="ratio", title="anisotropy (max/min spacing)")
    return figure_uri(fig)


def _intensity_plot(fp: Fingerprint) -> str:
    flagged = _flag_sets(fp).get("intensity", set())
    n = len(fp.summary.channels)
    fig, axes = new_figure(min(4.0 * n, 14.0) + 1.0, 4.2 if len(fp.cases) <= 24 else 3.2, n)
    for i, (ax, channel) in enumerate(zip(axes, fp.summary.channels, strict=True)):
        for x, case in enumerate(fp.cases):
            s = case.channels[i].intensity
            if s.voxels == 0:
                continue
            colour = _RED if case.case_id in flagged else _GREY
            ax.plot([x, x], [s.p0_5, s.p99_5], color=colour, lw=2, alpha=0.7)
            ax.plot([x], [s.p50], "o", color=colour, ms=3)
        region = fp.cases[0].channels[i].region
        if len(fp.cases) <= 24:
            ax.set_xticks(range(len(fp.cases)), [c.case_id for c in fp.cases], rotation=90)
        ax.set(
            title=f"{channel.name} ({channel.modality})",
            xlabel="case" if len(fp.cases) <= 24 else "case (in table order)",
            ylabel=f"{region}: 0.5 / 50 / 99.5th pct",
        )
    return figure_uri(fig)


def _label_plot(fp: Fingerprint) -> str | None:
    labels = fp.summary.labels
    if not labels:
        return None
    labeled = [c for c in fp.cases if c.foreground_voxels is not None]
    names = [str(lab.label) for lab in labels]
    fig, (a1, a2, a3, a4) = new_figure(13.0, 3.2, 4)
    sizes = [[c.labels[i].size for c in labeled if c.labels[i].voxels] for i in range(len(labels))]
    comps = [
        [c.labels[i].components for c in labeled if c.labels[i].voxels] for i in range(len(labels))
    ]
    plain = [[False] * len(s) for s in sizes]
    _strip(a1, sizes, plain, names)
    _log_axis(a1)
    a1.set(xlabel="label", ylabel=fp.dataset.size_unit, title="size where present")
    a2.bar(names, [lab.present_fraction for lab in labels], color=_GREY)
    a2.axhline(0.5, color=_RED, lw=1, ls="--")
    a2.set(ylim=(0, 1.02), xlabel="label", ylabel="share of labeled cases", title="present in")
    _strip(a3, comps, plain, names)
    a3.set(xlabel="label", ylabel="count", title="connected components")
    fractions = [[c.foreground_fraction or 0.0 for c in labeled]]
    _strip(a4, fractions, [[False] * len(labeled)], ["labels > 0"])
    a4.set(ylabel="share of voxels", title="foreground share")
    return figure_uri(fig)


def _fmt(values: Sequence[float], digits: int = 4) -> str:
    return " x ".join(f"{v:.{digits}g}" for v in values)


def _spread_row(name: str, spread: Spread | None) -> dict[str, object]:
    if spread is None:
        return {"quantity": name, "median": None, "min": None, "max": None}
    return {"quantity": name, "median": spread.median, "min": spread.min, "max": spread.max}


def _overview(fp: Fingerprint) -> str:
    s, d = fp.summary, fp.dataset
    rows: list[dict[str, object]] = [
        {
            "quantity": f"{what} ({d.axes}, {unit})",
            "median": _fmt(spread.median),
            "min": _fmt(spread.min),
            "max": _fmt(spread.max),
        }
        for what, unit, spread in (
            ("shape", "voxels", s.shape),
            ("spacing", "mm", s.spacing),
            ("extent", "mm", s.extent_mm),
        )
    ]
    rows.append(_spread_row("anisotropy (max/min spacing)", s.anisotropy))
    rows.append(_spread_row("foreground share of voxels", s.foreground_fraction))
    orientations = ", ".join(f"{code}: {n}" for code, n in s.orientations.items())
    channels = [
        {
            "channel": c.name,
            "modality": c.modality,
            "p0.5": c.intensity.p0_5,
            "p50": c.intensity.p50,
            "p99.5": c.intensity.p99_5,
            "mean": c.intensity.mean,
            "std": c.intensity.std,
            "min": c.min,
            "max": c.max,
            "rule": c.modality_reason,
        }
        for c in s.channels
    ]
    labels = [
        {
            "label": lab.label,
            "present in": f"{lab.present_in} / {d.labeled}",
            f"size median ({d.size_unit})": None if lab.size is None else lab.size.median,
            "size min": None if lab.size is None else lab.size.min,
            "size max": None if lab.size is None else lab.size.max,
            "components median": None if lab.components is None else lab.components.median,
            "components max": None if lab.components is None else lab.components.max,
        }
        for lab in s.labels
    ]
    region = "foreground (labels > 0)" if d.labeled else "whole image (no label maps)"
    parts = [
        "<h2>Dataset</h2>",
        table(rows, ["quantity", "median", "min", "max"]),
        f"<p>Orientations (cases): {esc(orientations)}.</p>",
        "<h3>Channels</h3>",
        f'<p class="note">Intensities inside the {esc(region)}, all cases pooled: mean and std '
        "over every voxel, percentiles over up to 10,000 voxels drawn per case. CT: whole "
        f"numbers with a minimum in [{CT_MIN_RANGE[0]:g}, {CT_MIN_RANGE[1]:g}] in every case "
        "(or a channel named CT); MR: named as an MR contrast (t1, t2, flair, ...); other: "
        "neither.</p>",
        table(channels, list(channels[0]) if channels else []),
    ]
    if labels:
        parts += [
            "<h3>Classes</h3>",
            '<p class="note">Size and connected components (26-connected in 3-D, 8 in 2-D) over '
            "the cases that hold the class.</p>",
            table(labels, list(labels[0])),
        ]
    return "\n".join(parts)


def _cases_table(fp: Fingerprint) -> str:
    by_case: dict[str, list[str]] = {}
    for o in fp.outliers:
        if o.case_id is not None:
            by_case.setdefault(o.case_id, []).append(o.kind)
    rows: list[dict[str, object]] = []
    for c in fp.cases:
        row: dict[str, object] = {
            "case": c.case_id,
            "shape": _fmt(c.shape),
            "spacing (mm)": _fmt(c.spacing),
            "anisotropy": c.anisotropy,
            "orientation": c.orientation,
            "foreground share": c.foreground_fraction,
        }
        for ch in c.channels:
            row[f"{ch.name} p0.5"] = ch.intensity.p0_5
            row[f"{ch.name} p50"] = ch.intensity.p50
            row[f"{ch.name} p99.5"] = ch.intensity.p99_5
        for lab in c.labels:
            row[f"label {lab.label} ({fp.dataset.size_unit})"] = lab.size
            row[f"label {lab.label} components"] = lab.components
        row["flag"] = ", ".join(dict.fromkeys(by_case.get(c.case_id, [])))
        rows.append(row)
    return (
        "<h2>Cases</h2>"
        '<p class="note">Click a header to sort. Shapes and spacings in array order '
        f"({esc(fp.dataset.axes)}).</p>"
        + table(
            rows,
            list(rows[0]),
            table_id="cases",
            sortable=True,
            row_classes=["flagged" if r["flag"] else "" for r in rows],
        )
    )


def write_fingerprint_page(fp: Fingerprint, path: str | Path, command: str = "") -> Path:
    """Write the fingerprint's HTML page to ``path`` (atomically); returns ``path``.

    Args:
        fp: the fingerprint.
        path: the HTML file.
        command: the command that made it, shown on the page.
    """
    d = fp.dataset
    labels = (
        "none declared" if d.declared_labels is None else ", ".join(map(str, d.declared_labels))
    )
    parts = [
        f'<p class="meta">dataset: {esc(d.root)} ({esc(d.layout)} layout); {d.cases} case(s), '
        f"{d.labeled} labeled; {d.dims}-D; channels: {esc(', '.join(d.channel_names))}; "
        f"labels: {esc(labels)}</p>",
    ]
    if command:
        parts.append(f'<p class="meta">command: <code>{esc(command)}</code></p>')
    rules = "".join(f"<li>{esc(r)}</li>" for r in RULES)
    if fp.outliers:
        items = "".join(
            f"<li><b>{esc(o.case_id or 'dataset')}</b> ({esc(o.kind)}): {esc(o.detail)}</li>"
            for o in fp.outliers
        )
        parts.append(f'<div class="warn"><b>Look at these first</b><ul>{items}</ul></div>')
    else:
        parts.append("<p>No case or class stands out by the rules below.</p>")
    parts.append(f'<p class="note">Rules:</p><ul class="note">{rules}</ul>')
    parts.append(_overview(fp))
    figures = [_geometry_plot(fp), _intensity_plot(fp), _label_plot(fp)]
    images = "".join(f'<img alt="fingerprint plot" src="{uri}">' for uri in figures if uri)
    parts.append(f'<h2>Distributions</h2><div class="plots">{images}</div>')
    parts.append(_cases_table(fp))
    title = f"volseg fingerprint: {Path(d.root).name}"
    return write_page(page(title, "\n".join(parts)), path)
