"""Paper experiments: each trains its variants over seeds and reports the paired difference.

``volseg experiment --list``; ``volseg experiment NAME [--profile smoke|full] [--seeds K]
--out DIR`` (:func:`run_experiment`). One module per claim, each registered explicitly here.
"""

from __future__ import annotations

# Every experiment module is imported here, explicitly: list_experiments() is complete.
from volseg.experiments import (
    adeniji_vae,
    drozdzal_skips,
    liu_hybrid,
    vnet_dice,
    yu_heng_residual,
)
from volseg.experiments.base import (
    EXPERIMENTS,
    Experiment,
    Run,
    Variant,
    list_experiments,
    register_experiment,
)
from volseg.experiments.runner import run_experiment
from volseg.experiments.stats import PairedStats, paired_stats

__all__ = [
    "EXPERIMENTS",
    "Experiment",
    "PairedStats",
    "Run",
    "Variant",
    "adeniji_vae",
    "drozdzal_skips",
    "list_experiments",
    "liu_hybrid",
    "paired_stats",
    "register_experiment",
    "run_experiment",
    "vnet_dice",
    "yu_heng_residual",
]
