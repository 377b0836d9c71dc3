"""``summary.md`` of an experiment: mean +/- std per variant, paired differences, curves."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from volseg.experiments.base import Experiment
from volseg.experiments.claims import ClaimResult, evaluate_claim

__all__ = ["claim_line", "summary_markdown"]


def _fmt(x: float) -> str:
    return "n/a" if not math.isfinite(x) else f"{x:.3f}"


def summary_markdown(
    exp: Experiment,
    rows: Sequence[dict[str, Any]],
    profile: str,
    seeds: int,
    curves: Sequence[dict[str, Any]] = (),
) -> str:
    """``summary.md``: mean +/- std per variant, the claims tested, the paper's figure.

    ``rows``: ``results.csv`` rows; ``curves``: ``curves.csv`` rows (one per run and epoch).
    """
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
    lines += _per_label_lines(names, metrics, rows)
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
    if exp.curves and curves:
        lines += ["", *_curve_lines(exp, curves)]
    lines += ["", "## The paper's claims, tested (method - baseline)", ""]
    lines += [f"- {claim_line(evaluate_claim(c, rows, curves))}" for c in exp.claims]
    lines += ["", "## The paper's figure beside ours", "", f"- paper: {exp.paper}"]
    ours = ", ".join(
        f"{n} {_fmt(float(np.mean([r['dice'] for r in rows if r['variant'] == n])))}" for n in names
    )
    lines += [f"- here (mean Dice, synthetic data, profile `{profile}`): {ours}", ""]
    if profile == "smoke":
        lines += ["Smoke profile: a plumbing check, not a measurement of the claim.", ""]
    return "\n".join(lines)


def _per_label_lines(
    names: Sequence[str], metrics: Sequence[str], rows: Sequence[dict[str, Any]]
) -> list[str]:
    """A table of every per-label (or region) column, ``dice_<name>``: mean +/- std per variant.

    The columns are named as :func:`volseg.evaluation.score_case` names them (the dataset's
    label names, :mod:`volseg.metrics.names`); nothing when the rows hold a single label.
    """
    columns = [k for k in (rows[0] if rows else {}) if any(k.startswith(f"{m}_") for m in metrics)]
    if len([c for c in columns if c.startswith(f"{metrics[0]}_")]) < 2:
        return []
    lines = [
        "",
        "Per label (mean +/- std over seeds and held-out cases):",
        "",
        "| variant | " + " | ".join(f"`{c}`" for c in columns) + " |",
        "|---|" + "---|" * len(columns),
    ]
    for name in names:
        cells = []
        for column in columns:
            values = np.array([r[column] for r in rows if r["variant"] == name], dtype=float)
            finite = values[np.isfinite(values)]
            cells.append(_mean_std(list(finite)) if finite.size else "n/a")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


def _mean_std(values: Sequence[float]) -> str:
    return f"{_fmt(float(np.mean(values)))} +/- {_fmt(float(np.std(values)))}"


def claim_line(result: ClaimResult) -> str:
    """One line: the claim, the verdict, both means, the difference, its interval and p."""
    c, s = result.claim, result.stats
    p_text = f"p = {s.p:.2g}" if s.p is not None else s.note
    better = "higher" if c.higher_is_better else "lower"
    return (
        f"{c.text} ({c.measure}, {better} is better): **{result.verdict}**. "
        f"{c.method} {_fmt(result.method_mean)} vs {c.baseline} {_fmt(result.baseline_mean)}; "
        f"difference {s.mean:+.3f}, 95% interval [{s.low:+.3f}, {s.high:+.3f}] over {s.n} "
        f"pairs {result.unit}; Wilcoxon signed-rank {p_text}"
    )


def _curve_lines(exp: Experiment, curves: Sequence[dict[str, Any]]) -> list[str]:
    """Per variant: each curve's last-epoch and mean-over-epochs value over runs (and the gap)."""
    lines = ["## Training curves (log.csv; mean +/- std over runs)", ""]
    for name in [v.name for v in exp.variants]:
        runs: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
        for row in curves:
            if row["variant"] == name:
                runs.setdefault((row["seed"], row.get("fold")), []).append(row)
        logs = [{c: [float(r[c]) for r in epochs] for c in exp.curves} for epochs in runs.values()]
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
