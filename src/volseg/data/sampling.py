"""From cases on disk to training batches: load + preprocess once, then random augmented patches.

A :class:`PatchDataset` draws, for sample ``i`` of epoch ``e``, everything from a generator seeded
with ``(seed, e, i)``: which case, where (a foreground voxel with probability
``foreground_ratio``, otherwise anywhere), and the augmentation parameters. The same seed gives
the same batches with any number of DataLoader workers, and :meth:`PatchDataset.sample_params`
re-draws (a :class:`SampleParams`; ``param_log`` records them as JSON) the parameters of any
sample for replay.

:func:`load_case` reads and preprocesses a case once; with ``preprocess.cache_dir`` set it keeps
the result on disk (:mod:`volseg.data.cache`) so later runs read arrays. :func:`build_loader`
wraps a dataset in a DataLoader with worker processes (one torch thread each) and pinned memory.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Sampler
from torch.utils.data import Dataset as TorchDataset

from volseg.config import AugmentConfig, ConfigError, PreprocessConfig
from volseg.data.cache import PreprocessCache
from volseg.data.layouts import Case
from volseg.data.preprocessing import PreprocessRecord, preprocess
from volseg.data.transforms import (
    Context,
    RandomCrop,
    Sample,
    build_augmentation,
    channel_stats,
    params_from_dict,
    params_to_dict,
)
from volseg.io import Volume, VolumeReadError, read_label, read_volume

__all__ = [
    "LoadedCase",
    "PatchDataset",
    "SampleParams",
    "build_loader",
    "labels_to_indices",
    "load_case",
]

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


def _read_and_preprocess(
    case: Case, config: PreprocessConfig
) -> tuple[Volume, Volume | None, PreprocessRecord]:
    image = read_volume(list(case.images))
    if case.label is None:
        raise VolumeReadError(f"case {case.case_id}: no label map")
    label = read_label(case.label)  # float maps with fractional values are refused
    diff = image.grid_difference(label)
    if diff:
        raise VolumeReadError(f"{case.label}: grid differs from {case.images[0]} ({diff})")
    # labels share the image's grid within tolerance: snap them onto it exactly
    label = Volume(label.array, image.spacing, image.origin, image.direction, label.source)
    return preprocess(image, config, label)


def load_case(
    case: Case,
    config: PreprocessConfig,
    labels: Sequence[int],
    expected_channels: int,
    cache: PreprocessCache | None = None,
) -> LoadedCase:
    """Read, check and preprocess one labelled case (or read it from the on-disk cache).

    Args:
        cache: where preprocessed cases are kept; ``None`` uses ``config.cache_dir`` if set.
    """
    if case.label is None:
        raise VolumeReadError(f"case {case.case_id}: no label map")
    if cache is None and config.cache_dir:
        cache = PreprocessCache(config.cache_dir)
    if cache is not None:
        inputs = [*case.images, case.label]
        entry = cache.get_or_compute(inputs, config, lambda: _read_and_preprocess(case, config))
        work, work_label, record = entry.image, entry.label, entry.record
    else:
        work, work_label, record = _read_and_preprocess(case, config)
    if work.channels != expected_channels:
        raise VolumeReadError(
            f"{work.source}: {work.channels} channel(s), the model expects {expected_channels}"
        )
    assert work_label is not None
    target = labels_to_indices(np.asarray(work_label.array), labels, str(case.label))
    points = np.argwhere(target[0] > 0)
    if len(points) > _MAX_FOREGROUND_POINTS:
        keep = np.random.default_rng(0).choice(len(points), _MAX_FOREGROUND_POINTS, replace=False)
        points = points[np.sort(keep)]
    image = torch.from_numpy(np.array(work.array, dtype=np.float32))  # a copy of a memmap
    return LoadedCase(case.case_id, image, torch.from_numpy(target), points, record)


@dataclass(frozen=True)
class SampleParams:
    """Every random choice behind one training sample (replay it with
    :meth:`PatchDataset.apply`).

    Attributes:
        epoch, index: which sample of which epoch; with the dataset's seed they fix the rest.
        case: index of the case in the dataset; case_id its id.
        slice: for 2-D patches of a 3-D case, the slice (first array axis); else ``None``.
        center: voxel (array order, in the case or its slice) the patch is centred on.
        transforms: the parameters of each configured transform, by position (``None`` where
            it did not fire); frozen dataclasses of :mod:`volseg.data.transforms`.
    """

    epoch: int
    index: int
    case: int
    case_id: str
    slice: int | None
    center: tuple[float, ...]
    transforms: tuple[Any, ...]

    def to_dict(self, names: Sequence[str]) -> dict[str, Any]:
        """JSON-ready data; ``names`` are the transforms' registered names, in order."""
        return {
            "epoch": self.epoch,
            "index": self.index,
            "case": self.case,
            "case_id": self.case_id,
            "slice": self.slice,
            "center": list(self.center),
            "transforms": [
                {"name": name, "params": params_to_dict(params)}
                for name, params in zip(names, self.transforms)
            ],
        }


class PatchDataset(TorchDataset[tuple[torch.Tensor, torch.Tensor]]):
    """Random augmented patches from loaded cases; ``len`` is the samples of one epoch.

    Per sample: pick a case (random, or ``augment.crops_per_volume`` consecutive samples per case
    of a shuffled epoch order), a centre, then draw the parameters of ``augment.transforms``
    (registered transforms of :mod:`volseg.data.transforms`, built by
    :func:`~volseg.data.transforms.build_augmentation`, which rejects unknown names). The spatial
    ones (flip, affine, bspline; in mm, with the case's spacing) compose into one grid centred
    on the patch, image and target are read there once, then the intensity ones act. With a
    2-D ``patch_size`` a 3-D case gives 2-D patches of its slices along the first array axis
    (after reorientation, e.g. axial for LPS), as nnU-Net's 2d configuration trains; the slice
    is the centre's (``slice``).

    Args:
        param_log: append one JSON line per sample (:meth:`SampleParams.to_dict`) to this
            file, from any worker; ``None`` logs nothing. :meth:`sample_params` gives the same
            without a file.

    Raises:
        ConfigError: an unknown transform name or bad arguments in ``augment.transforms``, or
            a ``crop`` (patches are cut by ``patch_size``).
    """

    def __init__(
        self,
        cases: Sequence[LoadedCase],
        patch_size: Sequence[int],
        augment: AugmentConfig,
        foreground_ratio: float,
        samples_per_epoch: int,
        seed: int,
        param_log: str | Path | None = None,
    ) -> None:
        if not cases:
            raise ValueError("no training cases")
        self.cases = list(cases)
        self.patch_size = tuple(int(p) for p in patch_size)
        self.augment = augment
        self.transforms = build_augmentation(augment)
        for i, transform in enumerate(self.transforms.transforms):
            if isinstance(transform, RandomCrop):
                raise ConfigError(
                    f"augment.transforms[{i}]: crop cannot augment patches; the patch is cut by "
                    "train.patch_size (use augment.crops_per_volume for crops per case)"
                )
        self.transforms.prepare([case.image for case in self.cases])
        self.stats = [channel_stats(case.image) for case in self.cases]
        self.foreground_ratio = foreground_ratio
        self.samples_per_epoch = samples_per_epoch
        self.seed = seed
        # in shared memory: persistent DataLoader workers see set_epoch() of the main process
        self._epoch = torch.zeros((), dtype=torch.int64).share_memory_()
        self.param_log = Path(param_log) if param_log is not None else None

    @property
    def epoch(self) -> int:
        return int(self._epoch)

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose samples ``__getitem__`` returns (call before iterating)."""
        self._epoch.fill_(epoch)

    def __len__(self) -> int:
        return self.samples_per_epoch

    def _case_index(self, rng: np.random.Generator, index: int) -> int:
        n = self.augment.crops_per_volume
        if n <= 0:
            return int(rng.integers(len(self.cases)))
        order = np.random.default_rng([self.seed, self.epoch]).permutation(len(self.cases))
        return int(order[(index // n) % len(self.cases)])

    def _input(self, params: SampleParams) -> Sample:
        """The case (or its slice) the patch of ``params`` is read from."""
        case = self.cases[params.case]
        image, target = case.image, case.target
        spacing = tuple(float(s) for s in reversed(case.record.grid.spacing))
        if params.slice is not None:  # a 2-D patch from one slice of a 3-D case
            image, target = image[:, params.slice], target[:, params.slice]
            spacing = spacing[1:]
        return Sample(image, target, spacing[-len(self.patch_size) :])

    def sample_params(self, index: int) -> SampleParams:
        """Every random choice of sample ``index`` of the current epoch (nothing applied)."""
        rng = np.random.default_rng([self.seed, self.epoch, index])
        case_index = self._case_index(rng, index)
        case = self.cases[case_index]
        shape = np.asarray(case.image.shape[1:])
        slices = len(shape) > len(self.patch_size)  # 2-D patches of a 3-D case, one slice wide
        extent = np.asarray(((1,) if slices else ()) + self.patch_size, dtype=float)
        if len(case.foreground) and rng.random() < self.foreground_ratio:
            center = case.foreground[int(rng.integers(len(case.foreground)))].astype(float)
        else:
            half = np.minimum(extent / 2, shape / 2)
            center = rng.uniform(half - 0.5, shape - half - 0.5)
        slice_index = None
        if slices:
            slice_index = int(np.clip(np.rint(center[0]), 0, shape[0] - 1))
            center = center[1:]
        params = SampleParams(
            self.epoch, index, case_index, case.case_id, slice_index, tuple(center.tolist()), ()
        )
        source = self._input(params)
        context = Context(
            source.image, source.spacing_mm, self.patch_size, self.stats[case_index], case_index
        )
        return dataclasses.replace(params, transforms=self.transforms.get_params(rng, context))

    def params_from_dict(self, data: dict[str, Any]) -> SampleParams:
        """The :class:`SampleParams` of a ``param_log`` line (to replay a logged sample)."""
        transforms = tuple(
            None if entry["params"] is None else params_from_dict(t.params_type, entry["params"])
            for t, entry in zip(self.transforms.transforms, data["transforms"], strict=True)
        )
        center = tuple(float(c) for c in data["center"])
        return SampleParams(
            data["epoch"], data["index"], data["case"], data["case_id"], data["slice"], center,
            transforms,
        )  # fmt: skip

    def apply(self, params: SampleParams) -> tuple[torch.Tensor, torch.Tensor]:
        """The patch and target that ``params`` (from :meth:`sample_params`) describe."""
        out = self.transforms.apply(
            self._input(params), params.transforms, params.center, self.patch_size
        )
        assert out.label is not None
        return out.image, out.label

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        params = self.sample_params(index)
        if self.param_log is not None:
            names = [t.name for t in self.transforms.transforms]
            line = json.dumps(params.to_dict(names)) + "\n"
            fd = os.open(self.param_log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                os.write(fd, line.encode())  # one append per line: workers do not interleave
            finally:
                os.close(fd)
        return self.apply(params)


def _one_thread_per_worker(worker_id: int) -> None:
    torch.set_num_threads(1)  # workers must not fight the training step for the cores


def build_loader(
    dataset: TorchDataset[Any],
    batch_size: int,
    num_workers: int = 0,
    pin_memory: bool | None = None,
    sampler: Sampler[int] | None = None,
    prefetch_factor: int = 2,
) -> DataLoader[Any]:
    """A DataLoader for a :class:`PatchDataset`: order from the dataset, workers, pinned memory.

    Args:
        num_workers: worker processes (each limited to one torch thread), kept alive between
            epochs; ``0`` prepares batches in the training process.
        pin_memory: page-locked batches for fast host-to-GPU copies; ``None`` = when CUDA exists.
        sampler: e.g. a ``DistributedSampler``; ``None`` walks the epoch's indices in order.
        prefetch_factor: batches each worker prepares ahead.
    """
    if pin_memory is None:
        pin_memory = torch.cuda.is_available()
    extra: dict[str, Any] = {}
    if num_workers > 0:
        extra = {
            "persistent_workers": True,
            "prefetch_factor": prefetch_factor,
            "worker_init_fn": _one_thread_per_worker,
        }
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=False,
        sampler=sampler,
        num_workers=num_workers,
        pin_memory=pin_memory,
        **extra,
    )
