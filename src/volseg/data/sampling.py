"""From cases on disk to training batches: load + preprocess once, then random augmented patches.

A :class:`PatchDataset` draws, for sample ``i`` of epoch ``e``, everything from a generator seeded
with ``(seed, e, i)``: which case, where (a foreground voxel with probability
``foreground_ratio``, otherwise anywhere), and the augmentation parameters. The same seed gives
the same batches with any number of DataLoader workers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Dataset as TorchDataset

from volseg.config import AugmentConfig, PreprocessConfig
from volseg.data.augmentation import RandomIntensity, RandomSpatial
from volseg.data.layouts import Case
from volseg.data.preprocessing import PreprocessRecord, preprocess
from volseg.io import Volume, VolumeReadError, read_volume

__all__ = ["LoadedCase", "PatchDataset", "labels_to_indices", "load_case"]

_MAX_FOREGROUND_POINTS = 20_000


@dataclass(frozen=True)
class LoadedCase:
    """A preprocessed case held in memory for sampling and validation."""

    case_id: str
    image: torch.Tensor  # (C, *spatial) float32, normalised
    target: torch.Tensor  # (1, *spatial) int64 class indices 0..K-1
    foreground: np.ndarray  # (N, D) voxel coordinates of foreground (subsampled)
    record: PreprocessRecord


def labels_to_indices(label: np.ndarray, labels: Sequence[int], source: str) -> np.ndarray:
    """Map label values (e.g. 0, 1, 2, 4) to class indices 0..K-1; unknown values are an error."""
    lookup = np.full(int(max(max(labels), int(label.max(initial=0)))) + 1, -1, dtype=np.int64)
    lookup[list(labels)] = np.arange(len(labels))
    if label.min(initial=0) < 0:
        raise VolumeReadError(f"{source}: negative label values")
    out = lookup[label.astype(np.int64)]
    if (out < 0).any():
        bad = sorted(set(np.unique(label).tolist()) - set(labels))
        raise VolumeReadError(f"{source}: label values {bad} not among declared labels {labels}")
    return out


def load_case(
    case: Case, config: PreprocessConfig, labels: Sequence[int], expected_channels: int
) -> LoadedCase:
    """Read, check and preprocess one labelled case."""
    image = read_volume(list(case.images))
    if image.channels != expected_channels:
        raise VolumeReadError(
            f"{image.source}: {image.channels} channel(s), the model expects {expected_channels}"
        )
    if case.label is None:
        raise VolumeReadError(f"case {case.case_id}: no label map")
    label = read_volume(case.label)
    diff = image.grid_difference(label)
    if diff:
        raise VolumeReadError(f"{case.label}: grid differs from {case.images[0]} ({diff})")
    # labels share the image's grid within tolerance: snap them onto it exactly
    label = Volume(label.array, image.spacing, image.origin, image.direction, label.source)
    work, work_label, record = preprocess(image, config, label)
    assert work_label is not None
    target = labels_to_indices(work_label.array, labels, str(case.label))
    points = np.argwhere(target[0] > 0)
    if len(points) > _MAX_FOREGROUND_POINTS:
        keep = np.random.default_rng(0).choice(len(points), _MAX_FOREGROUND_POINTS, replace=False)
        points = points[np.sort(keep)]
    return LoadedCase(
        case.case_id, torch.from_numpy(work.array), torch.from_numpy(target), points, record
    )


class PatchDataset(TorchDataset[tuple[torch.Tensor, torch.Tensor]]):
    """Random augmented patches from loaded cases; ``len`` is the samples of one epoch."""

    def __init__(
        self,
        cases: Sequence[LoadedCase],
        patch_size: Sequence[int],
        augment: AugmentConfig,
        foreground_ratio: float,
        samples_per_epoch: int,
        seed: int,
    ) -> None:
        if not cases:
            raise ValueError("no training cases")
        self.cases = list(cases)
        self.patch_size = tuple(int(p) for p in patch_size)
        self.spatial = RandomSpatial(augment, self.patch_size)
        self.intensity = RandomIntensity(augment)
        self.foreground_ratio = foreground_ratio
        self.samples_per_epoch = samples_per_epoch
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose samples ``__getitem__`` returns."""
        self.epoch = epoch

    def __len__(self) -> int:
        return self.samples_per_epoch

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        rng = np.random.default_rng([self.seed, self.epoch, index])
        case = self.cases[int(rng.integers(len(self.cases)))]
        shape = np.asarray(case.image.shape[1:])
        if len(case.foreground) and rng.random() < self.foreground_ratio:
            center = case.foreground[int(rng.integers(len(case.foreground)))].astype(float)
        else:
            half = np.minimum(np.asarray(self.patch_size) / 2, shape / 2)
            center = rng.uniform(half - 0.5, shape - half - 0.5)
        params = self.spatial.get_params(rng, tuple(center))
        image, target = self.spatial.apply(case.image, case.target, params)
        assert target is not None
        iparams = self.intensity.get_params(rng, image.shape[0], image.ndim - 1)
        return self.intensity.apply(image, iparams), target
