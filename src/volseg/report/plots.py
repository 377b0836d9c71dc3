"""The report's figures, drawn with matplotlib and returned as ``data:image/png`` URIs.

A figure whose data is absent returns None, and a panel with nothing to draw is left out, so a
run without a validation set gets no empty validation panel.
"""

from __future__ import annotations

import base64
import csv
import io
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "dice_distribution",
    "figure_uri",
    "grad_norm_plot",
    "lr_plot",
    "new_figure",
    "paired_plot",
    "read_csv_floats",
    "training_curves",
]


def read_csv_floats(path: Path) -> list[dict[str, float]]:
    """A CSV's rows with every cell a float (empty or text cells become NaN)."""

    def number(text: str | None) -> float:
        try:
            return float(text) if text not in ("", None) else math.nan
        except ValueError:
            return math.nan

    with path.open(newline="", encoding="utf-8") as handle:
        return [{k: number(v) for k, v in row.items()} for row in csv.DictReader(handle)]


def figure_uri(fig: Any) -> str:
    """A figure as a PNG ``data:`` URI (100 dpi), to inline in a self-contained page."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def new_figure(width: float, height: float, panels: int = 1) -> tuple[Any, list[Any]]:
    """A constrained-layout figure (no pyplot state) and its ``panels`` axes in one row."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    return fig, list(fig.subplots(1, panels, squeeze=False)[0])


def _has(rows: Sequence[Mapping[str, float]], key: str) -> bool:
    return any(math.isfinite(r.get(key, math.nan)) for r in rows)


def dice_distribution(rows: Sequence[Mapping[str, object]]) -> str | None:
    """Dice over cases, one box (and the cases as dots) per label: V-Net's Fig. 5 view."""
    keys = [k for k in (rows[0] if rows else {}) if k.startswith("dice_")]
    if not keys:
        return None
    fig, (ax,) = new_figure(1.6 + 1.2 * len(keys), 3.2)
    data = [np.array([float(str(r[k])) for r in rows], dtype=float) for k in keys]
    ax.boxplot(data, showfliers=False)
    rng = np.random.default_rng(0)
    for i, values in enumerate(data, start=1):
        ax.plot(i + rng.uniform(-0.12, 0.12, values.size), values, "o", alpha=0.6, ms=4)
    ax.set_xticks(range(1, len(keys) + 1), [k.removeprefix("dice_") for k in keys])
    ax.set(ylabel="Dice", xlabel="label", ylim=(0, 1.02), title=f"Dice over {len(rows)} case(s)")
    return figure_uri(fig)


def training_curves(log: Sequence[Mapping[str, float]]) -> str | None:
    """Loss (train, validation) and Dice (train batches, validation) against epoch."""
    epochs = [r.get("epoch", math.nan) for r in log]
    loss = [k for k in ("train_loss", "val_loss") if _has(log, k)]
    dice = [k for k in ("train_dice", "val_dice") if _has(log, k)]
    panels = [(name, keys) for name, keys in (("loss", loss), ("Dice", dice)) if keys]
    if not panels:
        return None
    fig, axes = new_figure(4.2 * len(panels), 3.2, len(panels))
    names = {"train_loss": "train", "val_loss": "validation", "train_dice": "train (batches)"}
    for ax, (name, keys) in zip(axes, panels, strict=True):
        for key in keys:
            values = [r.get(key, math.nan) for r in log]
            ax.plot(epochs, values, marker=".", label=names.get(key, "validation"))
        ax.set(xlabel="epoch", ylabel=name, title=name)
        if name == "Dice":
            ax.set_ylim(0, 1)
        ax.legend()
    return figure_uri(fig)


def lr_plot(log: Sequence[Mapping[str, float]]) -> str | None:
    """The learning rate against epoch."""
    if not _has(log, "lr"):
        return None
    fig, (ax,) = new_figure(4.2, 2.6)
    ax.plot([r["epoch"] for r in log], [r.get("lr", math.nan) for r in log], marker=".")
    ax.set(xlabel="epoch", ylabel="learning rate", title="learning rate")
    return figure_uri(fig)


def grad_norm_plot(path: Path) -> str | None:
    """Per-layer gradient norm against depth, one line per logged epoch (``grad_norms.csv``)."""
    if not path.is_file():
        return None
    with path.open(newline="", encoding="utf-8") as handle:
        rows = [(int(r["epoch"]), r["layer"], float(r["norm"])) for r in csv.DictReader(handle)]
    if not rows:
        return None
    layers = list(dict.fromkeys(layer for _, layer, _ in rows))
    epochs = sorted({e for e, _, _ in rows})
    fig, (ax,) = new_figure(7.0, 3.2)
    from matplotlib import colormaps

    cmap = colormaps["viridis"]
    for i, epoch in enumerate(epochs):
        norms = {layer: n for e, layer, n in rows if e == epoch}
        ax.plot(
            range(len(layers)),
            [norms.get(layer, math.nan) for layer in layers],
            color=cmap(i / max(1, len(epochs) - 1)),
            label=f"epoch {epoch}" if i in (0, len(epochs) - 1) else None,
        )
    ax.set(yscale="log", xlabel="layer (input -> output)", ylabel="gradient L2 norm")
    ax.set_title("per-layer gradient norms")
    ax.legend()
    return figure_uri(fig)


def paired_plot(metric: str, names: Sequence[str], values: Sequence[Sequence[float]]) -> str:
    """One line per case joining its score under each method (``values[method][case]``)."""
    fig, (ax,) = new_figure(1.8 + 1.3 * len(names), 3.4)
    table = np.asarray(values, dtype=float)
    x = np.arange(len(names))
    for case in range(table.shape[1]):
        ax.plot(x, table[:, case], "-o", color="0.4", alpha=0.5, ms=3, lw=0.8)
    ax.plot(
        x,
        np.nanmean(np.where(np.isfinite(table), table, np.nan), axis=1),
        "-s",
        lw=2,
        color="tab:red",
        label="mean",
    )
    ax.set_xticks(x, list(names))
    ax.set(ylabel=metric, title=f"{metric}: one line per case")
    ax.legend()
    return figure_uri(fig)
