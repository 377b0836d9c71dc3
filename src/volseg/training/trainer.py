"""The training loop: patches in, a trained model, checkpoints and logs out.

``train(config)`` finds the cases, preprocesses them once (kept in memory), trains on random
augmented patches, validates the whole held-out cases every epoch (Dice on the preprocessed grid,
per class or region and their mean) and writes, in ``config.run_dir``:

* ``config.yaml`` — the resolved configuration;
* ``log.csv``, ``tensorboard/``, ``curves.png`` (and ``grad_norms.*``) — see
  :mod:`volseg.training.run_log`;
* ``checkpoint_last.pt`` (every epoch) and ``checkpoint_best.pt`` (best validation Dice) —
  written atomically, holding everything needed to resume exactly.

The loop itself is small; everything else is a :class:`Callback` (logging, checkpoints, gradient
norms, your own) that sees the :class:`TrainState`. Two label regimes: a softmax over exclusive
labels (default), or one sigmoid channel per region (``train.regions``, e.g. BraTS WT/TC/ET).
``train(config, resume=True)`` continues from ``checkpoint_last.pt``: model, optimiser,
scheduler, gradient scaler, RNG states, best metric and early-stopping state, so N epochs
straight and N/2 + resume + N/2 give identical weights. Under ``torchrun`` it trains with DDP
(see :mod:`volseg.training.distributed`).
"""

from __future__ import annotations

import dataclasses
import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader
from torch.utils.data.distributed import DistributedSampler
from tqdm import tqdm

from volseg.config import Config, config_to_dict, dump_config
from volseg.data.layouts import Case, find_cases
from volseg.data.sampling import LoadedCase, PatchDataset, load_case
from volseg.losses import create_loss
from volseg.metrics import dice
from volseg.nn import create_model
from volseg.nn.sliding_window import runs_on, sliding_window_forward
from volseg.regions import Region, batch_labels_to_regions, get_regions
from volseg.training.checkpoint import (
    Checkpoint,
    CheckpointError,
    capture_rng_state,
    load_checkpoint,
    restore_rng_state,
    save_checkpoint,
)
from volseg.training.distributed import DistInfo, all_reduce_sum, init_distributed, shutdown
from volseg.training.run_log import GradNormTracker, RunLog
from volseg.training.schedules import EarlyStopping, build_optimizer, build_scheduler

__all__ = [
    "Callback",
    "TrainResult",
    "TrainState",
    "build_model",
    "build_optimizer",
    "region_targets",
    "resolve_regions",
    "split_cases",
    "train",
    "train_step",
    "validate",
]


@dataclass(frozen=True)
class TrainResult:
    """Where a run went and how it ended (``stop_reason``: None when all epochs ran)."""

    run_dir: Path
    epochs: int
    best_epoch: int
    best_dice: float | None
    seconds: float
    stop_reason: str | None = None


@dataclass
class TrainState:
    """Everything the loop and its callbacks share; ``epoch``/``step`` count finished ones."""

    config: Config
    run_dir: Path
    model: nn.Module  # the plain model (not the DDP wrapper)
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler
    dist: DistInfo
    labels: list[int]
    in_channels: int
    records: dict[str, Any]
    early_stopping: EarlyStopping
    regions: tuple[Region, ...] | None = None
    epoch: int = 0
    step: int = 0
    best_metric: float = -math.inf
    best_epoch: int = 0
    improved: bool = False
    metrics: dict[str, float] = field(default_factory=dict)
    stop_reason: str | None = None
    seconds_before: float = 0.0  # training time of earlier sessions of a resumed run

    def trainer_state(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "best_metric": self.best_metric,
            "best_epoch": self.best_epoch,
            "early_stopping": self.early_stopping.state_dict(),
            "stop_reason": self.stop_reason,
        }

    def checkpoint(self) -> Checkpoint:
        """A checkpoint of the state now (RNG states included)."""
        return Checkpoint(
            model=self.model.state_dict(),
            config=config_to_dict(self.config),
            labels=self.labels,
            in_channels=self.in_channels,
            epoch=self.epoch,
            optimizer=self.optimizer.state_dict(),
            metrics=dict(self.metrics),
            records=self.records,
            scheduler=self.scheduler.state_dict(),
            scaler=self.scaler.state_dict(),
            rng=capture_rng_state(),
            trainer=self.trainer_state(),
        )


class Callback:
    """Hooks into the loop; override any. Called on every rank (check ``state.dist.is_main``)."""

    def on_train_start(self, state: TrainState) -> None:
        """After setup (and after loading the checkpoint when resuming)."""

    def on_after_backward(self, state: TrainState) -> None:
        """Gradients are ready and unscaled, before clipping and the optimiser step."""

    def on_epoch_end(self, state: TrainState) -> None:
        """``state.metrics`` holds the epoch's scalars; ``state.stop_reason`` may be set."""

    def on_train_end(self, state: TrainState) -> None:
        """Always called, also when training fails."""


class CheckpointSaver(Callback):
    """Rank 0 writes ``checkpoint_last.pt`` every epoch and ``checkpoint_best.pt`` on a gain."""

    def on_epoch_end(self, state: TrainState) -> None:
        if not state.dist.is_main:
            return
        checkpoint = state.checkpoint()
        save_checkpoint(checkpoint, state.run_dir / "checkpoint_last.pt")
        if state.improved:
            save_checkpoint(checkpoint, state.run_dir / "checkpoint_best.pt")


class LogWriter(Callback):
    """Rank 0 writes ``log.csv``, TensorBoard events, curves and (optionally) gradient norms."""

    def __init__(self, grad_norms: bool = False) -> None:
        self.grad_norms = grad_norms
        self.log: RunLog | None = None
        self.tracker: GradNormTracker | None = None

    def on_train_start(self, state: TrainState) -> None:
        if not state.dist.is_main:
            return
        self.log = RunLog(state.run_dir, resume_epoch=state.epoch)
        if self.grad_norms:
            self.tracker = GradNormTracker(state.run_dir, state.epoch, self.log.writer)

    def on_after_backward(self, state: TrainState) -> None:
        if self.tracker is not None:
            self.tracker.accumulate(state.model)

    def on_epoch_end(self, state: TrainState) -> None:
        if self.log is not None:
            self.log.log_epoch(state.epoch, state.metrics)
        if self.tracker is not None:
            self.tracker.finish_epoch(state.epoch)

    def on_train_end(self, state: TrainState) -> None:
        if self.log is not None:
            self.log.close()


def build_model(config: Config, in_channels: int, num_classes: int) -> nn.Module:
    """The configured network with channel counts taken from the data.

    With ``train.regions`` the network has one output channel per region (sigmoid regime) and
    ``num_classes`` is ignored.
    """
    kwargs = dict(config.model.kwargs)
    regions = resolve_regions(config)
    out_channels = len(regions) if regions else num_classes
    for key, value in (("in_channels", in_channels), ("out_channels", out_channels)):
        if key in kwargs and kwargs[key] != value:
            raise ValueError(f"model.kwargs.{key}={kwargs[key]} but the data implies {value}")
        kwargs[key] = value
    return create_model(config.model.name, **kwargs)


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


def resolve_regions(config: Config) -> tuple[Region, ...] | None:
    """The regions of ``train.regions`` (``brats`` or label-value groups), or None (softmax)."""
    spec = config.train.regions
    if spec is None:
        return None
    if isinstance(spec, str):
        try:
            return get_regions(spec)
        except ValueError as err:
            raise ValueError(f"train.regions: {err}") from None
    if not spec or not all(spec):
        raise ValueError(f"train.regions: expected non-empty label groups, got {spec}")
    return tuple(Region(f"r{i}", tuple(group)) for i, group in enumerate(spec))


def region_targets(
    target: torch.Tensor, labels: Sequence[int], regions: Sequence[Region]
) -> torch.Tensor:
    """Class indices ``(B, 1, *spatial)`` -> float region masks ``(B, R, *spatial)``.

    Index ``k`` stands for label value ``labels[k]``; region ``r`` is on where that value is in
    ``regions[r].labels`` (:func:`volseg.regions.batch_labels_to_regions`).
    """
    values = torch.tensor(list(labels), device=target.device)[target.long()]
    return batch_labels_to_regions(values, regions).float()


def _seed_everything(seed: int, deterministic: bool) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(deterministic, warn_only=True)
    torch.backends.cudnn.deterministic = deterministic
    torch.backends.cudnn.benchmark = not deterministic


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name not in ("cpu", "cuda"):
        raise ValueError(f"train.device must be auto, cpu or cuda, got {name!r}")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("train.device is cuda but no CUDA device is available")
    return torch.device(name)


def _autocast(amp: str, device: torch.device) -> torch.autocast:
    """bf16 autocast on CPU or CUDA, fp16 on CUDA only, or a disabled context."""
    if amp not in ("none", "bf16", "fp16"):
        raise ValueError(f"train.amp must be none, bf16 or fp16, got {amp!r}")
    if amp == "fp16" and device.type != "cuda":
        raise ValueError("train.amp fp16 needs CUDA; use bf16 on CPU")
    dtype = torch.float16 if amp == "fp16" else torch.bfloat16
    return torch.autocast(device.type, dtype=dtype, enabled=amp != "none")


def _to_float(output: Any) -> Any:
    """The network output in fp32: a tensor, or a (named) tuple / dataclass of tensors."""
    if isinstance(output, torch.Tensor):
        return output.float()
    if dataclasses.is_dataclass(output) and not isinstance(output, type):
        return dataclasses.replace(
            output,
            **{
                f.name: _to_float(getattr(output, f.name))
                for f in dataclasses.fields(output)
                if isinstance(getattr(output, f.name), torch.Tensor)
            },
        )
    if isinstance(output, tuple):
        items = [_to_float(o) for o in output]
        return type(output)(*items) if hasattr(output, "_fields") else tuple(items)
    return output


def _loss_terms(
    loss_fn: nn.Module, output: Any, target: torch.Tensor, image: torch.Tensor
) -> tuple[torch.Tensor, dict[str, float]]:
    """The total loss and every term to log: ``{"loss": total, **result.terms}`` as floats.

    Every registered loss takes ``(output, target, image)`` (logits or a VAE output) and returns
    a :class:`~volseg.losses.LossOutput`.
    """
    result = loss_fn(output, target, image)
    terms = {name: float(value.detach()) for name, value in result.terms.items()}
    return result.total, {"loss": float(result.total.detach()), **terms}


def train_step(
    model: nn.Module,
    image: torch.Tensor,
    target: torch.Tensor,
    loss_fn: nn.Module,
    state: TrainState,
    device: torch.device,
    after_backward: Callable[[], None] = lambda: None,
) -> dict[str, float]:
    """One optimiser step on a batch: forward under autocast, backward through the scaler,
    optional gradient clipping, optimiser and scheduler step. Returns the loss terms.

    Args:
        model: the network to call (the DDP wrapper under DDP).
        image: ``(B, C, *spatial)``; target: ``(B, 1, *spatial)`` class indices.
    """
    tcfg = state.config.train
    image, target = image.to(device), target.to(device)
    if state.regions:
        target = region_targets(target, state.labels, state.regions)
    state.optimizer.zero_grad(set_to_none=True)
    with _autocast(tcfg.amp, device):
        output = model(image)
    total, terms = _loss_terms(loss_fn, _to_float(output), target, image)
    state.scaler.scale(total).backward()
    state.scaler.unscale_(state.optimizer)
    after_backward()
    if tcfg.grad_clip is not None:
        torch.nn.utils.clip_grad_norm_(model.parameters(), tcfg.grad_clip)
    state.scaler.step(state.optimizer)
    state.scaler.update()
    state.scheduler.step()
    return terms


def validate(
    model: nn.Module,
    cases: Sequence[LoadedCase],
    config: Config,
    divisor: int,
    labels: Sequence[int] = (),
    loss_fn: nn.Module | None = None,
) -> dict[str, list[float]]:
    """Per-case scores on the preprocessed grids, keyed ``val_dice_<name>`` and ``val_loss``.

    Softmax regime: Dice of ``argmax == k`` per foreground class (name = label value). Region
    regime: Dice of ``sigmoid > 0.5`` per region (name = region name, e.g. ``WT``). ``val_loss``
    is the training loss on the whole case's logits (for a VAE loss its Dice term: the VAE
    branch is off in eval mode).
    """
    model.eval()
    regions = resolve_regions(config)
    device = next(model.parameters()).device
    # the same keys on every rank, even one without cases (DDP all-reduces them)
    names = [r.name for r in regions] if regions else [str(k) for k in labels[1:]]
    scores: dict[str, list[float]] = {f"val_dice_{name}": [] for name in names}
    if loss_fn is not None:
        scores["val_loss"] = []
    with _autocast(config.train.amp, device):
        for case in cases:
            logits = sliding_window_forward(
                model,
                case.image,
                config.infer.window,
                config.infer.overlap,
                config.infer.batch_size,
                divisor,
                blend=config.infer.blend,  # validate as inference will predict
                model_dims=len(config.train.patch_size),
            )
            target = case.target[None]
            if regions:
                target = region_targets(target, labels, regions)
                masks = (logits > 0).numpy()  # sigmoid > 0.5
                truth = target[0].numpy() > 0.5
                for r, region in enumerate(regions):
                    scores.setdefault(f"val_dice_{region.name}", []).append(
                        dice(masks[r], truth[r])
                    )
            else:
                pred = logits.argmax(0).numpy()
                truth = case.target[0].numpy()
                for k in range(1, logits.shape[0]):
                    name = labels[k] if labels else k
                    scores.setdefault(f"val_dice_{name}", []).append(dice(pred == k, truth == k))
            if loss_fn is not None:  # a VAE loss given plain logits scores its Dice term
                loss = loss_fn(logits[None], target)
                scores.setdefault("val_loss", []).append(float(loss.total))
    model.train()
    return scores


def _load_cases(
    cases: Sequence[Case], config: Config, labels: Sequence[int], channels: int, dims: int
) -> list[LoadedCase]:
    loaded = []
    for case in tqdm(cases, desc="loading", leave=False, disable=len(cases) < 3):
        item = load_case(case, config.preprocess, labels, channels)
        image_dims = item.image.ndim - 1
        if not runs_on(dims, image_dims):
            raise ValueError(
                f"{case.images[0]}: {image_dims}-D image, but train.patch_size "
                f"{config.train.patch_size} is {dims}-D"
            )
        loaded.append(item)
    return loaded


def _reduce_means(sums: dict[str, list[float]], info: DistInfo) -> dict[str, float]:
    """Means over all ranks of per-rank lists of values (same keys on every rank)."""
    keys = sorted(sums)
    totals = all_reduce_sum([sum(sums[k]) for k in keys] + [len(sums[k]) for k in keys], info)
    n = len(keys)
    return {k: totals[i] / totals[n + i] if totals[n + i] else math.nan for i, k in enumerate(keys)}


def _resume(state: TrainState, path: Path) -> None:
    checkpoint = load_checkpoint(path)
    if checkpoint.rng is None or checkpoint.scheduler is None or checkpoint.optimizer is None:
        raise CheckpointError(f"{path}: written by an older volseg; cannot resume exactly")
    state.model.load_state_dict(checkpoint.model)
    state.optimizer.load_state_dict(checkpoint.optimizer)
    state.scheduler.load_state_dict(checkpoint.scheduler)
    if checkpoint.scaler:
        state.scaler.load_state_dict(checkpoint.scaler)
    trainer = checkpoint.trainer
    state.epoch = checkpoint.epoch
    state.step = int(trainer["step"])
    state.best_metric = float(trainer["best_metric"])
    state.best_epoch = int(trainer["best_epoch"])
    state.seconds_before = float(checkpoint.metrics.get("seconds", 0.0))
    state.early_stopping.load_state_dict(trainer["early_stopping"])
    state.metrics = dict(checkpoint.metrics)
    restore_rng_state(checkpoint.rng)


def train(
    config: Config,
    progress: bool = True,
    callbacks: Sequence[Callback] = (),
    resume: bool = False,
) -> TrainResult:
    """Train the configured model; see the module docstring for what lands in the run dir.

    Args:
        config: the run's configuration.
        progress: show a progress bar (with ETA over the whole run) and one line per epoch.
        callbacks: extra hooks, called after the built-in logging and checkpointing ones.
        resume: continue from ``run_dir/checkpoint_last.pt``; ``train.epochs`` may be raised to
            extend a finished run.
    """
    start_time = time.monotonic()
    tcfg = config.train
    device = _device(tcfg.device)
    info = init_distributed(device.type)
    if device.type == "cuda" and info.enabled:
        device = torch.device("cuda", info.local_rank)
    hooks: list[Callback] = [LogWriter(tcfg.log_grad_norms), CheckpointSaver(), *callbacks]
    state: TrainState | None = None
    try:
        _seed_everything(tcfg.seed, tcfg.deterministic)
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
        config = dataclasses.replace(
            config, data=dataclasses.replace(config.data, labels=tuple(labels))
        )
        if info.is_main:
            run_dir.mkdir(parents=True, exist_ok=True)
            dump_config(config, run_dir / "config.yaml")

        model = build_model(config, channels, len(labels)).to(device)
        divisor = int(getattr(model, "divisor", 1))
        bad = [p for p in tcfg.patch_size if p % divisor]
        if bad:
            raise ValueError(f"train.patch_size {tcfg.patch_size} must be divisible by {divisor}")
        loss_fn = create_loss(config.loss.name, **config.loss.kwargs).to(device)
        optimizer = build_optimizer(tcfg, list(model.parameters()))
        scaler = torch.amp.GradScaler(device.type, enabled=tcfg.amp == "fp16")
        state = TrainState(
            config=config,
            run_dir=run_dir,
            model=model,
            optimizer=optimizer,
            scheduler=build_scheduler(tcfg, optimizer),
            scaler=scaler,
            dist=info,
            labels=labels,
            in_channels=channels,
            records={c.case_id: c.record.to_dict() for c in train_loaded + val_loaded},
            early_stopping=EarlyStopping(
                tcfg.early_stopping_patience, tcfg.early_stopping_min_delta
            ),
            regions=resolve_regions(config),
        )
        if resume:
            _resume(state, run_dir / "checkpoint_last.pt")
        return _run(state, hooks, train_loaded, val_loaded, loss_fn, device, progress, start_time)
    finally:
        if state is not None:
            for hook in hooks:
                hook.on_train_end(state)
        shutdown()


def _run(
    state: TrainState,
    hooks: Sequence[Callback],
    train_loaded: Sequence[LoadedCase],
    val_loaded: Sequence[LoadedCase],
    loss_fn: nn.Module,
    device: torch.device,
    progress: bool,
    start_time: float,
) -> TrainResult:
    config, tcfg, info = state.config, state.config.train, state.dist
    patches = PatchDataset(
        train_loaded,
        tcfg.patch_size,
        config.augment,
        tcfg.foreground_ratio,
        tcfg.iterations_per_epoch * tcfg.batch_size * info.world_size,
        tcfg.seed,
    )
    sampler: DistributedSampler[int] | None = (
        DistributedSampler(patches, info.world_size, info.rank, shuffle=False)
        if info.enabled
        else None
    )
    loader = DataLoader(
        patches,
        batch_size=tcfg.batch_size,
        shuffle=False,
        sampler=sampler,
        num_workers=tcfg.num_workers,
    )
    model: nn.Module = state.model
    if info.enabled:
        model = nn.parallel.DistributedDataParallel(
            state.model, device_ids=[device.index] if device.type == "cuda" else None
        )
    divisor = int(getattr(state.model, "divisor", 1))
    for hook in hooks:
        hook.on_train_start(state)
    total_steps = tcfg.epochs * tcfg.iterations_per_epoch
    bar = tqdm(
        total=total_steps,
        initial=min(state.step, total_steps),
        desc="training",
        unit="it",
        disable=not (progress and info.is_main),
    )

    def after_backward() -> None:
        for hook in hooks:
            hook.on_after_backward(state)

    val_shard = list(val_loaded)[info.rank :: info.world_size]
    while state.epoch < tcfg.epochs and state.stop_reason is None:
        epoch = state.epoch + 1
        patches.set_epoch(epoch)
        model.train()
        lr = state.optimizer.param_groups[0]["lr"]
        sums: dict[str, list[float]] = {}
        for image, target in loader:
            terms = train_step(model, image, target, loss_fn, state, device, after_backward)
            state.step += 1
            for key, value in terms.items():
                sums.setdefault(f"train_{key}", []).append(value)
            bar.update(1)
            bar.set_postfix(epoch=epoch, loss=f"{terms['loss']:.4f}")
        scores = (
            validate(state.model, val_shard, config, divisor, state.labels, loss_fn)
            if val_loaded
            else {}
        )
        metrics = _reduce_means({**sums, **scores}, info)
        dice_keys = [k for k in metrics if k.startswith("val_dice_")]
        if val_loaded:
            metrics["val_dice"] = float(np.mean([metrics[k] for k in dice_keys]))
        elapsed = state.seconds_before + time.monotonic() - start_time
        metrics["lr"] = lr
        metrics["seconds"] = elapsed
        state.epoch, state.metrics = epoch, metrics
        # without validation cases the latest model is the best one we can name
        score = metrics["val_dice"] if val_loaded else float(epoch)
        state.improved = score > state.best_metric
        if state.improved:
            state.best_metric, state.best_epoch = score, epoch
        if val_loaded and state.early_stopping.update(metrics["val_dice"]):
            patience = tcfg.early_stopping_patience
            state.stop_reason = f"early stopping: no validation Dice gain in {patience} epochs"
        over_time = tcfg.max_minutes is not None and elapsed > tcfg.max_minutes * 60
        if all_reduce_sum([float(over_time)], info)[0] > 0:  # rank 0's clock may differ
            state.stop_reason = f"time budget of {tcfg.max_minutes} min reached"
        for hook in hooks:
            hook.on_epoch_end(state)
        if progress and info.is_main:
            shown = f"{metrics['val_dice']:.4f}" if val_loaded else "n/a (no validation cases)"
            tqdm.write(
                f"epoch {epoch}: loss {metrics['train_loss']:.4f}, val Dice {shown}, "
                f"lr {lr:.3g}, {elapsed:.0f} s"
            )
            if state.stop_reason:
                tqdm.write(f"stopping: {state.stop_reason}")
    bar.close()
    return TrainResult(
        state.run_dir,
        state.epoch,
        state.best_epoch,
        state.best_metric if val_loaded and state.best_epoch else None,
        state.seconds_before + time.monotonic() - start_time,
        state.stop_reason,
    )
