"""The shared runner, statistics and report of the paper experiments (``volseg experiment``).

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
* ``summary.md`` — mean +/- std per variant, each comparison's paired difference over the
  (seed, [fold,] case) pairs with a seeded 95 % bootstrap interval and a Wilcoxon signed-rank
  p-value (:func:`paired_stats`), and the paper's figure beside ours;
* the experiment's PNG plots.

Warning: trains ``variants x seeds [x folds]`` models one after another.
"""

from __future__ import annotations

import csv
import dataclasses
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from volseg.config import Config, LossConfig, ModelConfig
from volseg.data.layouts import Case, find_cases
from volseg.data.splits import kfold_splits
from volseg.inference import Predictor
from volseg.io import read_volume
from volseg.metrics import evaluate_case
from volseg.registry import Registry
from volseg.training.checkpoint import load_checkpoint
from volseg.training.trainer import train

__all__ = [
    "EXPERIMENTS",
    "Experiment",
    "PairedStats",
    "Profile",
    "Run",
    "Variant",
    "list_experiments",
    "paired_stats",
    "register_experiment",
    "run_experiment",
]

Profile = Literal["smoke", "full"]


@dataclass(frozen=True)
class Variant:
    """One arm of an experiment: its name and the only parts that differ (model, loss)."""

    name: str
    model: ModelConfig
    loss: LossConfig


@dataclass(frozen=True)
class Run:
    """One finished training run of a variant (its seed and fold) and its directory."""

    variant: str
    seed: int
    fold: int | None
    run_dir: Path


PlotFn = Callable[[Path, Sequence[Run]], None]


@dataclass(frozen=True)
class Experiment:
    """What :func:`run_experiment` trains, scores and reports.

    Attributes:
        name: the registry name.
        title: one line naming the paper and the claim.
        paper: the paper's own figure, quoted beside ours in ``summary.md``.
        dataset: the :func:`volseg.synth.write_synth` name; ``synth`` its keyword arguments
            (``cases``, ``test_cases``, generator options).
        base: the config every variant starts from (``data.root``, ``run_dir`` and
            ``train.seed`` are set per run).
        variants: the arms; ``comparisons``: (method, baseline) pairs of variant names.
        seeds: default number of seeds of this profile.
        folds: 0 trains on ``imagesTr`` and scores ``imagesTs``; ``k`` cross-validates over the
            training cases (the same seeded folds for every variant and seed) and scores each
            fold's held-out cases.
        hd95: also report HD95 in mm.
        plots: ``plot(out_dir, runs)`` functions drawing PNGs from the runs.
        curves: ``log.csv`` columns whose last-epoch and mean-over-epochs values (mean +/- std
            over runs) ``summary.md`` lists per variant; with ``train_dice`` and ``val_dice``
            also their gap.
        notes: what this profile uses, for ``summary.md``.
    """

    name: str
    title: str
    paper: str
    dataset: str
    synth: dict[str, Any]
    base: Config
    variants: tuple[Variant, ...]
    comparisons: tuple[tuple[str, str], ...]
    seeds: int = 3
    folds: int = 0
    hd95: bool = False
    plots: tuple[PlotFn, ...] = ()
    curves: tuple[str, ...] = ()
    notes: str = ""


EXPERIMENTS = Registry[Experiment]("experiment")


def register_experiment(name: str) -> Callable[[Callable[..., Experiment]], Any]:
    """Register ``factory(profile) -> Experiment`` under ``name``."""
    return EXPERIMENTS.register(name)


def list_experiments() -> list[str]:
    return EXPERIMENTS.list()


# ---------------------------------------------------------------------------------- statistics


@dataclass(frozen=True)
class PairedStats:
    """Paired differences ``method - baseline``: mean, 95 % bootstrap interval, Wilcoxon p.

    ``p`` is ``None`` when the Wilcoxon test cannot be computed; ``note`` then says why.
    """

    n: int
    mean: float
    low: float
    high: float
    p: float | None
    note: str = ""


def paired_stats(
    method: Sequence[float], baseline: Sequence[float], resamples: int = 2000, seed: int = 0
) -> PairedStats:
    """Mean paired difference with a percentile bootstrap 95 % interval and a Wilcoxon p-value.

    The pairs are resampled with replacement ``resamples`` times from
    ``numpy.random.default_rng(seed)`` (so the interval is reproducible); the p-value is
    ``scipy.stats.wilcoxon(method - baseline)`` (two-sided), ``None`` when every difference is
    zero or there are fewer than two pairs.
    """
    from scipy.stats import wilcoxon

    d = np.asarray(method, dtype=float) - np.asarray(baseline, dtype=float)
    if d.ndim != 1 or d.size == 0:
        raise ValueError(
            f"need two equal-length non-empty sequences, got {len(method)}, {len(baseline)}"
        )
    rng = np.random.default_rng(seed)
    means = d[rng.integers(0, d.size, size=(resamples, d.size))].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    p: float | None = None
    note = ""
    if d.size < 2:
        note = "Wilcoxon not computed: fewer than two pairs"
    elif np.all(d == 0):
        note = "Wilcoxon not computed: every difference is zero"
    else:
        p = float(wilcoxon(d).pvalue)
    return PairedStats(int(d.size), float(d.mean()), float(low), float(high), p, note)


# -------------------------------------------------------------------------------------- runner


def _run_done(run_dir: Path, epochs: int) -> bool:
    last = run_dir / "checkpoint_last.pt"
    if not last.is_file():
        return False
    checkpoint = load_checkpoint(last)
    return checkpoint.epoch >= epochs or checkpoint.trainer.stop_reason is not None


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


def _score(predictor: Predictor, case: Case, hd95: bool) -> dict[str, float]:
    """Dice (and HD95 in mm) per label, or per region for a region model, with their means."""
    assert case.label is not None
    pred = predictor.predict(list(case.images))
    ref = read_volume(case.label)
    region_model = predictor.regions is not None
    scores = evaluate_case(
        pred.array[0],
        ref.array[0],
        tuple(reversed(ref.spacing)),
        () if region_model else predictor.labels,
        metrics=("dice", "hd95") if hd95 else ("dice",),
        regions=predictor.regions,
    )
    out: dict[str, float] = {}
    for metric in ("dice", "hd95") if hd95 else ("dice",):
        parts = {k: v for k, v in scores.items() if k.startswith(f"{metric}_")}
        out[metric] = float(np.mean(list(parts.values())))
        out.update(parts)
    return out


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
    if _run_done(run_dir, config.train.epochs):
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
                    row.update(_score(predictor, case, exp.hd95))
                    rows.append(row)
    results = out / "results.csv"
    _write_csv(rows, results)
    (out / "summary.md").write_text(summary_markdown(exp, rows, profile, n_seeds, runs))
    for plot in exp.plots:
        plot(out, runs)
    plot_dice_distribution(out, rows)
    return results


def _write_csv(rows: Sequence[dict[str, Any]], path: Path) -> None:
    from volseg._atomic import atomic_path

    with atomic_path(path) as tmp, tmp.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, list(rows[0]))
        writer.writeheader()
        for row in rows:
            writer.writerow({k: f"{v:.6g}" if isinstance(v, float) else v for k, v in row.items()})


# -------------------------------------------------------------------------------------- report


def _fmt(x: float) -> str:
    return "n/a" if not math.isfinite(x) else f"{x:.3f}"


def summary_markdown(
    exp: Experiment,
    rows: Sequence[dict[str, Any]],
    profile: str,
    seeds: int,
    runs: Sequence[Run] = (),
) -> str:
    """``summary.md``: mean +/- std per variant, the paired comparisons, the paper's figure."""
    names = [v.name for v in exp.variants]
    metrics = ["dice", "hd95"] if exp.hd95 else ["dice"]
    lines = [
        f"# {exp.name}: {exp.title}",
        "",
        f"Profile `{profile}`, {seeds} seeds, dataset `{exp.dataset}` ({exp.synth}). " + exp.notes,
        "",
        "| variant | " + " | ".join(f"{m} mean +/- std" for m in metrics) + " | n |",
        "|---|" + "---|" * len(metrics) + "---|",
    ]
    for name in names:
        mine = [r for r in rows if r["variant"] == name]
        cells = []
        for m in metrics:
            values = np.array([r[m] for r in mine], dtype=float)
            finite = values[np.isfinite(values)]
            cell = _mean_std(list(finite)) if finite.size else "n/a"
            if finite.size < values.size:  # HD95 of an empty mask is inf
                cell += f" ({values.size - finite.size} infinite left out)"
            cells.append(cell)
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {len(mine)} |")
    if exp.folds:
        lines += [
            "",
            "Mean Dice per fold (over seeds and held-out cases), and its std over folds:",
            "",
        ]
        for name in names:
            per_fold = [
                float(np.mean([r["dice"] for r in rows if r["variant"] == name and r["fold"] == k]))
                for k in range(exp.folds)
            ]
            lines.append(
                f"- {name}: "
                + ", ".join(_fmt(x) for x in per_fold)
                + f"; std over folds {_fmt(float(np.std(per_fold)))}"
            )
    if exp.curves and runs:
        lines += ["", *_curve_lines(exp, runs)]
    lines += ["", "## Paired differences (method - baseline, Dice)", ""]
    for method, baseline in exp.comparisons:
        key = ("seed", "fold", "case") if exp.folds else ("seed", "case")
        a = {tuple(r[k] for k in key): r["dice"] for r in rows if r["variant"] == method}
        b = {tuple(r[k] for k in key): r["dice"] for r in rows if r["variant"] == baseline}
        pairs = sorted(set(a) & set(b))
        s = paired_stats([a[p] for p in pairs], [b[p] for p in pairs])
        p_text = f"p = {s.p:.4g}" if s.p is not None else s.note
        lines.append(
            f"- {method} - {baseline}: mean difference {s.mean:+.4f} over {s.n} "
            f"({', '.join(key)}) pairs; 95% bootstrap interval [{s.low:+.4f}, {s.high:+.4f}] "
            f"(2000 resamples, seed 0); Wilcoxon signed-rank {p_text}"
        )
    lines += ["", "## The paper's figure beside ours", "", f"- paper: {exp.paper}"]
    ours = ", ".join(
        f"{n} {_fmt(float(np.mean([r['dice'] for r in rows if r['variant'] == n])))}" for n in names
    )
    lines += [f"- here (mean Dice, synthetic data, profile `{profile}`): {ours}", ""]
    if profile == "smoke":
        lines += ["Smoke profile: a plumbing check, not a measurement of the claim.", ""]
    return "\n".join(lines)


def _mean_std(values: Sequence[float]) -> str:
    return f"{_fmt(float(np.mean(values)))} +/- {_fmt(float(np.std(values)))}"


def _curve_lines(exp: Experiment, runs: Sequence[Run]) -> list[str]:
    """Per variant: each curve's last-epoch and mean-over-epochs value over runs (and the gap)."""
    lines = ["## Training curves (log.csv; mean +/- std over runs)", ""]
    for name in [v.name for v in exp.variants]:
        logs = [read_log(r.run_dir) for r in runs if r.variant == name]
        parts = []
        for column in exp.curves:
            last = [log[column][-1] for log in logs]
            parts.append(
                f"{column} last epoch {_mean_std(last)}, "
                f"mean over epochs {_mean_std([float(np.nanmean(log[column])) for log in logs])}"
            )
        if {"train_dice", "val_dice"} <= set(exp.curves):
            gap = [log["train_dice"][-1] - log["val_dice"][-1] for log in logs]
            parts.append(f"gap train - val last epoch {_mean_std(gap)}")
        lines.append(f"- {name}: " + "; ".join(parts))
    return lines


# --------------------------------------------------------------------------------------- plots


def _save(fig: Any, path: Path) -> None:
    import matplotlib.pyplot as plt

    from volseg._atomic import atomic_path

    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)


def _figure() -> tuple[Any, Any]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=(6, 4), layout="constrained")


def plot_dice_distribution(out: Path, rows: Sequence[dict[str, Any]]) -> None:
    """``dice_distribution.png``: Dice over held-out cases and seeds per variant (V-Net Fig. 5)."""
    fig, ax = _figure()
    names = list(dict.fromkeys(r["variant"] for r in rows))
    data = [[r["dice"] for r in rows if r["variant"] == n] for n in names]
    ax.boxplot(data, showmeans=True)
    ax.set_xticks(range(1, len(names) + 1), names)
    for i, values in enumerate(data, start=1):
        ax.plot(
            np.full(len(values), i) + np.linspace(-0.1, 0.1, len(values)), values, ".", alpha=0.5
        )
    ax.set_ylabel("Dice per held-out case")
    ax.set_ylim(0, 1)
    _save(fig, out / "dice_distribution.png")


def read_log(run_dir: Path) -> dict[str, list[float]]:
    """``log.csv`` of a run as columns of floats (empty cells: NaN)."""
    with (run_dir / "log.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    return {
        k: [float(r[k]) if r[k] not in ("", None) else math.nan for r in rows]
        for k in (rows[0] if rows else {})
    }


def plot_curves(columns: Sequence[str], filename: str, ylabel: str) -> PlotFn:
    """A plot of ``log.csv`` columns against epochs, mean over seeds (and folds) per variant."""

    def plot(out: Path, runs: Sequence[Run]) -> None:
        fig, ax = _figure()
        for v_index, name in enumerate(dict.fromkeys(r.variant for r in runs)):
            logs = [read_log(r.run_dir) for r in runs if r.variant == name]
            for c_index, column in enumerate(columns):
                curves = np.array([log[column] for log in logs], dtype=float)
                epochs = np.arange(1, curves.shape[1] + 1)
                ax.plot(
                    epochs,
                    np.nanmean(curves, axis=0),
                    color=f"C{v_index}",
                    linestyle=("-", "--", ":")[c_index % 3],
                    marker=".",
                    label=f"{name} {column}",
                )
        ax.set_xlabel("epoch")
        ax.set_ylabel(ylabel)
        ax.legend(fontsize="small")
        _save(fig, out / filename)

    return plot


def plot_grad_norms(out: Path, runs: Sequence[Run]) -> None:
    """``grad_norms.png``: last epoch's per-layer gradient norm against depth, per variant.

    Mean over seeds (and folds), from each run's ``grad_norms.csv``
    (``train.runtime.log_grad_norms``). Only the layers every variant has are drawn (a
    projection shortcut exists only with short skips), in ``named_parameters`` order (input to
    output), so the x positions match across the lines.
    """
    norms: dict[str, list[dict[str, float]]] = {}
    order: list[str] = []
    for run in runs:
        with (run.run_dir / "grad_norms.csv").open() as handle:
            rows = list(csv.DictReader(handle))
        last = max(int(r["epoch"]) for r in rows)
        layers = {r["layer"]: float(r["norm"]) for r in rows if int(r["epoch"]) == last}
        norms.setdefault(run.variant, []).append(layers)
        order = order or list(layers)
    common = [name for name in order if all(name in d for ds in norms.values() for d in ds)]
    fig, ax = _figure()
    for v_index, (variant, dicts) in enumerate(norms.items()):
        mean = [float(np.mean([d[name] for d in dicts])) for name in common]
        ax.plot(np.arange(len(common)), mean, color=f"C{v_index}", marker=".", label=variant)
    ax.set_yscale("log")
    ax.set_xlabel(f"layer, input to output ({len(common)} layers every variant has)")
    ax.set_ylabel("gradient L2 norm, last epoch")
    ax.legend(fontsize="small")
    _save(fig, out / "grad_norms.png")
