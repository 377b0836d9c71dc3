"""Run a paper experiment (``volseg experiment``): train, score, report.

An :class:`Experiment` is data: a synthetic dataset, a base :class:`volseg.config.Config`, the
variants (each differs from the others only in the switch under test: model kwargs or loss),
the comparisons (the paper's method against its baseline), the paper's own figure and the plots.
:func:`run_experiment` writes into ``OUT``:

* ``data/`` — the synthetic dataset (:func:`volseg.synth.write_synth`; written once);
* ``runs/VARIANT/seed_S[/fold_K]/`` — ordinary volseg run directories: a finished run is
  skipped, an interrupted one resumed (``train(config, resume=True)``);
* ``results.csv`` — one row per variant x seed x [fold x] held-out case: Dice (mean over the
  labels, or the regions of a region model), per-label Dice and, where it applies, HD95 in mm,
  scored by the :class:`volseg.inference.Predictor` on the scan's own grid (redone from the
  runs on every call);
* ``curves.csv`` — one row per run and epoch: the training curves of every run (``log.csv``);
* ``experiment.json`` — name, profile, seeds, runs and the summed training time;
* ``summary.md`` — mean +/- std per variant, each of the paper's claims tested on its paired
  differences (seeded 95 % bootstrap interval, Wilcoxon signed-rank p-value, a verdict; see
  :mod:`volseg.experiments.claims`), and the paper's figure beside ours;
* the experiment's PNG plots;
* ``report.html`` — the same comparison as a self-contained page (``volseg compare OUT``).

``results.csv``, ``curves.csv`` and ``experiment.json`` are all that
:func:`volseg.experiments.docs.write_docs` needs to write the results into the documentation.

Warning: trains ``variants x seeds [x folds]`` models one after another.
"""

from __future__ import annotations

import csv
import dataclasses
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from volseg._atomic import atomic_path
from volseg.config import Config
from volseg.data.layouts import Case, find_cases
from volseg.data.splits import kfold_splits
from volseg.evaluation import score_case
from volseg.experiments.base import EXPERIMENTS, Experiment, Profile, Run, Variant
from volseg.experiments.plots import plot_dice_distribution, read_log
from volseg.experiments.report import summary_markdown
from volseg.inference import Predictor
from volseg.training.checkpoint import run_finished
from volseg.training.trainer import train

__all__ = ["run_experiment"]


def _test_cases(root: Path, channels: int) -> list[Case]:
    """The held-out cases ``imagesTs/CASE_XXXX.nii.gz`` with ``labelsTs/CASE.nii.gz``."""
    cases = []
    for label in sorted((root / "labelsTs").glob("*.nii.gz")):
        case_id = label.name.removesuffix(".nii.gz")
        images = tuple(root / "imagesTs" / f"{case_id}_{c:04d}.nii.gz" for c in range(channels))
        cases.append(Case(case_id, images, label))
    if not cases:
        raise ValueError(f"{root}: no held-out cases in labelsTs/")
    return cases


def _run_config(
    exp: Experiment,
    variant: Variant,
    seed: int,
    root: Path,
    run_dir: Path,
    val_cases: Sequence[str] = (),
) -> Config:
    base = exp.base
    data = dataclasses.replace(base.data, root=str(root), val_cases=tuple(val_cases))
    return dataclasses.replace(
        base,
        data=data,
        model=variant.model,
        loss=variant.loss,
        train=dataclasses.replace(base.train, seed=seed),
        run_dir=str(run_dir),
    )


def _train_or_skip(config: Config, progress: bool) -> None:
    run_dir = Path(config.run_dir)
    if run_finished(run_dir, config.train.epochs):
        return
    resume = (run_dir / "checkpoint_last.pt").is_file()
    if progress:
        print(f"{'resuming' if resume else 'training'} {run_dir}")
    train(config, progress=progress, resume=resume)


def run_experiment(
    name: str,
    out: str | Path,
    profile: Profile = "smoke",
    seeds: int | None = None,
    progress: bool = False,
    experiment: Experiment | None = None,
) -> Path:
    """Train (or resume, or skip) every run, score the held-out cases, write the report.

    Args:
        name: a registered experiment (:func:`list_experiments`).
        out: the experiment folder (see the module docstring).
        profile: ``smoke`` (tiny, minutes on a CPU) or ``full`` (paper-like, CPU-sized).
        seeds: seeds 0 .. seeds-1 (default: the profile's, 2 for smoke and 3 for full).
        experiment: an already-built experiment (tests shrink one); default
            ``EXPERIMENTS.create(name, profile=profile)``.
    Returns:
        ``out/results.csv``.
    """
    from volseg.synth import write_synth

    exp = experiment or EXPERIMENTS.create(name, profile=profile)
    n_seeds = exp.seeds if seeds is None else seeds
    if n_seeds < 2:
        raise ValueError(f"seeds: need at least 2 for the statistics, got {n_seeds}")
    out = Path(out)
    root = out / "data"
    if not (root / "dataset.json").is_file():
        synth = dict(exp.synth)
        write_synth(exp.dataset, root, synth.pop("cases"), 0, synth.pop("test_cases"), **synth)
    dataset = find_cases(root, exp.base.data.layout, exp.base.data.channels)
    by_id = {c.case_id: c for c in dataset.cases}

    if exp.folds:
        folds = kfold_splits(list(by_id), exp.folds, seed=0)
        jobs = [(f["fold"], f["val"], [by_id[i] for i in f["val"]]) for f in folds]
    else:
        jobs = [(None, [], _test_cases(root, len(dataset.channel_names)))]

    rows: list[dict[str, Any]] = []
    runs: list[Run] = []
    for variant in exp.variants:
        for seed in range(n_seeds):
            for fold, val_ids, cases in jobs:
                run_dir = out / "runs" / variant.name / f"seed_{seed}"
                if fold is not None:
                    run_dir = run_dir / f"fold_{fold}"
                config = _run_config(exp, variant, seed, root, run_dir, val_ids)
                _train_or_skip(config, progress)
                runs.append(Run(variant.name, seed, fold, run_dir))
                predictor = Predictor.from_run(run_dir)
                for case in cases:
                    row: dict[str, Any] = {
                        "experiment": exp.name,
                        "variant": variant.name,
                        "seed": seed,
                    }
                    if fold is not None:
                        row["fold"] = fold
                    row["case"] = case.case_id
                    row.update(
                        score_case(predictor, case, ("dice", "hd95") if exp.hd95 else ("dice",))
                    )
                    rows.append(row)
    results = out / "results.csv"
    _write_csv(rows, results)
    curves = _curve_rows(runs)
    _write_csv(curves, out / "curves.csv")
    minutes = sum(float(r["seconds"]) for r in _last_epochs(curves)) / 60
    meta = {"experiment": exp.name, "profile": profile, "seeds": n_seeds, "runs": len(runs)}
    with atomic_path(out / "experiment.json") as tmp:
        tmp.write_text(
            json.dumps({**meta, "training_minutes": round(minutes, 1)}, indent=1), encoding="utf-8"
        )
    with atomic_path(out / "summary.md") as tmp:
        tmp.write_text(summary_markdown(exp, rows, profile, n_seeds, curves), encoding="utf-8")
    for plot in exp.plots:
        plot(out, runs)
    plot_dice_distribution(out, rows)
    _write_report(out)
    return results


def _write_report(out: Path) -> Path:
    """``out/report.html``: every variant against the first, paired per (seed, [fold,] case)."""
    from volseg.report.compare import compare_folders
    from volseg.report.compare_page import write_compare

    return write_compare(compare_folders([out]), out / "report.html")


CURVE_COLUMNS = ("train_loss", "train_dice", "val_loss", "val_dice", "lr", "seconds")


def _curve_rows(runs: Sequence[Run]) -> list[dict[str, Any]]:
    """One row per run and epoch with the :data:`CURVE_COLUMNS` its ``log.csv`` has."""
    rows: list[dict[str, Any]] = []
    for run in runs:
        log = read_log(run.run_dir)
        head: dict[str, Any] = {"variant": run.variant, "seed": run.seed}
        if run.fold is not None:
            head["fold"] = run.fold
        for i, epoch in enumerate(log["epoch"]):
            row = {**head, "epoch": int(epoch)}
            row.update({c: log[c][i] if c in log else "" for c in CURVE_COLUMNS})
            rows.append(row)
    return rows


def _last_epochs(curves: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    last: dict[tuple[Any, ...], dict[str, Any]] = {}
    for row in curves:
        last[(row["variant"], row["seed"], row.get("fold"))] = row  # epochs are in order
    return list(last.values())


def _write_csv(rows: Sequence[dict[str, Any]], path: Path) -> None:
    with atomic_path(path) as tmp, tmp.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, list(rows[0]))
        writer.writeheader()
        for row in rows:
            writer.writerow({k: f"{v:.6g}" if isinstance(v, float) else v for k, v in row.items()})
