"""Which cases train and which validate: a seeded hold-out split, or k folds.

Both depend only on the case ids and the seed, never on the order the files were found in.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["kfold_splits", "validation_ids"]


def validation_ids(
    case_ids: Sequence[str], val_cases: Sequence[str], val_fraction: float, seed: int
) -> set[str]:
    """The held-out ids: ``val_cases`` if given (each must exist), else a seeded fraction.

    A fraction rounds to at least one case when there are two or more; a single case, or a
    fraction of 0, holds out nothing.
    """
    ids = list(case_ids)
    if val_cases:
        unknown = sorted(set(val_cases) - set(ids))
        if unknown:
            raise ValueError(f"data.val_cases not in the dataset: {', '.join(unknown)}")
        return set(val_cases)
    if len(ids) < 2 or val_fraction <= 0:
        return set()
    n_val = max(1, round(len(ids) * val_fraction))
    order = np.random.default_rng(seed).permutation(len(ids))
    return {ids[i] for i in order[:n_val]}


def kfold_splits(case_ids: Sequence[str], folds: int, seed: int) -> list[dict[str, Any]]:
    """``folds`` disjoint validation sets covering every case once, with their training sets.

    The ids are sorted, shuffled by ``numpy.random.default_rng(seed)`` and dealt round-robin,
    so the split depends only on the set of ids, ``folds`` and ``seed``. Each entry is
    ``{"fold": k, "train": [...], "val": [...]}``.
    """
    ids = sorted(case_ids)
    if len(set(ids)) != len(ids):
        raise ValueError("case ids must be unique for cross-validation")
    if not 2 <= folds <= len(ids):
        raise ValueError(f"--folds must be between 2 and the number of cases ({len(ids)})")
    order = np.random.default_rng(seed).permutation(len(ids))
    splits = []
    for fold in range(folds):
        val = sorted(ids[i] for i in order[fold::folds])
        splits.append({"fold": fold, "train": [i for i in ids if i not in val], "val": val})
    return splits
