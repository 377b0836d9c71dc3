"""Checks of a recipe against its data, run by ``train()`` before the run directory exists.

A recipe can be valid on its own (:mod:`volseg.config` checks that) and still not fit the data it
is pointed at. Two mismatches would otherwise train silently:

* **channels** (:func:`check_channels`): a recipe that states its input channels, as a count
  (``model.kwargs.in_channels``) or by name (``data.channels``), on data with other channels.
  Without the check the net is built for whatever the data has: a 4-modality recipe becomes a
  1-channel net. An error naming both. (Names the data lacks are already refused by
  :meth:`volseg.data.layouts.Dataset.select_channels`, listing the available ones.)
* **labels** (:func:`check_label_presence`): declared labels or regions that occur in no
  training label map, counted on the preprocessed maps training samples from (a ``bincount``
  per case: milliseconds). A **region** (``data.regions``) whose labels all never occur is an
  error: its sigmoid channel would learn "always empty", and the cause is a recipe that does
  not match the files (a region set or label list written for other data). A declared
  **label** that never occurs is a warning (:class:`LabelPresenceWarning`): training the
  others is still sound, and a subset of a dataset whose metadata declares every class can
  legitimately lack one. A training set
  without any foreground at all is an error.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import torch

from volseg.config import Config
from volseg.data.layouts import Dataset
from volseg.data.sampling import LoadedCase
from volseg.regions import get_regions

__all__ = [
    "LabelPresenceWarning",
    "check_channels",
    "check_label_presence",
    "data_channels",
    "present_labels",
]


class LabelPresenceWarning(UserWarning):
    """A declared label occurs in none of the training label maps."""


def data_channels(dataset: Dataset) -> int:
    """Input channels the dataset provides (its channel names, else the first case's files)."""
    return len(dataset.channel_names) or len(dataset.cases[0].images)


def check_channels(config: Config, dataset: Dataset) -> None:
    """Raise ``ValueError`` (one line, naming both) when the recipe's channels are not the data's.

    Compared: ``model.kwargs.in_channels`` (a count) against :func:`data_channels`. Names in
    ``data.channels`` are checked where they are selected
    (:meth:`volseg.data.layouts.Dataset.select_channels`: unknown names list the available ones).
    """
    have = data_channels(dataset)
    names = ", ".join(dataset.channel_names) or "unnamed"
    declared = config.model.kwargs.get("in_channels")
    if declared is not None and declared != have:
        raise ValueError(
            f"model.kwargs.in_channels: the recipe declares {declared} input channel(s), but the "
            f"data at {dataset.root} has {have} ({names})"
        )


def present_labels(cases: Sequence[LoadedCase], labels: Sequence[int]) -> list[int]:
    """The label values that occur in at least one of the cases' (preprocessed) label maps."""
    seen = torch.zeros(len(labels), dtype=torch.bool)
    for case in cases:
        seen |= torch.bincount(case.target.reshape(-1), minlength=len(labels))[: len(labels)] > 0
    return [value for value, hit in zip(labels, seen.tolist(), strict=True) if hit]


def check_label_presence(
    config: Config, labels: Sequence[int], cases: Sequence[LoadedCase]
) -> None:
    """Error for regions (or all foreground) absent from the training maps, warn for labels.

    Args:
        config: the run's configuration (``data.regions``).
        labels: the declared label values, background first (class index order).
        cases: the loaded training cases.
    """
    present = present_labels(cases, labels)
    where = f"{len(cases)} training label map(s)"
    shown = ", ".join(map(str, present))
    if not set(present) - {labels[0]}:
        raise ValueError(
            f"data.labels: no foreground label of {list(labels)} occurs in the {where} "
            f"(values present: {shown})"
        )
    if config.data.regions is not None:
        for region in get_regions(config.data.regions):
            if not set(region.labels) & set(present):
                raise ValueError(
                    f"data.regions: region {region.name} (label(s) "
                    f"{', '.join(map(str, region.labels))}) occurs in none of the {where} "
                    f"(values present: {shown}); its output channel would learn 'always empty'"
                )
    absent = [v for v in labels[1:] if v not in present]
    if absent:
        warnings.warn(
            f"data.labels: label(s) {', '.join(map(str, absent))} of {list(labels)} occur in "
            f"none of the {where}; the net will not learn to predict them",
            LabelPresenceWarning,
            stacklevel=2,
        )
