"""``summary.md`` of an experiment: mean +/- std per variant, paired differences, curves."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from volseg.experiments.base import Experiment, Run
from volseg.experiments.plots import read_log
from volseg.experiments.stats import paired_stats

__all__ = ["summary_markdown"]


def _fmt(x: float) -> str:
    return "n/a" if not math.isfinite(x) else f"{x:.3f}"


def summary_markdown(
    exp: Experiment,
    rows: Sequence[dict[str, Any]],
    profile: str,
    seeds: int,
    runs: Sequence[Run] = (),
) -> str:
    """``summary.md``: mean +/- std per variant, the paired comparisons, the paper's figure."""
    names = [v.name for v in exp.variants]
    metrics = ["dice", "hd95"] if exp.hd95 else ["dice"]
    lines = [
        f"# {exp.name}: {exp.title}",
        "",
        f"Profile `{profile}`, {seeds} seeds, dataset `{exp.dataset}` ({exp.synth}). " + exp.notes,
        "",
        "| variant | " + " | ".join(f"{m} mean +/- std" for m in metrics) + " | n |",
        "|---|" + "---|" * len(metrics) + "---|",
    ]
    for name in names:
        mine = [r for r in rows if r["variant"] == name]
        cells = []
        for m in metrics:
            values = np.array([r[m] for r in mine], dtype=float)
            finite = values[np.isfinite(values)]
            cell = _mean_std(list(finite)) if finite.size else "n/a"
            if finite.size < values.size:  # HD95 of an empty mask is inf
                cell += f" ({values.size - finite.size} infinite left out)"
            cells.append(cell)
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {len(mine)} |")
    if exp.folds:
        lines += [
            "",
            "Mean Dice per fold (over seeds and held-out cases), and its std over folds:",
            "",
        ]
        for name in names:
            per_fold = [
                float(np.mean([r["dice"] for r in rows if r["variant"] == name and r["fold"] == k]))
                for k in range(exp.folds)
            ]
            lines.append(
                f"- {name}: "
                + ", ".join(_fmt(x) for x in per_fold)
                + f"; std over folds {_fmt(float(np.std(per_fold)))}"
            )
    if exp.curves and runs:
        lines += ["", *_curve_lines(exp, runs)]
    lines += ["", "## Paired differences (method - baseline, Dice)", ""]
    for method, baseline in exp.comparisons:
        key = ("seed", "fold", "case") if exp.folds else ("seed", "case")
        a = {tuple(r[k] for k in key): r["dice"] for r in rows if r["variant"] == method}
        b = {tuple(r[k] for k in key): r["dice"] for r in rows if r["variant"] == baseline}
        pairs = sorted(set(a) & set(b))
        s = paired_stats([a[p] for p in pairs], [b[p] for p in pairs])
        p_text = f"p = {s.p:.4g}" if s.p is not None else s.note
        lines.append(
            f"- {method} - {baseline}: mean difference {s.mean:+.4f} over {s.n} "
            f"({', '.join(key)}) pairs; 95% bootstrap interval [{s.low:+.4f}, {s.high:+.4f}] "
            f"(2000 resamples, seed 0); Wilcoxon signed-rank {p_text}"
        )
    lines += ["", "## The paper's figure beside ours", "", f"- paper: {exp.paper}"]
    ours = ", ".join(
        f"{n} {_fmt(float(np.mean([r['dice'] for r in rows if r['variant'] == n])))}" for n in names
    )
    lines += [f"- here (mean Dice, synthetic data, profile `{profile}`): {ours}", ""]
    if profile == "smoke":
        lines += ["Smoke profile: a plumbing check, not a measurement of the claim.", ""]
    return "\n".join(lines)


def _mean_std(values: Sequence[float]) -> str:
    return f"{_fmt(float(np.mean(values)))} +/- {_fmt(float(np.std(values)))}"


def _curve_lines(exp: Experiment, runs: Sequence[Run]) -> list[str]:
    """Per variant: each curve's last-epoch and mean-over-epochs value over runs (and the gap)."""
    lines = ["## Training curves (log.csv; mean +/- std over runs)", ""]
    for name in [v.name for v in exp.variants]:
        logs = [read_log(r.run_dir) for r in runs if r.variant == name]
        parts = []
        for column in exp.curves:
            last = [log[column][-1] for log in logs]
            parts.append(
                f"{column} last epoch {_mean_std(last)}, "
                f"mean over epochs {_mean_std([float(np.nanmean(log[column])) for log in logs])}"
            )
        if {"train_dice", "val_dice"} <= set(exp.curves):
            gap = [log["train_dice"][-1] - log["val_dice"][-1] for log in logs]
            parts.append(f"gap train - val last epoch {_mean_std(gap)}")
        lines.append(f"- {name}: " + "; ".join(parts))
    return lines
