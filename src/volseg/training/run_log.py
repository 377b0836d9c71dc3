"""What a run records, per epoch: ``log.csv``, TensorBoard event files and PNG plots.

* ``log.csv`` — one row per epoch: training loss, its terms (``train_loss_<term>``) and the
  batches' Dice (``train_dice``); validation loss and terms (``val_loss_<term>``), and every
  validation metric (mean ``val_<metric>`` and per class/region); learning rate, seconds;
* ``tensorboard/`` — the same scalars as real event files (``tensorboard --logdir RUN_DIR``);
* ``curves.png`` — training beside validation: loss (and shared terms) and Dice over epochs;
* with ``train.log_grad_norms``: ``grad_norms.csv`` (epoch, layer, mean L2 norm of the layer's
  weight gradient over the epoch's iterations) and ``grad_norms.png`` (norm against depth, one line
  per epoch), the gradient-flow view of Drozdzal et al. 2016.

On resume, rows and events after the resumed epoch (from an interrupted epoch) are dropped.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from volseg._atomic import atomic_path

__all__ = ["GradNormTracker", "RunLog", "plot_curves", "plot_grad_norms", "read_log"]


def _atomic_write_csv(path: Path, rows: Sequence[Mapping[str, object]]) -> None:
    columns: list[str] = []
    for row in rows:
        columns += [k for k in row if k not in columns]
    with atomic_path(path) as tmp, tmp.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, columns, restval="")
        writer.writeheader()
        writer.writerows(rows)


def read_log(path: str | Path) -> list[dict[str, float]]:
    """The rows of a ``log.csv`` as floats (empty cells become NaN)."""
    with Path(path).open(newline="", encoding="utf-8") as handle:
        return [
            {k: float(v) if v not in ("", None) else math.nan for k, v in row.items()}
            for row in csv.DictReader(handle)
        ]


def plot_curves(rows: Sequence[Mapping[str, float]], path: str | Path) -> None:
    """Training-curve PNG: losses (left), Dice (right), training beside validation.

    Left: ``train_loss`` and ``val_loss``, and dashed the terms both report (``*_loss_<term>``:
    for a VAE loss the validation total lacks the L2 and KL terms, so its Dice term is the fair
    comparison). Right: ``train_dice`` (training batches) and ``val_dice``, and thin the Dice of
    every label or region.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    epochs = [r["epoch"] for r in rows]
    keys = list(rows[-1]) if rows else []

    def plot(ax: Any, key: str, label: str, **style: Any) -> bool:
        values = [r.get(key, math.nan) for r in rows]
        if all(math.isnan(v) for v in values):
            return False
        ax.plot(epochs, values, marker=".", label=label, **style)
        return True

    fig, (ax_loss, ax_dice) = plt.subplots(1, 2, figsize=(10, 4))
    plot(ax_loss, "train_loss", "train")
    plot(ax_loss, "val_loss", "validation")
    train_terms = [k[len("train_loss_") :] for k in keys if k.startswith("train_loss_")]
    if len(train_terms) > 1:  # a one-term loss: its term is the total, already drawn
        for term in train_terms:
            if f"val_loss_{term}" in keys:
                plot(ax_loss, f"train_loss_{term}", f"train {term} term", linestyle="--")
                plot(ax_loss, f"val_loss_{term}", f"validation {term} term", linestyle="--")
    ax_loss.set(xlabel="epoch", ylabel="loss", title="loss")
    ax_loss.legend()
    shown = plot(ax_dice, "train_dice", "train (batches)")
    shown |= plot(ax_dice, "val_dice", "validation")
    for key in keys:
        if key.startswith("val_dice_"):
            shown |= plot(ax_dice, key, key[4:], linewidth=0.8, alpha=0.6)
    ax_dice.set(xlabel="epoch", ylabel="Dice", title="Dice", ylim=(0, 1))
    if shown:
        ax_dice.legend()
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)


def plot_grad_norms(rows: Sequence[tuple[int, str, float]], path: str | Path) -> None:
    """Per-layer gradient norm against depth (input to output), one line per epoch."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    epochs = sorted({e for e, _, _ in rows})
    layers: list[str] = []
    for _, layer, _ in rows:
        if layer not in layers:
            layers.append(layer)
    fig, ax = plt.subplots(figsize=(10, 4))
    cmap = plt.get_cmap("viridis")
    for i, epoch in enumerate(epochs):
        by_layer = {layer: norm for e, layer, norm in rows if e == epoch}
        ax.plot(
            range(len(layers)),
            [by_layer.get(layer, math.nan) for layer in layers],
            color=cmap(i / max(1, len(epochs) - 1)),
            label=f"epoch {epoch}" if i in (0, len(epochs) - 1) else None,
        )
    ax.set(yscale="log", xlabel="layer (input -> output)", ylabel="gradient L2 norm")
    ax.set_title("per-layer gradient norms (Drozdzal et al. 2016)")
    ax.legend()
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)


class RunLog:
    """``log.csv`` + TensorBoard + ``curves.png`` of a run directory (rank 0 only).

    Args:
        run_dir: the run directory.
        resume_epoch: last finished epoch when resuming (0 for a new run): older rows are kept,
            later ones dropped.
        tensorboard: also write TensorBoard event files under ``run_dir/tensorboard``.
    """

    def __init__(self, run_dir: str | Path, resume_epoch: int = 0, tensorboard: bool = True):
        from torch.utils.tensorboard import SummaryWriter

        self.run_dir = Path(run_dir)
        self.path = self.run_dir / "log.csv"
        self.rows: list[dict[str, float]] = []
        if resume_epoch and self.path.is_file():
            rows = [r for r in read_log(self.path) if r["epoch"] <= resume_epoch]
            # blank cells (epochs without validation) stay blank, not "nan"
            self.rows = [{k: v for k, v in r.items() if not math.isnan(v)} for r in rows]
        self.writer = (
            SummaryWriter(str(self.run_dir / "tensorboard"), purge_step=resume_epoch + 1)
            if tensorboard
            else None
        )

    def log_epoch(self, epoch: int, metrics: Mapping[str, float]) -> None:
        """Append one epoch's scalars and redraw the curves."""
        row = {"epoch": float(epoch), **{k: float(v) for k, v in metrics.items()}}
        self.rows.append(row)
        _atomic_write_csv(
            self.path,
            [
                {k: (int(v) if k == "epoch" else f"{v:.6g}") for k, v in r.items()}
                for r in self.rows
            ],
        )
        if self.writer is not None:
            for key, value in metrics.items():
                if not math.isnan(value):
                    self.writer.add_scalar(key, value, epoch)
            self.writer.flush()
        plot_curves(self.rows, self.run_dir / "curves.png")

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


class GradNormTracker:
    """Mean per-layer weight-gradient L2 norms over an epoch's iterations (Drozdzal et al.).

    Call :meth:`accumulate` after each backward pass (gradients unscaled), :meth:`finish_epoch`
    at the end of the epoch; it appends to ``grad_norms.csv``, TensorBoard (``grad_norm/LAYER``)
    and redraws ``grad_norms.png``. A layer is a parameter with at least 2 dimensions (a
    convolution or linear weight), named after its module.
    """

    def __init__(self, run_dir: str | Path, resume_epoch: int = 0, writer: object = None):
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / "grad_norms.csv"
        self.writer = writer
        self.sums: dict[str, float] = {}
        self.count = 0
        self.rows: list[tuple[int, str, float]] = []
        if resume_epoch and self.path.is_file():
            with self.path.open(newline="", encoding="utf-8") as handle:
                for row in csv.DictReader(handle):
                    if int(row["epoch"]) <= resume_epoch:
                        self.rows.append((int(row["epoch"]), row["layer"], float(row["norm"])))

    def accumulate(self, model: nn.Module) -> None:
        with torch.no_grad():
            for name, param in model.named_parameters():
                if param.grad is None or param.ndim < 2:
                    continue
                layer = name.removeprefix("module.").removesuffix(".weight")
                norm = float(param.grad.detach().float().norm())
                self.sums[layer] = self.sums.get(layer, 0.0) + norm
        self.count += 1

    def finish_epoch(self, epoch: int) -> dict[str, float]:
        norms = {k: v / max(1, self.count) for k, v in self.sums.items()}
        self.sums, self.count = {}, 0
        self.rows += [(epoch, layer, norm) for layer, norm in norms.items()]
        _atomic_write_csv(
            self.path,
            [{"epoch": e, "layer": layer, "norm": f"{n:.6g}"} for e, layer, n in self.rows],
        )
        add_scalar = getattr(self.writer, "add_scalar", None)
        if add_scalar is not None:
            for layer, norm in norms.items():
                add_scalar(f"grad_norm/{layer}", norm, epoch)
        plot_grad_norms(self.rows, self.run_dir / "grad_norms.png")
        return norms
