"""``volseg plan``: a paper's recipe sized for a dataset and a device, with its reasons."""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from volseg.cli._common import UsageError


def _cmd_plan(args: argparse.Namespace) -> int:
    from volseg._atomic import atomic_path
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
    if source.is_file() and source.suffix == ".json" and args.layout == "auto":
        try:
            fp = Fingerprint.read(source)
        except (ValueError, KeyError, TypeError):
            fp = fingerprint_dataset(source, workers=args.workers, progress=False)
    else:
        fp = fingerprint_dataset(
            source, workers=args.workers, progress=not args.quiet, layout=args.layout
        )
    out = Path(args.output)
    print(f"planning {args.net} for {fp.dataset.root} ({budget}); trial steps:")
    plan = plan_recipe(
        fp,
        args.net,
        budget,
        recipe=args.recipe,
        dims=args.dims,
        log=(lambda line: None) if args.quiet else print,
    )
    root = Path(fp.dataset.root).resolve()
    try:  # below the recipe's folder: relative to it, as load_config resolves it
        relative = os.path.relpath(root, out.resolve().parent)
    except ValueError:  # another drive
        relative = ".."
    plan.recipe["data"]["root"] = str(root) if relative.startswith("..") else relative
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
