"""Training commands: ``train`` (also resume and DDP), ``cv`` and ``schedule``."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from volseg.cli._common import UsageError, add_set_argument, reject_duplicates

if TYPE_CHECKING:
    from volseg.crossval import CVResult


def _cmd_train(args: argparse.Namespace) -> int:
    import dataclasses
    import subprocess

    from volseg.config import apply_overrides, check_resumable, load_config
    from volseg.training.checkpoint import resume_config
    from volseg.training.distributed import launched_by_torchrun, torchrun_command
    from volseg.training.trainer import train

    given = {"train.epochs": "--epochs"} if args.epochs is not None else {}
    reject_duplicates(
        args.overrides, {**given, **({"run_dir": "--run-dir"} if args.run_dir else {})}
    )
    if args.nproc > 1 and not launched_by_torchrun():
        forwarded = ["train", *([args.config] if args.config else [])]
        for flag, value in (("--resume", args.resume), ("--run-dir", args.run_dir)):
            if value:
                forwarded += [flag, value]
        if args.epochs is not None:
            forwarded += ["--epochs", str(args.epochs)]
        if args.device is not None:
            forwarded += ["--device", args.device]
        for override in args.overrides:
            forwarded += ["--set", override]
        forwarded += ["-q"] if args.quiet else []
        return subprocess.run(torchrun_command(args.nproc, forwarded), check=False).returncode
    if args.resume:
        if args.config:
            raise UsageError("give either CONFIG or --resume RUN_DIR, not both")
        check_resumable(args.overrides)  # before the checkpoint is read; nothing is written
        run_dir = Path(args.resume)
        config = dataclasses.replace(resume_config(run_dir), run_dir=str(run_dir))
    elif args.config:
        config = load_config(args.config)
    else:
        raise UsageError("give a CONFIG file or --resume RUN_DIR")
    config = apply_overrides(config, args.overrides)
    if args.run_dir:
        config = dataclasses.replace(config, run_dir=args.run_dir)
    if args.epochs is not None:
        config = dataclasses.replace(
            config, train=dataclasses.replace(config.train, epochs=args.epochs)
        )
    if args.device is not None:
        runtime = dataclasses.replace(config.train.runtime, device=args.device)
        config = dataclasses.replace(
            config, train=dataclasses.replace(config.train, runtime=runtime)
        )
    result = train(config, progress=not args.quiet, resume=bool(args.resume))
    if launched_by_torchrun() and os.environ.get("RANK", "0") != "0":
        return 0
    best = "n/a" if result.best_value is None else f"{result.best_value:.4f}"
    print(
        f"run: {result.run_dir}  epochs: {result.epochs}  best {result.monitor}: {best} "
        f"(epoch {result.best_epoch})  time: {result.seconds:.0f} s"
    )
    if result.stop_reason:
        print(f"stopped early: {result.stop_reason}")
    return 0


def _cv_table(result: CVResult) -> tuple[list[dict[str, object]], list[str]]:
    """One row per metric column: its mean per fold, then pooled mean, std, n and non-finite."""
    folds = [f"fold_{i}" for i in range(len(result.fold_metrics))]
    rows: list[dict[str, object]] = []
    for key, stats in result.pooled_stats.items():
        row: dict[str, object] = {"metric": key}
        row.update({f: m.get(key) for f, m in zip(folds, result.fold_metrics, strict=True)})
        row.update(mean=stats["mean"], std=stats["std"], n=int(stats["n"]))
        row["nonfinite"] = int(stats["nonfinite"])
        rows.append(row)
    return rows, ["metric", *folds, "mean", "std", "n", "nonfinite"]


def _cmd_cv(args: argparse.Namespace) -> int:
    import dataclasses

    from volseg.config import apply_overrides, load_config
    from volseg.crossval import CV_METRICS, cross_validate, ensemble_predictor
    from volseg.report import format_table

    reject_duplicates(args.overrides, {"run_dir": "--run-dir"} if args.run_dir else {})
    config = apply_overrides(load_config(args.config), args.overrides)
    if args.run_dir:
        config = dataclasses.replace(config, run_dir=args.run_dir)
    metrics = args.metrics or CV_METRICS
    result = cross_validate(config, args.folds, progress=not args.quiet, metrics=metrics)
    print(format_table(*_cv_table(result)))
    print(
        f"splits: {result.cv_dir / 'splits.json'}  metrics: {result.cv_dir / 'metrics.csv'}  "
        f"summary: {result.cv_dir / 'summary.json'}"
    )
    if args.predict:
        if not args.output:
            raise UsageError("--predict needs --output")
        predictor = ensemble_predictor(result.run_dirs)
        out = predictor.predict_file([Path(p) for p in args.predict], args.output)
        print(f"ensemble of {len(result.run_dirs)} folds wrote {out}")
    return 0


def _cmd_schedule(args: argparse.Namespace) -> int:
    from volseg.config import apply_overrides, load_config
    from volseg.training.schedules import learning_rate, plot_schedule, step_iterations

    train = apply_overrides(load_config(args.config), args.overrides).train
    schedule, per_epoch = train.schedule, train.iterations_per_epoch
    warm = ""
    if schedule.warmup_epochs:
        end = schedule.warmup_end_lr
        warm = f", warm-up {schedule.warmup_epochs} epochs from {schedule.warmup_start_lr:g} " + (
            f"to {end:g}" if end is not None else "into the schedule"
        )
    print(
        f"{args.config}: {schedule.name} schedule, lr0 {train.optimizer.lr:g}{warm}, "
        f"{train.epochs} epochs x {per_epoch} iterations; columns: epoch (0-based) and the "
        "rate of its first iteration",
        file=sys.stderr,
    )
    steps: dict[int, list[int]] = {}
    for step in step_iterations(train):
        steps.setdefault(step // per_epoch, []).append(step)
    for epoch in range(train.epochs):
        notes = [
            f"iteration {step}: lr {learning_rate(train, step):.6g}"
            for step in steps.get(epoch, [])
        ]
        if epoch < schedule.warmup_epochs:
            notes.insert(0, "warm-up")
        note = f"  # {'; '.join(notes)}" if notes else ""
        print(f"{epoch} {learning_rate(train, epoch * per_epoch):.6g}{note}")
    if args.plot:
        plot_schedule(train, args.plot, title=f"{Path(args.config).name}: learning rate")
        print(f"wrote {args.plot}", file=sys.stderr)
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add this module's subcommands."""
    p = sub.add_parser("train", help="train a model from a YAML config (or resume a run)")
    p.add_argument("config", nargs="?", help="YAML config (see configs/)")
    p.add_argument("--run-dir", help="override run_dir from the config")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue RUN_DIR from its last checkpoint")
    p.add_argument("--epochs", type=int, help="set train.epochs (extends a resumed run)")
    add_set_argument(
        p,
        "the config (with --resume: only keys that leave the recipe alone, such as "
        "train.epochs, train.stopping.max_minutes; the budget restarts with each invocation)",
    )
    p.add_argument(
        "--device",
        choices=["auto", "cpu", "cuda"],
        help="override train.runtime.device (auto: CUDA when available)",
    )
    p.add_argument(
        "--nproc", type=int, default=1, help="train with N DDP processes (runs torchrun)"
    )
    p.add_argument("-q", "--quiet", action="store_true")
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser("cv", help="k-fold cross-validation: one run per fold, pooled metrics")
    p.add_argument("config", help="YAML config (see configs/)")
    p.add_argument("--folds", type=int, default=5, help="number of folds (default 5)")
    p.add_argument("--run-dir", help="folder for splits.json and the fold runs")
    p.add_argument("--predict", nargs="+", help="scan (channel files) to segment with the folds")
    p.add_argument("-o", "--output", help="output file of --predict")
    p.add_argument(
        "--metrics",
        nargs="+",
        metavar="NAME",
        help="what to score on each fold's held-out cases (any of `volseg evaluate "
        "--metrics`; default: dice jaccard precision recall hd95 assd). A second call with "
        "other metrics rescores the finished folds without training them again",
    )
    add_set_argument(p)
    p.add_argument("-q", "--quiet", action="store_true")
    p.set_defaults(func=_cmd_cv)

    p = sub.add_parser(
        "schedule", help="the learning rate of every epoch of a config (no training)"
    )
    p.add_argument("config", help="YAML config (see configs/)")
    p.add_argument("--plot", metavar="PNG", help="also plot the rates to this PNG")
    add_set_argument(p)
    p.set_defaults(func=_cmd_schedule)
