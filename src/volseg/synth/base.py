"""What every synthetic dataset shares: the generator type, the registry and :func:`write_synth`.

A generator is a :class:`SynthGenerator` subclass registered with ``@register_synth("name")``.
It declares its channels, labels, dimensionality and the real data it derives from, and makes
one case from a seeded :class:`numpy.random.Generator` (:meth:`SynthGenerator.make_case`).
:func:`write_synth` writes ``cases`` training and some held-out cases in the MSD / nnU-Net
layout (:mod:`volseg.data.layouts.msd`)::

    DIR/dataset.json            labels, channel_names + modality, numTraining, training, test
    DIR/imagesTr/CASE_0000.nii.gz   one file per channel (CASE_0001, ...)
    DIR/labelsTr/CASE.nii.gz
    DIR/imagesTs/..., DIR/labelsTs/...  the held-out cases, same form
    DIR/PROVENANCE.md           the real data, its licence, the generator and its parameters
    DIR/LICENSE                 the licence text of that data (when there is any)

Case ``i`` (training first, then held-out) is drawn from ``default_rng([seed, i])``, so a seed
gives byte-identical arrays and one case does not depend on how many others are written.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import SimpleITK as sitk

from volseg.io import Volume, read_volume, write_volume
from volseg.registry import Registry

__all__ = [
    "SYNTH",
    "SynthCase",
    "SynthGenerator",
    "list_synth",
    "load_anatomy",
    "register_synth",
    "write_synth",
]


@dataclass(frozen=True)
class SynthCase:
    """One synthetic case: one :class:`Volume` per channel and the label map, all on one grid.

    Attributes:
        images: one single-channel volume per declared channel, in channel order.
        label: ``(1, *S)`` integer label map on the images' grid.
        extras: further volumes on the same grid written beside the images, keyed by a folder
            stem (``{"dwi": v}`` -> ``dwiTr/CASE.nii.gz``), e.g. the contrast a label was drawn on.
        params: the case's drawn parameters (JSON-ready), recorded in ``cases.json``.
    """

    images: tuple[Volume, ...]
    label: Volume
    extras: Mapping[str, Volume] = field(default_factory=dict)
    params: Mapping[str, Any] = field(default_factory=dict)


class SynthGenerator(ABC):
    """A synthetic dataset: declarations plus :meth:`make_case`.

    Class attributes:
        description: one line for ``dataset.json`` and the provenance note.
        channel_names: input channels, in order.
        labels: label value -> name, background 0 included.
        dims: 2 or 3.
        sources: the real data used (markdown lines), empty for a procedural dataset.
        licence_file: name of a licence text in the package ``data/`` folder, or ``None``.
    """

    description: ClassVar[str]
    channel_names: ClassVar[tuple[str, ...]]
    labels: ClassVar[dict[int, str]]
    dims: ClassVar[int]
    sources: ClassVar[tuple[str, ...]] = ()
    licence_file: ClassVar[str | None] = None

    @abstractmethod
    def parameters(self) -> dict[str, Any]:
        """The generator's settings (JSON-ready), written to the provenance note."""

    @abstractmethod
    def make_case(self, rng: np.random.Generator) -> SynthCase:
        """One case drawn with ``rng`` (the only source of randomness)."""


SYNTH = Registry[SynthGenerator]("synthetic dataset")


def register_synth(name: str) -> Any:
    """Class decorator: register a :class:`SynthGenerator` under ``name``."""
    return SYNTH.register(name)


def list_synth() -> list[str]:
    """The registered synthetic dataset names, sorted."""
    return SYNTH.list()


def load_anatomy(filename: str, spacing: float | None = None, nearest: bool = False) -> Volume:
    """A shipped derivative from ``volseg/synth/data/`` (3-D), optionally resampled.

    Args:
        filename: e.g. ``colin27_t1.nii.gz`` (see ``data/PROVENANCE.md``).
        spacing: isotropic voxel size in mm to resample to (same extent, centre and direction);
            ``None`` keeps the shipped 2 mm grid.
        nearest: nearest-neighbour interpolation (label maps) instead of linear.
    """
    with resources.as_file(resources.files("volseg.synth") / "data" / filename) as path:
        volume = read_volume(path)
    if spacing is None or np.allclose(volume.spacing, spacing):
        return volume
    image = volume.to_sitk(0)
    old = np.asarray(image.GetSpacing())
    size = [max(round(n * s / spacing), 1) for n, s in zip(image.GetSize(), old)]
    direction = np.asarray(image.GetDirection()).reshape(3, 3)
    centre = np.asarray(image.GetOrigin()) + direction @ (
        (np.asarray(image.GetSize()) - 1) * old / 2
    )
    origin = centre - direction @ ((np.asarray(size) - 1) * spacing / 2)
    grid = sitk.Image(size, sitk.sitkUInt8)
    grid.SetSpacing((float(spacing),) * 3)
    grid.SetOrigin(tuple(float(v) for v in origin))
    grid.SetDirection(image.GetDirection())
    interp = sitk.sitkNearestNeighbor if nearest else sitk.sitkLinear
    out = sitk.Resample(image, grid, sitk.Transform(), interp, 0.0, sitk.sitkFloat32)
    return Volume.from_sitk(out, f"{filename}@{spacing}mm")


def write_synth(
    name: str,
    out: str | Path,
    cases: int = 12,
    seed: int = 0,
    test_cases: int | None = None,
    **options: Any,
) -> Path:
    """Write the synthetic dataset ``name`` to ``out`` in the MSD layout; return ``out``.

    Args:
        name: one of :func:`list_synth`.
        out: the dataset folder: new, or an empty folder. The dataset is written into a hidden
            folder beside it and renamed into place when complete, so a failure leaves nothing
            behind and a dataset is never mixed with the cases of an earlier one.
        cases: number of training cases.
        seed: the seed; the same seed gives byte-identical arrays.
        test_cases: held-out cases (``imagesTs``/``labelsTs``); ``None``: a third of ``cases``,
            at least one.
        **options: the generator's own settings (e.g. ``scale``), see its class.
    """
    if cases < 1:
        raise ValueError(f"synth: cases={cases} must be at least 1")
    generator = SYNTH.create(name, **options)
    n_test = max(1, round(cases / 3)) if test_cases is None else int(test_cases)
    target = Path(out)
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise FileExistsError(
            f"{target}: already exists and is not an empty folder; choose another --out"
        )
    root = target.parent / f".{target.name}.{uuid.uuid4().hex}.tmp"
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        _write_dataset(root, name, generator, cases, n_test, seed, options)
        if target.exists():
            target.rmdir()  # empty, checked above
        os.replace(root, target)
    except OSError as err:
        raise OSError(f"{target}: cannot write the dataset ({err.strerror or err})") from None
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return target


def _write_dataset(
    root: Path,
    name: str,
    generator: SynthGenerator,
    cases: int,
    n_test: int,
    seed: int,
    options: Mapping[str, Any],
) -> None:
    root.mkdir()
    stem = name.replace("-", "")
    training: list[dict[str, str]] = []
    test: list[str] = []
    records: dict[str, Any] = {}
    for index in range(cases + n_test):
        case_id = f"{stem}_{index:03d}"
        split = "Tr" if index < cases else "Ts"
        case = generator.make_case(np.random.default_rng([seed, index]))
        _write_case(root, split, case_id, case)
        records[case_id] = {"split": split, **case.params}
        if split == "Tr":
            training.append(
                {"image": f"./imagesTr/{case_id}.nii.gz", "label": f"./labelsTr/{case_id}.nii.gz"}
            )
        else:
            test.append(f"./imagesTs/{case_id}.nii.gz")
    channels = {str(i): c for i, c in enumerate(generator.channel_names)}
    meta = {
        "name": name,
        "description": generator.description,
        "reference": "volseg synth (synthetic; see PROVENANCE.md)",
        "licence": "see PROVENANCE.md and LICENSE" if generator.sources else "CC0-1.0 (procedural)",
        "tensorImageSize": f"{generator.dims}D",
        "modality": channels,
        "channel_names": channels,
        "labels": {str(k): v for k, v in sorted(generator.labels.items())},
        "file_ending": ".nii.gz",
        "numTraining": cases,
        "numTest": n_test,
        "training": training,
        "test": test,
    }
    (root / "dataset.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    (root / "cases.json").write_text(json.dumps(records, indent=1) + "\n", encoding="utf-8")
    _write_provenance(root, name, generator, cases, n_test, seed, options)


def _write_case(root: Path, split: str, case_id: str, case: SynthCase) -> None:
    for channel, volume in enumerate(case.images):
        write_volume(volume, root / f"images{split}" / f"{case_id}_{channel:04d}.nii.gz")
    write_volume(case.label, root / f"labels{split}" / f"{case_id}.nii.gz")
    for stem, volume in case.extras.items():
        write_volume(volume, root / f"{stem}{split}" / f"{case_id}.nii.gz")


def _write_provenance(
    root: Path,
    name: str,
    generator: SynthGenerator,
    cases: int,
    n_test: int,
    seed: int,
    options: Mapping[str, Any],
) -> None:
    lines = [
        f"# volseg synth `{name}`",
        "",
        generator.description,
        "",
        "Synthetic: every case is generated; no scan of a real patient is included.",
        "",
        "## Real data it derives from",
        "",
        *(generator.sources or ("None: procedural (numpy and scipy only).",)),
        "",
        "## Generator",
        "",
        f"- command: `volseg synth {name} --out DIR --cases {cases} --seed {seed}`",
        f"- generator: `{type(generator).__module__}.{type(generator).__name__}`",
        f"- seed: {seed}; case i is drawn from `numpy.random.default_rng([{seed}, i])`",
        f"- training cases: {cases}; held-out cases (imagesTs/labelsTs): {n_test}",
        f"- options: {json.dumps(dict(options), sort_keys=True)}",
        f"- parameters: `{json.dumps(generator.parameters(), sort_keys=True)}`",
        "- per-case drawn parameters: `cases.json`",
        f"- channels: {', '.join(generator.channel_names)}",
        f"- labels: {json.dumps({str(k): v for k, v in sorted(generator.labels.items())})}",
        "",
    ]
    (root / "PROVENANCE.md").write_text("\n".join(lines), encoding="utf-8")
    if generator.licence_file is not None:
        text = (resources.files("volseg.synth") / "data" / generator.licence_file).read_text(
            encoding="utf-8"
        )
        (root / "LICENSE").write_text(text, encoding="utf-8")
