"""Demo, synthetic data and paper experiments: ``demo``, ``synth``, ``experiment``."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from volseg.cli._common import UsageError, add_set_argument

if TYPE_CHECKING:
    from volseg.experiments import Experiment


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
    experiment = _with_overrides(args.name, args.profile, args.overrides)
    results = run_experiment(
        args.name, args.out, args.profile, args.seeds, progress=args.verbose, experiment=experiment
    )
    print(f"{args.name}: {results} and {results.parent / 'summary.md'} written")
    return 0


# set for each run by the runner: an override of them would be silently replaced
_PER_RUN_KEYS = ("data.root", "data.val_cases", "run_dir", "train.seed")


def _with_overrides(name: str, profile: str, overrides: Sequence[str]) -> Experiment | None:
    """The experiment with ``--set`` applied to its base config and to every variant's model
    and loss (``model.*``/``loss.*`` keys change each arm); None without overrides."""
    import dataclasses

    from volseg.config import apply_overrides, override_keys
    from volseg.experiments import EXPERIMENTS

    if not overrides:
        return None
    for key in override_keys(overrides):
        if any(key == k or key.startswith(f"{k}.") for k in _PER_RUN_KEYS):
            raise UsageError(f"experiment --set {key}: set by the experiment for each run")
    exp = EXPERIMENTS.create(name, profile=profile)
    variants = []
    for variant in exp.variants:
        arm = dataclasses.replace(exp.base, model=variant.model, loss=variant.loss)
        arm = apply_overrides(arm, overrides)
        variants.append(dataclasses.replace(variant, model=arm.model, loss=arm.loss))
    return dataclasses.replace(
        exp, base=apply_overrides(exp.base, overrides), variants=tuple(variants)
    )


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
    add_set_argument(
        p,
        "every run's config (model.* and loss.* change every variant; use a new --out: "
        "finished runs in --out are kept)",
    )
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
