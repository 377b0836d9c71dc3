"""``volseg fingerprint``: measure a dataset (JSON for ``volseg plan``, HTML for a person)."""

from __future__ import annotations

import argparse
import shlex
import sys
import tempfile
from pathlib import Path

from volseg.cli._common import UsageError, dataset_files


def _demo_dataset(folder: Path) -> object:
    """The bundled demo data (the training scan and the held-out heads) via a manifest."""
    import dataclasses

    from volseg.data.layouts import find_cases
    from volseg.demo import DEMO_DATA

    rows = ["case_id,image_t1,label"]  # the channel is named t1: a T1-weighted MR scan
    for sub in ("train", "heldout"):
        for image in sorted((DEMO_DATA / sub).glob("*_t1.nii.gz")):
            case = image.name.removesuffix("_t1.nii.gz")
            rows.append(f"{case},{image},{image.parent / f'{case}_brain.nii.gz'}")
    manifest = folder / "demo.csv"
    manifest.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return dataclasses.replace(find_cases(manifest, layout="manifest"), root=DEMO_DATA)


def _cmd_fingerprint(args: argparse.Namespace) -> int:
    from volseg._atomic import check_not_inputs
    from volseg.fingerprint import fingerprint_dataset, write_fingerprint_page

    if (args.dataset is None) == (not args.demo):
        raise UsageError("fingerprint: give DATASET or --demo (one of them)")
    if args.workers < 1:
        raise UsageError(f"fingerprint: --workers must be 1 or more, got {args.workers}")
    if args.dataset is not None:  # before anything is read: no output may replace an input
        outputs = [args.output, *([args.html] if args.html else [])]
        check_not_inputs(outputs, dataset_files(args.dataset, args.layout))
    with tempfile.TemporaryDirectory(prefix="volseg-fingerprint-") as tmp:
        dataset = _demo_dataset(Path(tmp)) if args.demo else args.dataset
        fp = fingerprint_dataset(
            dataset,  # type: ignore[arg-type]
            workers=args.workers,
            progress=not args.quiet,
            layout=args.layout,
        )
    json_path = fp.write(args.output)
    d = fp.dataset
    print(f"{d.root}: {d.cases} case(s) ({d.labeled} labeled, {d.layout} layout) -> {json_path}")
    s = fp.summary
    print(
        f"  median spacing {' x '.join(f'{v:.3g}' for v in s.spacing.median)} mm ({d.axes}), "
        f"median shape {' x '.join(f'{v:g}' for v in s.shape.median)}; orientations "
        + ", ".join(f"{k} {n}" for k, n in s.orientations.items())
    )
    for c in s.channels:
        print(f"  channel {c.name}: {c.modality} ({c.modality_reason})")
    for o in fp.outliers:
        print(f"  outlier: {o.case_id or 'dataset'} ({o.kind}): {o.detail}")
    if args.html:
        command = "volseg " + shlex.join(sys.argv[1:]) if sys.argv[1:2] == ["fingerprint"] else ""
        print(f"  page: {write_fingerprint_page(fp, args.html, command)}")
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add this module's subcommands."""
    p = sub.add_parser(
        "fingerprint",
        help="measure a dataset: sizes, spacings, orientations, intensities, classes, outliers",
    )
    p.add_argument("dataset", nargs="?", help="dataset folder or manifest (any layout)")
    p.add_argument("--demo", action="store_true", help="fingerprint the bundled demo data")
    p.add_argument(
        "-o", "--output", default="fingerprint.json", help="JSON file (default: fingerprint.json)"
    )
    p.add_argument("--html", metavar="FILE.html", help="also write a page with plots and outliers")
    p.add_argument("--layout", default="auto", help="dataset layout (default: auto-detected)")
    p.add_argument(
        "--workers", type=int, default=2, help="processes reading cases (default 2; 1: no pool)"
    )
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_fingerprint)
