"""Validation during training: predict each held-out case as inference will, then score it.

The prediction is :func:`volseg.nn.sliding_window.predict_logits` with the run's ``infer``
settings (window, overlap, blending, mirroring, precision), decoded by
:func:`volseg.decoding.decode_labels` (activation, thresholds, regions, largest components) and
scored by :func:`volseg.metrics.evaluate_case`: the same three functions the Predictor and
``volseg evaluate`` use. Scores are on the preprocessed grid (spacing in mm), not the scan's own.

When and on what: :func:`is_validation_epoch` (``train.validate_every``, always the last epoch)
and :func:`validation_subset` (``train.val_max_cases``: a fixed, seeded subset of the held-out
cases). Validation is a whole-volume sliding-window prediction per case: on a CPU it can cost
as much as many training iterations, which is what these two settings are for.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

import numpy as np
import torch
from torch import nn

from volseg.config import Config, TrainConfig
from volseg.data.sampling import LoadedCase
from volseg.decoding import decode_labels, keep_largest_component, probabilities, resolve_activation
from volseg.metrics import evaluate_case
from volseg.metrics.names import config_label_names, label_keys
from volseg.nn.network import check_network
from volseg.nn.sliding_window import infer_bf16, predict_logits
from volseg.regions import get_regions
from volseg.training.step import region_targets

__all__ = ["is_validation_epoch", "validate", "validation_metrics", "validation_subset"]

T = TypeVar("T")


def is_validation_epoch(epoch: int, train: TrainConfig) -> bool:
    """Whether epoch ``epoch`` (counted from 1) ends with a validation.

    Epochs ``k, 2k, ...`` for ``train.validate_every`` k, and always the last, ``train.epochs``.
    """
    return epoch % train.validate_every == 0 or epoch >= train.epochs


def validation_subset(cases: Sequence[T], max_cases: int | None, seed: int) -> list[T]:
    """At most ``max_cases`` of ``cases``, drawn with ``seed``, in their given order.

    The same ``cases``, ``max_cases`` and ``seed`` give the same subset (every validation of a
    run, and after a resume); ``None`` or a limit of at least ``len(cases)`` keeps them all.
    """
    if max_cases is None or max_cases >= len(cases):
        return list(cases)
    picked = np.random.default_rng(seed).choice(len(cases), size=max_cases, replace=False)
    return [cases[i] for i in sorted(picked.tolist())]


def validation_metrics(config: Config) -> tuple[str, ...]:
    """The metrics validation computes: Dice, ``train.val_metrics``, and HD95 when
    ``train.monitor`` follows it (each once, in that order)."""
    wanted = ["dice", *config.train.val_metrics]
    if config.train.monitor == "val_hd95":
        wanted.append("hd95")
    return tuple(dict.fromkeys(wanted))


def _term_names(loss_fn: nn.Module, model: nn.Module, regions: object) -> list[str]:
    """The terms ``loss_fn`` reports on eval-mode outputs (a one-voxel dummy; names only)."""
    network = check_network(model)
    shape = (1, network.out_channels, *[1] * network.spatial_dims)
    device = next(model.parameters()).device
    logits = torch.zeros(shape, device=device)
    target = (
        torch.zeros(shape, device=device)
        if regions
        else torch.zeros((1, 1, *shape[2:]), dtype=torch.long, device=device)
    )
    return list(loss_fn(logits, target).terms)


@torch.no_grad()
def validate(
    model: nn.Module,
    cases: Sequence[LoadedCase],
    config: Config,
    labels: Sequence[int],
    loss_fn: nn.Module | None = None,
) -> dict[str, list[float]]:
    """Per-case scores keyed ``val_<metric>_<name>`` (and ``val_loss``), one value per case.

    ``name`` is a foreground label's column key (its name from ``data.label_names``, e.g.
    ``hippocampus_left``, else its value), or a region name (``WT``...) for ``data.regions`` runs.
    ``val_loss`` is the training loss on the whole case's outputs and ``val_loss_<term>`` each of
    its terms (a VAE loss has only its Dice term here: the VAE branch is off in eval mode, so
    compare ``val_loss_dice`` with ``train_loss_dice``). Every rank returns the same keys, also
    without cases (DDP all-reduces them).
    """
    model.eval()
    infer = config.infer
    regions = get_regions(config.data.regions) if config.data.regions is not None else None
    activation = resolve_activation(infer.activation, regions)
    metrics = validation_metrics(config)
    label_names = config_label_names(config.data)
    keys = label_keys(labels, label_names)
    names = [r.name for r in regions] if regions else [keys[k] for k in labels[1:]]
    scores: dict[str, list[float]] = {f"val_{m}_{n}": [] for n in names for m in metrics}
    if loss_fn is not None:
        scores["val_loss"] = []
        scores.update({f"val_loss_{t}": [] for t in _term_names(loss_fn, model, regions)})
    bf16 = infer_bf16(infer, config.train.runtime.amp)
    divisor = check_network(model).divisor
    for case in cases:
        logits = predict_logits(
            model,
            case.image,
            infer,
            model_dims=len(config.train.patch_size),
            divisor=divisor,
            bf16=bf16,
        )
        probs = probabilities(logits, activation).numpy()
        pred = decode_labels(probs, labels, activation, infer.threshold, regions)
        if infer.keep_largest:
            pred = keep_largest_component(pred, infer.keep_largest, labels[0])
        truth = np.asarray(labels)[case.target[0].numpy()]
        spacing = tuple(reversed(case.record.grid.spacing))  # array order
        row = evaluate_case(
            pred,
            truth,
            spacing,
            [] if regions else labels,
            metrics=metrics,
            regions=regions,
            eps=config.train.metric_eps,
            names=label_names,
        )
        for key, value in row.items():
            scores[f"val_{key}"].append(value)
        if loss_fn is not None:
            target = case.target[None]
            if regions:
                target = region_targets(target, labels, regions)
            loss = loss_fn(logits[None], target)
            scores["val_loss"].append(float(loss.total))
            for term, value in loss.terms.items():
                scores[f"val_loss_{term}"].append(float(value))
    model.train()
    return scores
