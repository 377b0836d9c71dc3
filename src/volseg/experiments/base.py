"""What a paper experiment is (variants, claims, the paper's figure) and their registry.

Each claim is one module that registers a factory ``profile -> Experiment``;
:mod:`volseg.experiments.runner` trains, scores and reports it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from volseg.config import Config, LossConfig, ModelConfig
from volseg.registry import Registry

__all__ = [
    "EXPERIMENTS",
    "Claim",
    "Experiment",
    "PlotFn",
    "Profile",
    "Run",
    "Variant",
    "list_experiments",
    "register_experiment",
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
class Claim:
    """One statement of the paper, tested as "``method`` beats ``baseline`` on ``measure``".

    ``measure`` names what is paired (see :mod:`volseg.experiments.claims`):

    * ``dice`` / ``hd95`` — per held-out case, paired on (seed, [fold,] case);
    * ``last:COLUMN`` / ``mean:COLUMN`` — a ``log.csv`` column's last-epoch value or its mean
      over epochs, per run, paired on (seed, [fold]);
    * ``gap`` — last-epoch ``train_dice - val_dice`` per run;
    * ``fold_std`` — per seed, the std over folds of the folds' mean Dice.

    ``higher_is_better`` says which sign of ``method - baseline`` the paper predicts.
    """

    text: str
    method: str
    baseline: str
    measure: str = "dice"
    higher_is_better: bool = True


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
        variants: the arms.
        claims: the paper's statements, each a paired comparison of two variants.
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
    claims: tuple[Claim, ...]
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
