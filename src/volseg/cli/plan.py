"""``volseg plan``: a paper's recipe sized for a dataset and a device, with its reasons."""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from volseg.cli._common import UsageError, dataset_files


def recipe_root(root: str | Path) -> str:
    """``data.root`` as the recipe states it: relative to the working directory when the
    dataset lies below it (``load_config`` resolves it against the directory the recipe is
    used from, as a user expects), else absolute."""
    path = Path(root).resolve()
    try:
        relative = os.path.relpath(path, Path.cwd())
    except ValueError:  # another drive
        return str(path)
    return str(path) if relative.startswith("..") else relative


def _cmd_plan(args: argparse.Namespace) -> int:
    from volseg._atomic import atomic_path, check_not_inputs
    from volseg.fingerprint import Fingerprint, fingerprint_dataset
    from volseg.nn import list_models
    from volseg.plan import Budget, plan_recipe

    try:
        budget = Budget.parse(args.budget, args.minutes)
    except ValueError as err:
        raise UsageError(f"plan: {err}") from None
    if args.net not in list_models():
        raise UsageError(f"plan: --net {args.net!r}: known nets: {', '.join(list_models())}")
    start = time.monotonic()
    source = Path(args.dataset)
    out = Path(args.output)
    fp: Fingerprint | None = None
    if source.is_file() and source.suffix == ".json" and args.layout == "auto":
        try:
            fp = Fingerprint.read(source)
        except (ValueError, KeyError, TypeError):
            fp = None  # a JSON manifest, not a fingerprint
    # before anything is computed: the recipe may never replace an input
    inputs = [source] if fp is not None else dataset_files(source, args.layout)
    check_not_inputs([out], [*inputs, *([args.recipe] if args.recipe else [])])
    if fp is None:
        fp = fingerprint_dataset(
            source, workers=args.workers, progress=not args.quiet, layout=args.layout
        )
    print(f"planning {args.net} for {fp.dataset.root} ({budget}); trial steps:")
    plan = plan_recipe(
        fp,
        args.net,
        budget,
        recipe=args.recipe,
        dims=args.dims,
        log=(lambda line: None) if args.quiet else print,
    )
    plan.recipe["data"]["root"] = recipe_root(fp.dataset.root)
    text = plan.yaml()
    with atomic_path(out) as tmp:
        tmp.write_text(text, encoding="utf-8")
    train = plan.recipe["train"]
    print(
        f"-> {out}: patch {'x'.join(map(str, train['patch_size']))} x batch "
        f"{train['batch_size']}, {train.get('epochs')} epochs x "
        f"{train.get('iterations_per_epoch', 20)} steps ({time.monotonic() - start:.0f} s, "
        f"{len(plan.trials)} trial steps)"
    )
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add this module's subcommands."""
    p = sub.add_parser(
        "plan",
        help="a paper recipe sized for a dataset and a device (spacing, patch, depth, time)",
    )
    p.add_argument("dataset", help="dataset folder or manifest, or its fingerprint JSON")
    p.add_argument("--net", required=True, help="registered net (see volseg info)")
    p.add_argument(
        "--budget",
        default="gpu:24GB",
        help="gpu:SIZE (memory, e.g. gpu:24GB) or cpu:N (threads; with --minutes)",
    )
    p.add_argument("--minutes", type=float, help="training time of a cpu:N budget")
    p.add_argument("-o", "--output", default="recipe.yaml", help="recipe YAML (recipe.yaml)")
    p.add_argument("--recipe", help="start from this recipe (default: the net's paper recipe)")
    p.add_argument("--dims", default="auto", choices=["auto", "2", "3"], help="2-D or 3-D net")
    p.add_argument("--layout", default="auto", help="dataset layout (default: auto-detected)")
    p.add_argument("--workers", type=int, default=1, help="processes fingerprinting (default 1)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress or trial lines")
    p.set_defaults(func=_cmd_plan)
