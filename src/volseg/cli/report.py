"""Reports to look at: ``report`` (one HTML file per run or predictions) and ``compare``."""

from __future__ import annotations

import argparse
from pathlib import Path


def _cmd_report(args: argparse.Namespace) -> int:
    from volseg.metrics import METRICS
    from volseg.report.page import write_report

    unknown = [m for m in args.metrics if m not in METRICS]
    if unknown:
        raise ValueError(f"--metrics: unknown {', '.join(unknown)}; known: {', '.join(METRICS)}")
    output = Path(args.output) if args.output else Path(args.source) / "report.html"
    report = write_report(
        args.source,
        output,
        ref=args.ref,
        images=args.images,
        metrics=args.metrics,
        tolerance=args.tolerance,
        max_voxels=args.max_voxels,
        viewer=not args.no_viewer,
    )
    for note in report.notes:
        print(f"note: {note}")
    print(f"report ({len(report.rows)} case(s)): {report.path}")
    return 0


def _cmd_compare(args: argparse.Namespace) -> int:
    from volseg.report.compare import compare_folders, format_comparison
    from volseg.report.compare_page import write_compare

    comparison = compare_folders(args.folders, names=args.names, metrics=args.metrics)
    print(format_comparison(comparison))
    if args.output:
        path = write_compare(comparison, args.output, images=args.images)
        print(f"comparison page: {path}")
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add this module's subcommands."""
    p = sub.add_parser(
        "report", help="one self-contained HTML report (tables, plots, 3-D viewer) of a run"
    )
    p.add_argument("source", help="run directory (e.g. runs/demo) or folder of predictions")
    p.add_argument("--ref", help="folder of reference label maps (with a folder of predictions)")
    p.add_argument("--images", help="folder of scans (with a folder of predictions)")
    p.add_argument("-o", "--output", help="HTML file (default: SOURCE/report.html)")
    p.add_argument(
        "--metrics",
        nargs="+",
        default=["dice", "hd95"],
        metavar="NAME",
        help="as volseg evaluate (default: dice hd95)",
    )
    p.add_argument("--tolerance", type=float, default=1.0, help="surface_dice tolerance in mm")
    p.add_argument(
        "--max-voxels",
        type=int,
        default=16_000_000,
        help="cases with more voxels are subsampled in the viewer (default 16000000)",
    )
    p.add_argument("--no-viewer", action="store_true", help="leave the NiiVue viewer out")
    p.set_defaults(func=_cmd_report)

    p = sub.add_parser(
        "compare", help="paired statistics of methods scored on the same cases (+ HTML page)"
    )
    p.add_argument(
        "folders",
        nargs="+",
        help="folders holding the metrics.csv of volseg evaluate (or an experiment's results.csv)",
    )
    p.add_argument("--names", nargs="+", help="one name per method (default: folder names)")
    p.add_argument(
        "--metrics", nargs="+", metavar="COLUMN", help="columns to compare (default: all)"
    )
    p.add_argument("--images", help="folder of scans, shown under the predictions in the viewer")
    p.add_argument("-o", "--output", help="also write an HTML page here")
    p.set_defaults(func=_cmd_compare)
