"""The ``volseg`` command: thin subcommands over the library; heavy imports happen inside them.

Errors the user can fix (a bad file, a bad config) end as one line on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

__all__ = ["main"]


class UsageError(Exception):
    """A problem with the user's input, reported as one line."""


def _cmd_train(args: argparse.Namespace) -> int:
    import dataclasses
    import subprocess

    from volseg.config import load_config
    from volseg.training.distributed import launched_by_torchrun, torchrun_command
    from volseg.training.trainer import train

    if args.nproc > 1 and not launched_by_torchrun():
        forwarded = ["train", *([args.config] if args.config else [])]
        for flag, value in (("--resume", args.resume), ("--run-dir", args.run_dir)):
            if value:
                forwarded += [flag, value]
        if args.epochs is not None:
            forwarded += ["--epochs", str(args.epochs)]
        forwarded += ["-q"] if args.quiet else []
        return subprocess.run(torchrun_command(args.nproc, forwarded), check=False).returncode
    if args.resume:
        if args.config:
            raise UsageError("give either CONFIG or --resume RUN_DIR, not both")
        run_dir = Path(args.resume)
        config = load_config(run_dir / "config.yaml")
        config = dataclasses.replace(config, run_dir=str(run_dir))
    elif args.config:
        config = load_config(args.config)
    else:
        raise UsageError("give a CONFIG file or --resume RUN_DIR")
    if args.run_dir:
        config = dataclasses.replace(config, run_dir=args.run_dir)
    if args.epochs is not None:
        config = dataclasses.replace(
            config, train=dataclasses.replace(config.train, epochs=args.epochs)
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


def _cmd_cv(args: argparse.Namespace) -> int:
    import dataclasses

    from volseg.config import load_config
    from volseg.crossval import cross_validate, ensemble_predictor

    config = load_config(args.config)
    if args.run_dir:
        config = dataclasses.replace(config, run_dir=args.run_dir)
    result = cross_validate(config, args.folds, progress=not args.quiet)
    for fold, metrics in enumerate(result.fold_metrics):
        print(f"fold {fold}: " + "  ".join(f"{k} {v:.4f}" for k, v in metrics.items()))
    print("pooled: " + "  ".join(f"{k} {v:.4f}" for k, v in result.pooled.items()))
    print(f"splits: {result.cv_dir / 'splits.json'}  metrics: {result.cv_dir / 'metrics.csv'}")
    if args.predict:
        if not args.output:
            raise UsageError("--predict needs --output")
        predictor = ensemble_predictor(result.run_dirs)
        out = predictor.predict_file([Path(p) for p in args.predict], args.output)
        print(f"ensemble of {len(result.run_dirs)} folds wrote {out}")
    return 0


def _prediction_jobs(
    inputs: list[str], output: str, channels: Sequence[str] | None = None
) -> list[tuple[list[Path], Path]]:
    """Pairs (input files, output file) for one file, several channel files, a folder in any
    dataset layout, or a ``.txt`` list (one case per line, its channel files separated by spaces).

    ``channels``: the run's ``data.channels``; a dataset folder then gives those channels of each
    case, in that order (a run trained on ``t1ce + flair`` predicts a four-modality BraTS folder).
    """
    from volseg.data.layouts import find_cases
    from volseg.io import SUPPORTED_SUFFIXES, strip_suffix

    def named(images: list[Path], case_id: str) -> tuple[list[Path], Path]:
        name = images[0].name
        suffix = name[len(strip_suffix(name)) :] or ".nii.gz"
        return images, out_dir / f"{case_id}{suffix}"

    first = Path(inputs[0])
    out_dir = Path(output)
    many = len(inputs) == 1 and (
        (first.is_dir() and not any(first.glob("*.dcm"))) or first.suffix == ".txt"
    )
    if not many:
        return [([Path(p) for p in inputs], out_dir)]
    if out_dir.suffix or out_dir.name.endswith(SUPPORTED_SUFFIXES):
        raise UsageError(f"{output}: input is a folder or list, so the output must be a folder")
    if first.suffix == ".txt":
        try:
            lines = [line.split() for line in first.read_text().splitlines()]
        except OSError as err:
            raise UsageError(f"{first}: cannot read the case list ({err.strerror})") from None
        cases = [
            [first.parent / p if not Path(p).is_absolute() else Path(p) for p in line]
            for line in lines
            if line and not line[0].startswith("#")
        ]
        return [named(images, strip_suffix(images[0].name)) for images in cases]
    dataset = find_cases(first, channels=channels)
    return [named(list(case.images), case.case_id) for case in dataset.cases]


def _infer_overrides(args: argparse.Namespace) -> dict[str, object]:
    """``config.infer`` keys set on the command line."""
    overrides: dict[str, object] = {}
    if args.window:
        overrides["window"] = tuple(args.window)
    for key in ("overlap", "batch_size", "blend", "activation"):
        if getattr(args, key) is not None:
            overrides[key] = getattr(args, key)
    if args.tta:
        overrides["mirror_axes"] = (0, 1, 2)
    if args.mirror_axes is not None:
        overrides["mirror_axes"] = tuple(args.mirror_axes)
    if args.threshold is not None:
        overrides["threshold"] = tuple(args.threshold)
    if args.keep_largest is not None:
        overrides["keep_largest"] = tuple(args.keep_largest)
    return overrides


def _cmd_predict(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from volseg.inference import Predictor
    from volseg.io import strip_suffix

    overrides = _infer_overrides(args)
    if len(args.model) > 1:
        predictor = Predictor.from_runs(args.model, **overrides)
    else:
        predictor = Predictor.from_run(args.model[0], **overrides)
    jobs = _prediction_jobs(args.input, args.output, predictor.config.data.channels)
    failures = []
    skipped = 0
    for images, out in tqdm(jobs, desc="predicting", disable=len(jobs) < 2 or args.quiet):
        if out.exists() and not args.overwrite and len(jobs) > 1:
            skipped += 1
            continue
        probs = (
            out.parent / f"{strip_suffix(out.name)}_probabilities.npz"
            if args.probabilities
            else None
        )
        try:
            predictor.predict_file(images, out, probabilities=probs)
        except Exception as err:  # one bad case must not stop the batch
            if len(jobs) == 1:
                raise
            message = str(err).strip().splitlines()[0] if str(err).strip() else ""
            failures.append(f"{images[0]}: {type(err).__name__}: {message}")
            continue
        if not args.quiet:
            tqdm.write(f"wrote {out}")
    if skipped and not args.quiet:
        print(f"skipped {skipped} case(s) already predicted (--overwrite redoes them)")
    for failure in failures:
        print(f"volseg: failed: {failure}", file=sys.stderr)
    if failures:
        print(f"volseg: {len(failures)} of {len(jobs)} case(s) failed", file=sys.stderr)
    return 1 if failures else 0


def _cmd_export(args: argparse.Namespace) -> int:
    from volseg.export import export_run

    result = export_run(args.run_dir, args.output, args.format)
    print(
        f"wrote {result.path} ({result.format}; max abs diff from torch {result.max_abs_diff:.2g})"
    )
    return 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from volseg.evaluation import evaluate_folders
    from volseg.metrics import METRICS, aggregate
    from volseg.report import format_table

    unknown = [m for m in args.metrics if m not in METRICS]
    if unknown:
        raise ValueError(f"--metrics: unknown {', '.join(unknown)}; known: {', '.join(METRICS)}")
    rows, summary, csv_path = evaluate_folders(
        args.pred,
        args.ref,
        labels=args.labels,
        output=args.output,
        metrics=args.metrics,
        regions=args.regions,
        tolerance=args.tolerance,
    )
    columns = ["case", *[k for k in rows[0] if k != "case"]]
    print(format_table(rows, columns))
    stats = [{"metric": k, **v} for k, v in aggregate(rows).items()]
    print(format_table(stats, ["metric", "mean", "std", "median", "n", "nonfinite"]))
    print("  ".join(f"{k}: {m:.4f} +/- {s:.4f}" for k, (m, s) in summary.items()))
    print(f"metrics (per case, mean, std, median): {csv_path}")
    return 0


def _cmd_check(args: argparse.Namespace) -> int:
    from volseg.data.check import check_dataset
    from volseg.data.layouts import find_cases

    dataset = find_cases(args.dataset, args.layout)
    problems = check_dataset(dataset)
    for problem in problems:
        print(problem)
    print(f"{dataset.layout} layout, {len(dataset.cases)} case(s), {len(problems)} problem(s)")
    return 1 if problems else 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from volseg.demo import run_demo

    run_demo(Path(args.run_dir), minutes=args.minutes, quiet=args.quiet)
    return 0


def _cmd_synth(args: argparse.Namespace) -> int:
    import time

    from volseg.synth import write_synth

    start = time.perf_counter()
    root = write_synth(args.name, args.out, args.cases, args.seed, args.test_cases)
    seconds = time.perf_counter() - start
    print(f"{args.name}: {args.cases} training case(s) written to {root} in {seconds:.1f} s")
    return 0


def _cmd_experiment(args: argparse.Namespace) -> int:
    from volseg.experiments import list_experiments, run_experiment

    if args.list:
        print("\n".join(list_experiments()))
        return 0
    if args.name is None or args.out is None:
        raise UsageError("experiment: give NAME and --out DIR, or --list")
    if args.name not in list_experiments():
        raise UsageError(
            f"experiment: unknown {args.name!r}; one of {', '.join(list_experiments())}"
        )
    results = run_experiment(args.name, args.out, args.profile, args.seeds, progress=args.verbose)
    print(f"{args.name}: {results} and {results.parent / 'summary.md'} written")
    return 0


def _cmd_info(args: argparse.Namespace) -> int:
    from typing import Any

    import yaml

    from volseg.nn import create_model
    from volseg.nn.analysis import analyze_model, format_analysis

    kwargs: dict[str, Any] = {"spatial_dims": len(args.input_size)}
    if args.in_channels is not None:
        kwargs["in_channels"] = args.in_channels
    for item in args.kwargs or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"--kwargs {item!r}: expected key=value")
        kwargs[key] = yaml.safe_load(value)  # 3 -> int, [1, 2] -> list, true -> bool
    try:
        model = create_model(args.model, **kwargs)
    except TypeError as err:
        raise UsageError(f"{err} (model {args.model})") from None
    analysis = analyze_model(model, args.input_size, args.in_channels)
    print(format_analysis(analysis, title=args.model))
    return 0


def _cmd_schedule(args: argparse.Namespace) -> int:
    from volseg.config import load_config
    from volseg.training.schedules import learning_rate, plot_schedule, step_iterations

    train = load_config(args.config).train
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="volseg", description="Segment medical volumes with the networks of five papers."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="train a model from a YAML config (or resume a run)")
    p.add_argument("config", nargs="?", help="YAML config (see configs/)")
    p.add_argument("--run-dir", help="override run_dir from the config")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue RUN_DIR from its last checkpoint")
    p.add_argument("--epochs", type=int, help="override train.epochs (extends a resumed run)")
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
    p.add_argument("-q", "--quiet", action="store_true")
    p.set_defaults(func=_cmd_cv)

    p = sub.add_parser("predict", help="segment scans with a trained run")
    p.add_argument(
        "-m",
        "--model",
        required=True,
        nargs="+",
        help="run directory, checkpoint or exported .onnx; several runs are an ensemble",
    )
    p.add_argument(
        "-i",
        "--input",
        required=True,
        nargs="+",
        help="scan file, several channel files of one scan, a dataset folder, or a .txt case list",
    )
    p.add_argument("-o", "--output", required=True, help="output file (or folder for many cases)")
    p.add_argument("--overwrite", action="store_true", help="redo cases already predicted")
    p.add_argument("--window", type=int, nargs="+", help="sliding window, array order (z y x)")
    p.add_argument("--overlap", type=float, help="window overlap fraction")
    p.add_argument("--batch-size", type=int, help="windows per forward pass")
    p.add_argument("--blend", choices=["gaussian", "constant"])
    p.add_argument("--tta", action="store_true", help="mirroring TTA over all 3 axes (8x slower)")
    p.add_argument("--mirror-axes", type=int, nargs="*", help="mirroring TTA over these axes")
    p.add_argument("--activation", choices=["auto", "softmax", "sigmoid"])
    p.add_argument(
        "--threshold", type=float, nargs="+", help="threshold (one, or one per class) not argmax"
    )
    p.add_argument("--keep-largest", type=int, nargs="+", help="labels to keep one component of")
    p.add_argument(
        "--probabilities", action="store_true", help="also write CASE_probabilities.npz (float16)"
    )
    p.add_argument("-q", "--quiet", action="store_true")
    p.set_defaults(func=_cmd_predict)

    p = sub.add_parser("export", help="export a run to TorchScript or ONNX (checked against torch)")
    p.add_argument("run_dir", help="run directory or checkpoint file")
    p.add_argument("--format", required=True, choices=["onnx", "torchscript"])
    p.add_argument("-o", "--output", required=True, help="output model file")
    p.set_defaults(func=_cmd_export)

    p = sub.add_parser("evaluate", help="Dice and HD95 of predictions against references")
    p.add_argument("--pred", required=True, help="folder of predicted label maps")
    p.add_argument("--ref", required=True, help="folder of reference label maps (same names)")
    p.add_argument(
        "--labels",
        type=int,
        nargs="+",
        help="labels to score (default: all > 0, or none with --regions)",
    )
    p.add_argument(
        "--metrics",
        nargs="+",
        default=["dice", "hd95"],
        metavar="NAME",
        help="dice jaccard precision recall specificity accuracy hd hd95 assd surface_dice "
        "(default: dice hd95)",
    )
    p.add_argument(
        "--regions",
        choices=["brats", "brats2023"],  # volseg.regions.region_sets(), without importing torch
        help="also score regions: brats = WT {1,2,4}, TC {1,4}, ET {4}; brats2023 = the same "
        "with ET labelled 3",
    )
    p.add_argument(
        "--tolerance", type=float, default=1.0, help="surface_dice tolerance in mm (default 1)"
    )
    p.add_argument("-o", "--output", help="CSV path (default: PRED/metrics.csv)")
    p.set_defaults(func=_cmd_evaluate)

    p = sub.add_parser("check", help="list every problem in a dataset")
    p.add_argument("dataset", help="dataset folder or manifest")
    p.add_argument("--layout", default="auto")
    p.set_defaults(func=_cmd_check)

    p = sub.add_parser("demo", help="train, predict and evaluate the bundled brain-extraction demo")
    p.add_argument("--run-dir", default="runs/demo")
    p.add_argument("--minutes", type=float, default=None, help="training time budget")
    p.add_argument("-q", "--quiet", action="store_true")
    p.set_defaults(func=_cmd_demo)

    p = sub.add_parser(
        "schedule", help="the learning rate of every epoch of a config (no training)"
    )
    p.add_argument("config", help="YAML config (see configs/)")
    p.add_argument("--plot", metavar="PNG", help="also plot the rates to this PNG")
    p.set_defaults(func=_cmd_schedule)

    p = sub.add_parser("synth", help="write a synthetic dataset (MSD layout) with known labels")
    p.add_argument("name", help="brain-structures, brats-like, ctp-like or em-membranes")
    p.add_argument("--out", required=True, help="dataset folder to write")
    p.add_argument("--cases", type=int, default=12, help="training cases (default 12)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--test-cases", type=int, default=None, help="held-out cases (default: a third of --cases)"
    )
    p.set_defaults(func=_cmd_synth)

    p = sub.add_parser(
        "experiment", help="reproduce a paper's claim: variants x seeds, paired statistics"
    )
    p.add_argument("name", nargs="?", help="experiment name (see --list)")
    p.add_argument("--list", action="store_true", help="print the experiment names, one a line")
    p.add_argument("--profile", choices=("smoke", "full"), default="smoke")
    p.add_argument("--seeds", type=int, default=None, help="seeds (default: smoke 2, full 3)")
    p.add_argument("--out", help="experiment folder (data/, runs/, results.csv, summary.md)")
    p.add_argument("-v", "--verbose", action="store_true", help="show training progress")
    p.set_defaults(func=_cmd_experiment)

    p = sub.add_parser("info", help="parameters, FLOPs, memory and receptive fields of a model")
    p.add_argument("model", help="registered model name (vnet, segresnet_vae, ...)")
    p.add_argument(
        "--input-size", required=True, type=int, nargs="+", metavar="N", help="D H W or H W"
    )
    p.add_argument("--in-channels", type=int, help="input channels (default: the model's)")
    p.add_argument("--kwargs", nargs="+", metavar="KEY=VALUE", help="model arguments (YAML values)")
    p.set_defaults(func=_cmd_info)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``volseg`` console script and ``python -m volseg``."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        print("volseg: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `volseg info vnet ... | head`
        sys.stderr.close()
        return 0
    except (UsageError, ValueError, KeyError, OSError) as err:
        if isinstance(err, OSError) and err.filename and err.strerror:  # "[Errno 2] ..." -> plain
            err = OSError(f"{err.filename}: {err.strerror}")
        if isinstance(err, KeyError) and err.args:  # str(KeyError) quotes its message
            err = ValueError(str(err.args[0]))
        message = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        print(f"volseg: error: {message.strip(chr(39))}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
