"""Demo, synthetic data and paper experiments: ``demo``, ``synth``, ``experiment``."""

from __future__ import annotations

import argparse
from pathlib import Path

from volseg.cli._common import UsageError


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
    if args.doc:
        from volseg.experiments.docs import write_docs

        if args.name is not None:
            raise UsageError("experiment --doc: give --results DIR ..., not a NAME")
        doc = write_docs(args.doc, args.results or ())
        print(f"wrote the results of {len(args.results or ())} experiment folder(s) into {doc}")
        return 0
    if args.results:
        raise UsageError("experiment: --results goes with --doc FILE.md")
    if args.name is None or args.out is None:
        raise UsageError("experiment: give NAME and --out DIR, or --list")
    if args.name not in list_experiments():
        raise UsageError(
            f"experiment: unknown {args.name!r}; one of {', '.join(list_experiments())}"
        )
    results = run_experiment(args.name, args.out, args.profile, args.seeds, progress=args.verbose)
    print(f"{args.name}: {results} and {results.parent / 'summary.md'} written")
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add this module's subcommands."""
    p = sub.add_parser("demo", help="train, predict and evaluate the bundled brain-extraction demo")
    p.add_argument("--run-dir", default="runs/demo")
    p.add_argument("--minutes", type=float, default=None, help="training time budget")
    p.add_argument("-q", "--quiet", action="store_true")
    p.set_defaults(func=_cmd_demo)

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
    p.add_argument(
        "--doc",
        metavar="FILE.md",
        help="write the measured results into FILE.md between its markers (no training); "
        "copies each --results folder's CSVs and PNGs to FILE/NAME/",
    )
    p.add_argument(
        "--results",
        nargs="+",
        metavar="DIR",
        help="finished experiment folders for --doc (default: re-render the copies)",
    )
    p.set_defaults(func=_cmd_experiment)
