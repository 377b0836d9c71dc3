"""The training loop: patches in, a trained model, checkpoints and a CSV log out.

``train(config)`` finds the cases, preprocesses them once (kept in memory), trains on random
augmented patches, validates the whole held-out cases every epoch (mean foreground Dice on the
preprocessed grid) and writes, in ``config.run_dir``:

* ``config.yaml`` — the resolved configuration;
* ``log.csv`` — one row per epoch (loss, validation Dice, learning rate, time);
* ``checkpoint_last.pt`` and ``checkpoint_best.pt`` — written atomically.
"""

from __future__ import annotations

import csv
import dataclasses
import math
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from volseg.config import Config, TrainConfig, config_to_dict, dump_config
from volseg.data.layouts import Case, find_cases
from volseg.data.sampling import LoadedCase, PatchDataset, load_case
from volseg.losses import create_loss
from volseg.metrics import dice
from volseg.nn import create_model
from volseg.nn.sliding_window import sliding_window_forward
from volseg.training.checkpoint import Checkpoint, save_checkpoint

__all__ = ["TrainResult", "build_model", "build_optimizer", "split_cases", "train"]


@dataclass(frozen=True)
class TrainResult:
    """Where a run went and how it ended."""

    run_dir: Path
    epochs: int
    best_epoch: int
    best_dice: float | None
    seconds: float


def build_model(config: Config, in_channels: int, num_classes: int) -> nn.Module:
    """The configured network with channel counts taken from the data."""
    kwargs = dict(config.model.kwargs)
    for key, value in (("in_channels", in_channels), ("out_channels", num_classes)):
        if key in kwargs and kwargs[key] != value:
            raise ValueError(f"model.kwargs.{key}={kwargs[key]} but the data implies {value}")
        kwargs[key] = value
    return create_model(config.model.name, **kwargs)


def build_optimizer(train: TrainConfig, params: Sequence[nn.Parameter]) -> torch.optim.Optimizer:
    """SGD (with momentum), Adam or AdamW from the config."""
    name = train.optimizer.lower()
    if name == "sgd":
        return torch.optim.SGD(
            params, lr=train.lr, momentum=train.momentum, weight_decay=train.weight_decay
        )
    if name == "adam":
        return torch.optim.Adam(params, lr=train.lr, weight_decay=train.weight_decay)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=train.lr, weight_decay=train.weight_decay)
    raise ValueError(f"unknown optimizer {train.optimizer!r}; use sgd, adam or adamw")


def split_cases(cases: Sequence[Case], config: Config) -> tuple[list[Case], list[Case]]:
    """Training and validation cases: ``data.val_cases`` if given, else a seeded fraction."""
    ids = [c.case_id for c in cases]
    if config.data.val_cases:
        unknown = sorted(set(config.data.val_cases) - set(ids))
        if unknown:
            raise ValueError(f"data.val_cases not in the dataset: {', '.join(unknown)}")
        val_ids = set(config.data.val_cases)
    elif len(cases) < 2 or config.data.val_fraction <= 0:
        val_ids = set()
    else:
        n_val = max(1, round(len(cases) * config.data.val_fraction))
        order = np.random.default_rng(config.train.seed).permutation(len(cases))
        val_ids = {ids[i] for i in order[:n_val]}
    return [c for c in cases if c.case_id not in val_ids], [
        c for c in cases if c.case_id in val_ids
    ]


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _autocast(amp: str) -> torch.autocast:
    if amp not in ("none", "bf16"):
        raise ValueError(f"train.amp must be 'none' or 'bf16', got {amp!r}")
    return torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp == "bf16")


def validate(model: nn.Module, cases: Sequence[LoadedCase], config: Config, divisor: int) -> float:
    """Mean foreground Dice over the validation cases on their preprocessed grids."""
    model.eval()
    scores = []
    with _autocast(config.train.amp):
        for case in cases:
            logits = sliding_window_forward(
                model,
                case.image,
                config.infer.window,
                config.infer.overlap,
                config.infer.batch_size,
                divisor,
            )
            pred = logits.argmax(0).numpy()
            target = case.target[0].numpy()
            for k in range(1, logits.shape[0]):
                scores.append(dice(pred == k, target == k))
    model.train()
    return float(np.mean(scores)) if scores else math.nan


def _load_cases(
    cases: Sequence[Case], config: Config, labels: Sequence[int], channels: int, dims: int
) -> list[LoadedCase]:
    loaded = []
    for case in tqdm(cases, desc="loading", leave=False, disable=len(cases) < 3):
        item = load_case(case, config.preprocess, labels, channels)
        if item.image.ndim - 1 != dims:
            raise ValueError(
                f"{case.images[0]}: {item.image.ndim - 1}-D image, but train.patch_size "
                f"{config.train.patch_size} is {dims}-D"
            )
        loaded.append(item)
    return loaded


def train(config: Config, progress: bool = True) -> TrainResult:
    """Train the configured model; see the module docstring for what lands in the run dir."""
    start_time = time.monotonic()
    tcfg = config.train
    _seed_everything(tcfg.seed)
    if tcfg.threads:
        torch.set_num_threads(tcfg.threads)
    dataset = find_cases(config.data.root, config.data.layout)
    labels = list(config.data.labels or dataset.labels or (0, 1))
    channels = len(dataset.channel_names) or len(dataset.cases[0].images)
    train_cases, val_cases = split_cases(dataset.cases, config)
    dims = len(tcfg.patch_size)
    train_loaded = _load_cases(train_cases, config, labels, channels, dims)
    val_loaded = _load_cases(val_cases, config, labels, channels, dims)

    run_dir = Path(config.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    config = dataclasses.replace(
        config, data=dataclasses.replace(config.data, labels=tuple(labels))
    )
    dump_config(config, run_dir / "config.yaml")

    model = build_model(config, channels, len(labels))
    divisor = int(getattr(model, "divisor", 1))
    bad = [p for p in tcfg.patch_size if p % divisor]
    if bad:
        raise ValueError(f"train.patch_size {tcfg.patch_size} must be divisible by {divisor}")
    loss_fn = create_loss(config.loss.name, **config.loss.kwargs)
    optimizer = build_optimizer(tcfg, list(model.parameters()))
    patches = PatchDataset(
        train_loaded,
        tcfg.patch_size,
        config.augment,
        tcfg.foreground_ratio,
        tcfg.iterations_per_epoch * tcfg.batch_size,
        tcfg.seed,
    )
    loader = DataLoader(
        patches, batch_size=tcfg.batch_size, shuffle=False, num_workers=tcfg.num_workers
    )
    records = {c.case_id: c.record.to_dict() for c in train_loaded + val_loaded}

    best_dice, best_epoch = -math.inf, 0
    log_path = run_dir / "log.csv"
    with log_path.open("w", newline="") as log_file:
        log = csv.writer(log_file)
        log.writerow(["epoch", "train_loss", "val_dice", "lr", "seconds"])
        epoch = 0
        for epoch in range(1, tcfg.epochs + 1):
            patches.set_epoch(epoch)
            model.train()
            losses = []
            bar = tqdm(
                loader, desc=f"epoch {epoch}/{tcfg.epochs}", disable=not progress, leave=False
            )
            for image, target in bar:
                optimizer.zero_grad(set_to_none=True)
                with _autocast(tcfg.amp):
                    output = model(image)
                loss = loss_fn(output.float(), target)
                loss.backward()
                optimizer.step()
                losses.append(float(loss.detach()))
                bar.set_postfix(loss=f"{losses[-1]:.4f}")
            val_dice = validate(model, val_loaded, config, divisor) if val_loaded else math.nan
            elapsed = time.monotonic() - start_time
            lr = optimizer.param_groups[0]["lr"]
            log.writerow([epoch, f"{np.mean(losses):.6f}", f"{val_dice:.6f}", lr, f"{elapsed:.1f}"])
            log_file.flush()
            checkpoint = Checkpoint(
                model=model.state_dict(),
                config=config_to_dict(config),
                labels=labels,
                in_channels=channels,
                epoch=epoch,
                optimizer=optimizer.state_dict(),
                metrics={"train_loss": float(np.mean(losses)), "val_dice": val_dice},
                records=records,
            )
            save_checkpoint(checkpoint, run_dir / "checkpoint_last.pt")
            # without validation cases the latest model is the best one we can name
            score = val_dice if val_loaded else float(epoch)
            if score > best_dice:
                best_dice, best_epoch = score, epoch
                save_checkpoint(checkpoint, run_dir / "checkpoint_best.pt")
            if progress:
                shown = f"{val_dice:.4f}" if val_loaded else "n/a (no validation cases)"
                tqdm.write(
                    f"epoch {epoch}: loss {np.mean(losses):.4f}, val Dice {shown}, {elapsed:.0f} s"
                )
            if tcfg.max_minutes is not None and elapsed > tcfg.max_minutes * 60:
                if progress:
                    tqdm.write(f"stopping: time budget of {tcfg.max_minutes} min reached")
                break
    return TrainResult(
        run_dir,
        epoch,
        best_epoch,
        best_dice if val_loaded else None,
        time.monotonic() - start_time,
    )
