"""The experiments' PNG figures: Dice distributions, training curves, gradient norms."""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from volseg.experiments.base import PlotFn, Run

__all__ = ["plot_curves", "plot_dice_distribution", "plot_grad_norms", "read_log"]


def _save(fig: Any, path: Path) -> None:
    import matplotlib.pyplot as plt

    from volseg._atomic import atomic_path

    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)


def _figure() -> tuple[Any, Any]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=(6, 4), layout="constrained")


def plot_dice_distribution(out: Path, rows: Sequence[dict[str, Any]]) -> None:
    """``dice_distribution.png``: Dice over held-out cases and seeds per variant (V-Net Fig. 5)."""
    fig, ax = _figure()
    names = list(dict.fromkeys(r["variant"] for r in rows))
    data = [[r["dice"] for r in rows if r["variant"] == n] for n in names]
    ax.boxplot(data, showmeans=True)
    ax.set_xticks(range(1, len(names) + 1), names)
    for i, values in enumerate(data, start=1):
        ax.plot(
            np.full(len(values), i) + np.linspace(-0.1, 0.1, len(values)), values, ".", alpha=0.5
        )
    ax.set_ylabel("Dice per held-out case")
    ax.set_ylim(0, 1)
    _save(fig, out / "dice_distribution.png")


def read_log(run_dir: Path) -> dict[str, list[float]]:
    """``log.csv`` of a run as columns of floats (empty cells: NaN)."""
    with (run_dir / "log.csv").open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    return {
        k: [float(r[k]) if r[k] not in ("", None) else math.nan for r in rows]
        for k in (rows[0] if rows else {})
    }


def plot_curves(columns: Sequence[str], filename: str, ylabel: str) -> PlotFn:
    """A plot of ``log.csv`` columns against epochs, mean over seeds (and folds) per variant."""

    def plot(out: Path, runs: Sequence[Run]) -> None:
        fig, ax = _figure()
        for v_index, name in enumerate(dict.fromkeys(r.variant for r in runs)):
            logs = [read_log(r.run_dir) for r in runs if r.variant == name]
            for c_index, column in enumerate(columns):
                curves = np.array([log[column] for log in logs], dtype=float)
                epochs = np.arange(1, curves.shape[1] + 1)
                ax.plot(
                    epochs,
                    np.nanmean(curves, axis=0),
                    color=f"C{v_index}",
                    linestyle=("-", "--", ":")[c_index % 3],
                    marker=".",
                    label=f"{name} {column}",
                )
        ax.set_xlabel("epoch")
        ax.set_ylabel(ylabel)
        ax.legend(fontsize="small")
        _save(fig, out / filename)

    return plot


def plot_grad_norms(out: Path, runs: Sequence[Run]) -> None:
    """``grad_norms.png``: last epoch's per-layer gradient norm against depth, per variant.

    Mean over seeds (and folds), from each run's ``grad_norms.csv``
    (``train.runtime.log_grad_norms``). Only the layers every variant has are drawn (a
    projection shortcut exists only with short skips), in ``named_parameters`` order (input to
    output), so the x positions match across the lines.
    """
    norms: dict[str, list[dict[str, float]]] = {}
    order: list[str] = []
    for run in runs:
        with (run.run_dir / "grad_norms.csv").open(encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
        last = max(int(r["epoch"]) for r in rows)
        layers = {r["layer"]: float(r["norm"]) for r in rows if int(r["epoch"]) == last}
        norms.setdefault(run.variant, []).append(layers)
        order = order or list(layers)
    common = [name for name in order if all(name in d for ds in norms.values() for d in ds)]
    fig, ax = _figure()
    for v_index, (variant, dicts) in enumerate(norms.items()):
        mean = [float(np.mean([d[name] for d in dicts])) for name in common]
        ax.plot(np.arange(len(common)), mean, color=f"C{v_index}", marker=".", label=variant)
    ax.set_yscale("log")
    ax.set_xlabel(f"layer, input to output ({len(common)} layers every variant has)")
    ax.set_ylabel("gradient L2 norm, last epoch")
    ax.legend(fontsize="small")
    _save(fig, out / "grad_norms.png")
