"""Scoring and data commands: ``evaluate`` and ``check``."""

from __future__ import annotations

import argparse


def _labels_arg(values: list[str] | None) -> tuple[list[int] | None, dict[int, str] | None]:
    """``--labels 1 2`` (values to score) or ``--labels dataset.json`` (names of the columns)."""
    if values and len(values) == 1 and values[0].lower().endswith(".json"):
        from volseg.metrics.names import read_label_names

        return None, read_label_names(values[0])
    try:
        return (None if values is None else [int(v) for v in values]), None
    except ValueError:
        raise ValueError(
            f"--labels {' '.join(values or [])}: expected integers or one .json file"
        ) from None


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from volseg.evaluation import evaluate_folders
    from volseg.metrics import METRICS, LesionRules, aggregate
    from volseg.report import format_table

    unknown = [m for m in args.metrics if m not in METRICS]
    if unknown:
        raise ValueError(f"--metrics: unknown {', '.join(unknown)}; known: {', '.join(METRICS)}")
    lesions = LesionRules(
        connectivity=args.lesion_connectivity,
        match=args.lesion_match,
        dilation=args.lesion_dilation,
        min_volume=args.lesion_min_volume,
        miss_distance=args.lesion_miss_distance,
    )
    lesions.check(3)
    labels, names = _labels_arg(args.labels)
    rows, summary, csv_path = evaluate_folders(
        args.pred,
        args.ref,
        labels=labels,
        names=names,
        output=args.output,
        metrics=args.metrics,
        regions=args.regions,
        tolerance=args.tolerance,
        empty_distance=args.empty_distance,
        convention=args.convention,
        empty=args.empty,
        lesions=lesions,
        layout=args.layout,
        allow_missing=args.allow_missing,
    )
    columns = ["case", *[k for k in rows[0] if k != "case"]]
    print(format_table(rows, columns))
    stats = [{"metric": k, **v} for k, v in aggregate(rows).items()]
    print(format_table(stats, ["metric", "mean", "std", "median", "n", "nonfinite"]))
    print(
        "  ".join(
            f"{k}: {m:g} of {s:g} cases"
            if k.endswith("_nonfinite")
            else f"{k}: {m:.4f} +/- {s:.4f}"
            for k, (m, s) in summary.items()
        )
    )
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


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add this module's subcommands."""
    from volseg.data.layouts import list_layouts

    layouts = ["auto", *list_layouts()]
    p = sub.add_parser("evaluate", help="Dice, HD95, lesion-wise scores... of predictions")
    p.add_argument("--pred", required=True, help="folder of predicted label maps (CASE.nii.gz)")
    p.add_argument(
        "--ref",
        required=True,
        help="folder of reference label maps (CASE.nii.gz), or a labelled dataset "
        "(manifest, MSD, BraTS...); paired by case id",
    )
    p.add_argument(
        "--layout",
        default="auto",
        choices=layouts,
        help="layout of --ref (default: detected; folder = a folder of label maps)",
    )
    p.add_argument(
        "--allow-missing",
        action="store_true",
        help="score the references that have a prediction when some have none "
        "(default: an error naming them)",
    )
    p.add_argument(
        "--labels",
        nargs="+",
        metavar="LABEL",
        help="labels to score (default: all > 0, or none with --regions), or a dataset.json "
        "whose 'labels' name the columns (dice_liver; default: a dataset.json in REF or its "
        "parent)",
    )
    p.add_argument(
        "--metrics",
        nargs="+",
        default=["dice", "hd95"],
        metavar="NAME",
        help="dice jaccard precision recall specificity accuracy hd hd95 assd surface_dice "
        "lesion_dice lesion_hd95 lesion_precision lesion_recall lesion_f1 lesion_count_diff "
        "lesion_volume_diff (default: dice hd95)",
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
    p.add_argument(
        "--convention",
        choices=["voxel", "surfel"],
        default="voxel",
        help="surface distances: voxel = surface voxels (MONAI, MedPy; default), surfel = "
        "surface elements weighted by area (DeepMind surface-distance, MetricsReloaded)",
    )
    p.add_argument(
        "--empty",
        choices=["documented", "nan"],
        default="documented",
        help="0/0 ratios and empty pairs: documented = volseg's values (Dice 1 when both are "
        "empty), nan = NaN, left out of the means and counted (MONAI)",
    )
    p.add_argument(
        "--empty-distance",
        type=float,
        default=float("inf"),
        metavar="MM",
        help="distance written when exactly one mask is empty (default inf; BraTS: 374)",
    )
    g = p.add_argument_group("lesion-wise metrics (lesion_*)")
    g.add_argument("--lesion-connectivity", type=int, choices=[26, 6], default=26)
    g.add_argument(
        "--lesion-match",
        choices=["overlap", "iou"],
        default="overlap",
        help="overlap = any shared voxel (BraTS, ISLES; default), iou = IoU > 0.5",
    )
    g.add_argument(
        "--lesion-dilation",
        type=int,
        default=0,
        metavar="N",
        help="dilate reference lesions N times to merge and match them (BraTS 2023: 3 or 1)",
    )
    g.add_argument(
        "--lesion-min-volume",
        type=float,
        default=0.0,
        metavar="MM3",
        help="leave out reference lesions of at most this volume (BraTS 2023: 50)",
    )
    g.add_argument(
        "--lesion-miss-distance",
        type=float,
        metavar="MM",
        help="HD95 of a missed lesion or a false positive (default: the image diagonal; "
        "BraTS 2023: 374)",
    )
    p.add_argument("-o", "--output", help="CSV path (default: PRED/metrics.csv)")
    p.set_defaults(func=_cmd_evaluate)

    p = sub.add_parser("check", help="list every problem in a dataset")
    p.add_argument("dataset", help="dataset folder (any layout, or holding a manifest) or file")
    p.add_argument("--layout", default="auto", choices=layouts, help="default: detected")
    p.set_defaults(func=_cmd_check)
