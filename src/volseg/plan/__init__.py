"""``volseg plan``: a paper's recipe sized for a dataset and a machine.

Reads a dataset's fingerprint (:mod:`volseg.fingerprint`) and a net's paper recipe
(``configs/``), then chooses what nnU-Net would choose from the data (target spacing,
normalisation, 2-D or 3-D, patch, batch, depth) and, for a CPU time budget, what to give up
(width, batch, resolution, patch, training length), from measured trial steps. The recipe is
written as YAML with the reason for each change as a comment.

* :mod:`.spacing`: target spacing (nnU-Net's anisotropy rule);
* :mod:`.nets`: each net's depth and width arguments;
* :mod:`.memory`: trial training steps: peak memory and time;
* :mod:`.budget`: ``gpu:24GB`` / ``cpu:2`` budgets, training length for a time budget;
* :mod:`.recipe`: YAML with comments;
* :mod:`.planner`: :func:`plan_recipe`.
"""

from __future__ import annotations

from volseg.plan.budget import Budget
from volseg.plan.memory import SAFETY, Trial, TrialResult, run_trial
from volseg.plan.planner import Plan, paper_recipe, plan_recipe
from volseg.plan.spacing import SpacingChoice, target_spacing

__all__ = [
    "SAFETY",
    "Budget",
    "Plan",
    "SpacingChoice",
    "Trial",
    "TrialResult",
    "paper_recipe",
    "plan_recipe",
    "run_trial",
    "target_spacing",
]
