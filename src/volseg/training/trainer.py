"""The training loop: patches in, a trained model, checkpoints and logs out.

``train(config)`` finds the cases, preprocesses them once (kept in memory), trains on random
augmented patches (:mod:`volseg.data.sampling`), validates the whole held-out cases every
``train.validate_every`` epochs and after the last (:mod:`volseg.training.validation`) and
writes, in ``config.run_dir``:

* ``config.yaml`` — the resolved configuration;
* ``log.csv``, ``tensorboard/``, ``curves.png`` (and ``grad_norms.*``) — see
  :mod:`volseg.training.run_log`;
* ``checkpoint_last.pt`` (every epoch) and ``checkpoint_best.pt`` (best ``train.monitor``;
  only with validation cases) — written atomically, holding everything needed to resume exactly.

Before anything is written, the recipe is checked against the data
(:mod:`volseg.training.pretrain_checks`: declared channels, labels and regions that occur).

This module is the loop alone; one step is :func:`volseg.training.step.train_step`, everything
around it a :class:`~volseg.training.callbacks.Callback` (logging, checkpoints, gradient norms,
your own) that sees the :class:`~volseg.training.state.TrainState`. Two label regimes: a softmax
over exclusive labels (default), or one sigmoid channel per region (``data.regions``, e.g. BraTS
WT/TC/ET). ``train(config, resume=True)`` continues from ``checkpoint_last.pt``: model, optimiser,
scheduler, gradient scaler, RNG states and the loop's own state, so N epochs straight and
N/2 + resume + N/2 give identical weights. Under ``torchrun`` it trains with DDP (see
:mod:`volseg.training.distributed`).
"""

from __future__ import annotations

import dataclasses
import math
import random
import time
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data.distributed import DistributedSampler
from tqdm import tqdm

from volseg._allocator import reuse_freed_memory
from volseg._device import resolve_device
from volseg.config import Config, dump_config
from volseg.data.layouts import Case, Dataset, find_cases
from volseg.data.sampling import LoadedCase, PatchDataset, build_loader, load_case
from volseg.data.splits import validation_ids
from volseg.data.transforms import build_augmentation
from volseg.losses import create_loss
from volseg.metrics.names import dataset_label_names
from volseg.nn.build import build_model
from volseg.nn.network import check_network
from volseg.nn.sliding_window import runs_on
from volseg.regions import get_regions
from volseg.training.callbacks import Callback, CheckpointSaver, LogWriter
from volseg.training.checkpoint import CheckpointError, load_checkpoint, restore_rng_state
from volseg.training.distributed import DistInfo, all_reduce_sum, init_distributed, shutdown
from volseg.training.pretrain_checks import check_channels, check_label_presence, data_channels
from volseg.training.schedules import build_optimizer, build_scheduler, early_stopping
from volseg.training.state import MONITOR_SIGN, TrainResult, TrainState
from volseg.training.step import train_step
from volseg.training.validation import (
    is_validation_epoch,
    validate,
    validation_metrics,
    validation_subset,
)

__all__ = ["split_cases", "train"]


def split_cases(cases: Sequence[Case], config: Config) -> tuple[list[Case], list[Case]]:
    """Training and validation cases: ``data.val_cases`` if given, else a seeded fraction."""
    data = config.data
    held_out = validation_ids(
        [c.case_id for c in cases], data.val_cases, data.val_fraction, config.train.seed
    )
    return [c for c in cases if c.case_id not in held_out], [
        c for c in cases if c.case_id in held_out
    ]


def _set_aside_stale_best(run_dir: Path) -> None:
    """A run without validation cases has no best: its last model is its model. A
    ``checkpoint_best.pt`` already in ``run_dir`` (from a volseg that wrote one per epoch, or
    from before the validation cases were removed) would make ``find_checkpoint`` pick an older
    model, so it is renamed, not deleted."""
    best = run_dir / "checkpoint_best.pt"
    if best.is_file():
        aside = best.with_name("checkpoint_best.stale.pt")
        best.replace(aside)
        warnings.warn(
            f"{best}: this run has no validation cases, so its last checkpoint is its model; "
            f"the older best checkpoint was renamed to {aside.name}",
            stacklevel=3,
        )


def _flushes_subnormals() -> bool:
    """Whether this thread's float arithmetic now flushes subnormals (``1e-39 * 1.5 == 0``)."""
    return bool(torch.tensor([1e-39], dtype=torch.float32).mul(1.5).item() == 0.0)


def _seed_everything(seed: int, deterministic: bool) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(deterministic, warn_only=True)
    torch.backends.cudnn.deterministic = deterministic
    torch.backends.cudnn.benchmark = not deterministic


def _label_names(dataset: Dataset, labels: Sequence[int]) -> tuple[str, ...] | None:
    """The dataset's name of each label (its value when unnamed), or None when it names none."""
    named = dataset_label_names(dataset.root, dataset.layout, labels)
    if not any(v in named for v in labels):
        return None
    return tuple(named.get(v, str(v)) for v in labels)


def _load_cases(
    cases: Sequence[Case],
    config: Config,
    labels: Sequence[int],
    channels: int,
    progress: bool = True,
) -> list[LoadedCase]:
    dims = len(config.train.patch_size)
    loaded = []
    # tqdm's disable=None: no bar when stderr is not a terminal (a log file)
    disable = None if progress and len(cases) >= 3 else True
    for case in tqdm(cases, desc="loading", leave=False, disable=disable):
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


_BUDGET_STOP = "time budget of"
_EARLY_STOP = "early stopping:"


def _resume(state: TrainState, path: Path) -> None:
    checkpoint = load_checkpoint(path)
    if checkpoint.rng is None or checkpoint.scheduler is None or checkpoint.optimizer is None:
        raise CheckpointError(f"{path}: written by an older volseg; cannot resume exactly")
    state.model.load_state_dict(checkpoint.model)
    state.optimizer.load_state_dict(checkpoint.optimizer)
    state.scheduler.load_state_dict(checkpoint.scheduler)
    if checkpoint.scaler:
        state.scaler.load_state_dict(checkpoint.scaler)
    state.epoch = checkpoint.epoch
    state.trainer = checkpoint.trainer
    if not state.trainer.seconds:  # written before the state held it
        state.trainer.seconds = float(checkpoint.metrics.get("seconds", 0.0))
    state.metrics = dict(checkpoint.metrics)
    restore_rng_state(checkpoint.rng)
    # the time budget is per invocation, and a resume may change the stopping rules
    # (volseg.config.RESUMABLE_KEYS): a stop for either is looked at again
    reason, stopping = state.trainer.stop_reason, state.config.train.stopping
    if reason is not None and (
        reason.startswith(_BUDGET_STOP)
        or (
            reason.startswith(_EARLY_STOP)
            and (not stopping.patience or state.trainer.since_best < stopping.patience)
        )
    ):
        state.trainer.stop_reason = None


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
            extend a finished run (and the keys of :data:`volseg.config.RESUMABLE_KEYS`
            changed). ``train.stopping.max_minutes`` counts from this call: a run stopped by
            its time budget continues with the whole budget again.
    """
    start_time = time.monotonic()
    train_cfg, runtime = config.train, config.train.runtime
    device = resolve_device(runtime.device, "train.runtime.device")
    info = init_distributed(device.type)
    if device.type == "cuda" and info.enabled:
        device = torch.device("cuda", info.local_rank)
    hooks: list[Callback] = [LogWriter(runtime.log_grad_norms), CheckpointSaver(), *callbacks]
    state: TrainState | None = None
    flushing_before = _flushes_subnormals()  # torch has no getter: restored to what it was
    try:
        _seed_everything(train_cfg.seed, runtime.deterministic)
        if runtime.reuse_memory:
            reuse_freed_memory()  # process-wide; forked loader workers inherit it
        if runtime.flush_denormal:
            torch.set_flush_denormal(True)
        if runtime.threads:
            torch.set_num_threads(runtime.threads)
        dataset = find_cases(config.data.root, config.data.layout, config.data.channels)
        labels = list(config.data.labels or dataset.labels or (0, 1))
        channels = data_channels(dataset)
        check_channels(config, dataset)
        names = config.data.label_names or _label_names(dataset, labels)
        if names is not None and len(names) != len(labels):
            raise ValueError(
                f"data.label_names: {len(names)} name(s) for the labels {labels} of "
                f"{config.data.root} (one per label, background included)"
            )
        config = dataclasses.replace(
            config, data=dataclasses.replace(config.data, labels=tuple(labels), label_names=names)
        )
        # everything the config alone decides is checked before any scan is read
        model = build_model(config, channels, len(labels)).to(device)
        divisor = check_network(model).divisor
        if any(p % divisor for p in train_cfg.patch_size):
            raise ValueError(
                f"train.patch_size {train_cfg.patch_size} must be divisible by {divisor}"
            )
        loss_fn = create_loss(config.loss.name, **config.loss.kwargs).to(device)
        build_augmentation(config.augment)
        train_cases, val_cases = split_cases(dataset.cases, config)
        val_cases = validation_subset(val_cases, train_cfg.val_max_cases, train_cfg.seed)
        bar = progress and info.is_main
        train_loaded = _load_cases(train_cases, config, labels, channels, bar)
        check_label_presence(config, labels, train_loaded)
        val_loaded = _load_cases(val_cases, config, labels, channels, bar)

        run_dir = Path(config.run_dir)
        optimizer = build_optimizer(train_cfg.optimizer, list(model.parameters()))
        state = TrainState(
            config=config,
            run_dir=run_dir,
            model=model,
            optimizer=optimizer,
            scheduler=build_scheduler(train_cfg, optimizer),
            scaler=torch.amp.GradScaler(device.type, enabled=runtime.amp == "fp16"),
            dist=info,
            labels=labels,
            in_channels=channels,
            regions=get_regions(config.data.regions) if config.data.regions else None,
        )
        if resume:
            _resume(state, run_dir / "checkpoint_last.pt")
        # nothing is written before the whole setup (and a resumed checkpoint) has succeeded
        if info.is_main:
            run_dir.mkdir(parents=True, exist_ok=True)
            dump_config(config, run_dir / "config.yaml")
            if not val_loaded:
                _set_aside_stale_best(run_dir)
        return _run(state, hooks, train_loaded, val_loaded, loss_fn, device, progress, start_time)
    finally:
        if runtime.flush_denormal:
            torch.set_flush_denormal(flushing_before)
        if state is not None:
            for hook in hooks:
                hook.on_train_end(state)
        shutdown()


def _end_epoch(
    state: TrainState, metrics: dict[str, float], has_val_cases: bool, validated: bool
) -> None:
    """Set ``state.improved`` and the best score from ``train.monitor``; update early stopping.

    Without validation cases there is no best to pick: the latest model is the run's model
    (``best_epoch``), and only ``checkpoint_last.pt`` is written (``find_checkpoint`` takes it;
    the demo wrote the same 195 MB twice per epoch). An epoch without a
    validation (``train.validate_every``) changes neither the best checkpoint nor early
    stopping; a validation without a gain adds the epochs since the previous validation to
    ``since_best``, so ``train.stopping.patience`` counts epochs whatever ``validate_every``.
    """
    train = state.config.train
    state.improved = False
    if not has_val_cases:
        state.trainer.best_score, state.trainer.best_epoch = float(state.epoch), state.epoch
        return
    if not validated:
        return
    score = MONITOR_SIGN[train.monitor] * metrics[train.monitor]
    state.improved = score > state.trainer.best_score
    if state.improved:
        state.trainer.best_score, state.trainer.best_epoch = score, state.epoch
    before = state.trainer.since_best
    verdict = early_stopping(score, state.trainer.stopping_best, before, train.stopping)
    since_best = verdict.since_best
    if since_best > before:  # no gain: count the epochs since the previous validation
        every = train.validate_every
        since_best = before + state.epoch - (state.epoch - 1) // every * every
    state.trainer.stopping_best, state.trainer.since_best = verdict.best, since_best
    if 0 < train.stopping.patience <= since_best:
        state.trainer.stop_reason = (
            f"{_EARLY_STOP} no {train.monitor} gain in {train.stopping.patience} epochs"
        )


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
    config, train_cfg, info = state.config, state.config.train, state.dist
    patches = PatchDataset(
        train_loaded,
        train_cfg.patch_size,
        config.augment,
        train_cfg.foreground_ratio,
        train_cfg.iterations_per_epoch * train_cfg.batch_size * info.world_size,
        train_cfg.seed,
    )
    sampler: DistributedSampler[int] | None = (
        DistributedSampler(patches, info.world_size, info.rank, shuffle=False)
        if info.enabled
        else None
    )
    loader = build_loader(
        patches, train_cfg.batch_size, train_cfg.runtime.num_workers, sampler=sampler
    )
    model: nn.Module = state.model
    if info.enabled:
        model = nn.parallel.DistributedDataParallel(
            state.model, device_ids=[device.index] if device.type == "cuda" else None
        )
    for hook in hooks:
        hook.on_train_start(state)
    total_steps = train_cfg.epochs * train_cfg.iterations_per_epoch
    bar = tqdm(
        total=total_steps,
        initial=min(state.trainer.step, total_steps),
        desc="training",
        unit="it",
        # None: no bar when stderr is not a terminal; a log gets the per-epoch lines below
        disable=None if progress and info.is_main else True,
    )

    def after_backward() -> None:
        for hook in hooks:
            hook.on_after_backward(state)

    seconds_before = state.trainer.seconds
    max_minutes = train_cfg.stopping.max_minutes
    val_shard = list(val_loaded)[info.rank :: info.world_size]
    while state.epoch < train_cfg.epochs and state.trainer.stop_reason is None:
        epoch = state.epoch + 1
        patches.set_epoch(epoch)
        model.train()
        lr = state.optimizer.param_groups[0]["lr"]
        sums: dict[str, list[float]] = {}
        for image, target in loader:
            terms = train_step(model, image, target, loss_fn, state, device, after_backward)
            state.trainer.step += 1
            for key, value in terms.items():
                sums.setdefault(f"train_{key}", []).append(value)
            bar.update(1)
            bar.set_postfix(epoch=epoch, loss=f"{terms['loss']:.4f}")
        # the budget counts this invocation (setup included), not the run's earlier ones; an
        # epoch that crosses it is the last, so it validates (else checkpoint_best is stale)
        over_time = max_minutes is not None and time.monotonic() - start_time > max_minutes * 60
        over_time = all_reduce_sum([float(over_time)], info)[0] > 0  # rank 0's clock may differ
        validated = bool(val_loaded) and (is_validation_epoch(epoch, train_cfg) or over_time)
        scores = (
            validate(state.model, val_shard, config, state.labels, loss_fn) if validated else {}
        )
        metrics = _reduce_means({**sums, **scores}, info)
        if validated:  # the mean over labels/regions of every validation metric
            for metric in validation_metrics(config):
                keys = [k for k in scores if k.startswith(f"val_{metric}_")]
                metrics[f"val_{metric}"] = float(np.mean([metrics[k] for k in keys]))
        elapsed = seconds_before + time.monotonic() - start_time
        metrics["lr"] = lr
        metrics["seconds"] = elapsed
        state.epoch, state.metrics, state.trainer.seconds = epoch, metrics, elapsed
        _end_epoch(state, metrics, bool(val_loaded), validated)
        if over_time:
            state.trainer.stop_reason = f"{_BUDGET_STOP} {max_minutes} min reached"
        for hook in hooks:
            hook.on_epoch_end(state)
        if progress and info.is_main:
            shown = (
                f"{metrics['val_dice']:.4f}"
                if validated
                else "not run this epoch"
                if val_loaded
                else "n/a (no validation cases)"
            )
            tqdm.write(
                f"epoch {epoch}: loss {metrics['train_loss']:.4f}, val Dice {shown}, "
                f"lr {lr:.3g}, {elapsed:.0f} s"
            )
            if state.trainer.stop_reason:
                tqdm.write(f"stopping: {state.trainer.stop_reason}")
    bar.close()
    monitor = train_cfg.monitor
    validated = bool(val_loaded) and state.trainer.best_epoch > 0
    best = MONITOR_SIGN[monitor] * state.trainer.best_score if validated else None
    return TrainResult(
        state.run_dir,
        state.epoch,
        state.trainer.best_epoch,
        monitor,
        best,
        seconds_before + time.monotonic() - start_time,
        state.trainer.stop_reason,
    )
