"""Inference commands: ``predict`` (files, folders, case lists) and ``export``."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from volseg.cli._common import UsageError, add_set_argument, reject_duplicates, section_overrides


def _prediction_jobs(
    inputs: list[str],
    output: str,
    channels: Sequence[str] | None = None,
    layout: str = "auto",
    in_channels: int | None = None,
) -> list[tuple[list[Path], Path]]:
    """Pairs (input files, output file) for one file, several channel files, a dataset in any
    layout (a folder, a ``.csv``/``.json`` manifest), or a ``.txt`` list (one case per line, its
    channel files separated by spaces).

    Outputs are named ``CASE<suffix of the input>`` after the case id the layouts give
    (:func:`volseg.data.layouts.case_id_of`: ``hip_008_0000.nii.gz`` -> ``hip_008.nii.gz``, a
    manifest's ``case_id``), also for one scan written into a folder (``-o FOLDER/``).

    ``channels``: the run's ``data.channels``; a dataset then gives those channels of each case,
    in that order (a run trained on ``t1ce + flair`` predicts a four-modality BraTS folder). A
    plain folder's channels have no names: nnU-Net's ``CASE_0000``, ``CASE_0001`` files are the
    run's channels in that order. ``in_channels``: the run's input channels; a folder whose
    ``CASE_XXXX`` groups hold another number of files is an error, except for a one-channel run,
    which then predicts each file (numbered scans such as ``scan_0000``, ``scan_0001``).
    ``layout``: the dataset's layout (default: detected).
    """
    from volseg.data.layouts import case_id_of, find_cases
    from volseg.io import SUPPORTED_SUFFIXES, strip_suffix

    def named(images: list[Path], case_id: str) -> tuple[list[Path], Path]:
        name = images[0].name
        suffix = name[len(strip_suffix(name)) :] or ".nii.gz"
        return images, out_dir / f"{case_id}{suffix}"

    first = Path(inputs[0])
    out_dir = Path(output)
    many = len(inputs) == 1 and (
        (first.is_dir() and not any(first.glob("*.dcm")))
        or first.suffix.lower() in (".txt", ".csv", ".json")
    )
    to_folder = not out_dir.name.lower().endswith(SUPPORTED_SUFFIXES) and (
        output.endswith(("/", "\\")) or out_dir.is_dir()
    )
    if not many:
        images = [Path(p) for p in inputs]
        return [named(images, case_id_of(images)) if to_folder else (images, out_dir)]
    if out_dir.suffix or out_dir.name.endswith(SUPPORTED_SUFFIXES):
        raise UsageError(f"{output}: input is a folder or list, so the output must be a folder")
    if first.suffix == ".txt":
        try:
            lines = [line.split() for line in first.read_text(encoding="utf-8").splitlines()]
        except OSError as err:
            raise UsageError(f"{first}: cannot read the case list ({err.strerror})") from None
        cases = [
            [first.parent / p if not Path(p).is_absolute() else Path(p) for p in line]
            for line in lines
            if line and not line[0].startswith("#")
        ]
        return [named(images, case_id_of(images)) for images in cases]
    dataset = find_cases(first, layout)
    if dataset.layout != "folder":
        if channels is not None:
            dataset = dataset.select_channels(channels)
        return [named(list(case.images), case.case_id) for case in dataset.cases]
    per_case = len(dataset.channel_names)  # > 1 only for grouped CASE_XXXX files
    if in_channels is not None and per_case > 1 and per_case != in_channels:
        if in_channels != 1:
            raise UsageError(
                f"{first}: {per_case} channel files per case (CASE_0000 to "
                f"CASE_{per_case - 1:04d}), but the run expects {in_channels} channel(s)"
            )
        files = [f for case in dataset.cases for f in case.images if f.exists()]
        return [named([f], strip_suffix(f)) for f in files]
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
    if args.precision is not None:
        overrides["precision"] = args.precision
    if args.device is not None:
        overrides["device"] = args.device
    return overrides


def _cmd_predict(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from volseg.cli._parallel import (
        parse_shard,
        rank_shard,
        relaunch,
        select_shard,
        wait_for_all_ranks,
    )
    from volseg.inference import Predictor
    from volseg.io import strip_suffix

    if args.nproc < 1:
        raise UsageError(f"--nproc must be >= 1, got {args.nproc}")
    shard = parse_shard(args.shard) if args.shard else None
    if args.nproc > 1 and rank_shard() is None:
        return relaunch(args.argv, args.nproc)
    if rank_shard() is not None and args.device != "cpu":
        import torch

        if torch.cuda.is_available():  # one GPU per rank
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    overrides = _infer_overrides(args)
    # the flags are short forms of infer keys; --set infer.KEY=VALUE reaches every key
    flag = {"mirror_axes": "--tta/--mirror-axes"}
    reject_duplicates(
        args.overrides,
        {f"infer.{k}": flag.get(k, f"--{k.replace('_', '-')}") for k in overrides},
    )
    overrides.update(section_overrides(args.overrides, "infer"))
    if len(args.model) > 1:
        predictor = Predictor.from_runs(args.model, **overrides)
    else:
        predictor = Predictor.from_run(args.model[0], **overrides)
    if not args.quiet:
        amp = predictor.config.train.runtime.amp
        why = (
            "chosen"
            if overrides.get("precision") not in (None, "auto")
            else f"auto: trained with amp {amp}"
        )
        print(f"precision: {predictor.precision} ({why})")
    jobs = _prediction_jobs(
        args.input, args.output, predictor.config.data.channels, args.layout, predictor.in_channels
    )
    batch = len(jobs) > 1
    for part in (shard, rank_shard()):
        if part is not None:
            jobs = select_shard(jobs, *part)
    failures = []
    skipped = 0
    scores: dict[str, float] = {}
    for images, out in tqdm(jobs, desc="predicting", disable=len(jobs) < 2 or args.quiet):
        # a 0-byte file is no prediction (an earlier write that failed): redo it
        if out.is_file() and out.stat().st_size > 0 and not args.overwrite and batch:
            skipped += 1
            continue
        probs = (
            out.parent / f"{strip_suffix(out.name)}_probabilities.npz"
            if args.probabilities
            else None
        )
        entropy = out.parent / "uncertainty" / out.name if args.uncertainty else None
        try:
            predictor.predict_file(
                images, out, probabilities=probs, uncertainty=entropy, series=args.series
            )
        except Exception as err:  # one bad case must not stop the batch
            if not batch:
                raise
            message = str(err).strip().splitlines()[0] if str(err).strip() else ""
            failures.append(f"{images[0]}: {type(err).__name__}: {message}")
            continue
        if entropy is not None:
            scores[strip_suffix(out.name)] = _uncertainty_of(entropy, out, predictor.labels[0])
        if not args.quiet:
            tqdm.write(f"wrote {out}")
    if scores:
        path = _write_uncertainty_scores(scores, jobs[0][1].parent / "uncertainty" / "scores.csv")
        if not args.quiet:
            print(f"uncertainty (mean entropy over the predicted foreground): {path}")
    if skipped and not args.quiet:
        print(f"skipped {skipped} case(s) already predicted (--overwrite redoes them)")
    for failure in failures:
        print(f"volseg: failed: {failure}", file=sys.stderr)
    if failures:
        print(f"volseg: {len(failures)} of {len(jobs)} case(s) failed", file=sys.stderr)
    wait_for_all_ranks()
    return 1 if failures else 0


def _uncertainty_of(entropy: Path, label: Path, background: int) -> float:
    from volseg.inference import uncertainty_score
    from volseg.io import read_volume

    return uncertainty_score(read_volume(entropy), read_volume(label), background)


def _write_uncertainty_scores(scores: dict[str, float], path: Path) -> Path:
    """``uncertainty/scores.csv`` (case, uncertainty): this call's cases replace earlier rows.

    Shards (``--shard``, ``--nproc``) write into one folder at once: the read-merge-write is
    serialised by an exclusive lock on a hidden lock file beside it.
    """
    import csv
    import fcntl

    from volseg._atomic import atomic_path

    path.parent.mkdir(parents=True, exist_ok=True)
    with (path.parent / f".{path.name}.lock").open("a", encoding="utf-8") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        merged: dict[str, str] = {}
        if path.is_file():
            with path.open(newline="", encoding="utf-8") as handle:
                merged = {r["case"]: r["uncertainty"] for r in csv.DictReader(handle)}
        merged.update({case: f"{value:.6g}" for case, value in scores.items()})
        with atomic_path(path) as tmp, tmp.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(["case", "uncertainty"])
            writer.writerows(sorted(merged.items()))
    return path


def _cmd_export(args: argparse.Namespace) -> int:
    from volseg.export import export_run

    result = export_run(args.run_dir, args.output, args.format, check_input=args.check_input)
    checked = (
        f"random inputs and {result.real_input}"
        if result.real_input
        else "random inputs only (no training case found; --check-input SCAN adds one)"
    )
    print(
        f"wrote {result.path} ({result.format}; max abs diff from torch "
        f"{result.max_abs_diff:.2g} on {checked})"
    )
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add this module's subcommands."""
    from volseg.data.layouts import list_layouts

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
        help="scan file, several channel files of one scan, a dataset (folder, .csv/.json "
        "manifest) or a .txt case list",
    )
    p.add_argument(
        "-o", "--output", required=True, help="output file, or folder (CASE.nii.gz per case)"
    )
    p.add_argument(
        "--layout",
        default="auto",
        choices=["auto", *list_layouts()],
        help="layout of a dataset -i (default: detected)",
    )
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
    p.add_argument(
        "--uncertainty",
        action="store_true",
        help="also write uncertainty/CASE (voxel-wise entropy, 0-1) and uncertainty/scores.csv "
        "(mean entropy over the predicted foreground; volseg report shows it)",
    )
    p.add_argument(
        "--precision",
        choices=["auto", "fp32", "bf16", "fp16"],
        help="network precision (default auto: what the run trained with; printed)",
    )
    p.add_argument(
        "--device",
        choices=["auto", "cpu", "cuda"],
        help="where the net runs (default auto: CUDA when available)",
    )
    p.add_argument(
        "--shard",
        metavar="K/N",
        help="predict every N-th case starting at the K-th (1-based; N cluster jobs, K=1..N, "
        "cover the batch once)",
    )
    p.add_argument(
        "--nproc",
        type=int,
        default=1,
        help="predict with N processes started by torchrun (one GPU each on CUDA)",
    )
    p.add_argument(
        "--series",
        metavar="UID",
        help="for a DICOM folder holding several series: the SeriesInstanceUID to segment",
    )
    add_set_argument(
        p,
        "the run's infer section (the flags above are short forms)",
        "infer.window=[96,96,96], infer.mirror_axes=[0,1,2], infer.sigma_scale=0.25",
    )
    p.add_argument("-q", "--quiet", action="store_true")
    p.set_defaults(func=_cmd_predict)

    p = sub.add_parser("export", help="export a run to TorchScript or ONNX (checked against torch)")
    p.add_argument("run_dir", help="run directory or checkpoint file")
    p.add_argument("--format", required=True, choices=["onnx", "torchscript"])
    p.add_argument("-o", "--output", required=True, help="output model file")
    p.add_argument(
        "--check-input",
        metavar="SCAN",
        help="scan to check the export on (default: the run's first training case)",
    )
    p.set_defaults(func=_cmd_export)
