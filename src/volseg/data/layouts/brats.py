"""``brats``: one folder per case, one file per MRI sequence plus the segmentation, in either of
the two namings the BraTS challenges have used (any readable suffix):

* BraTS 2017-2021: ``BraTS2021_00000_t1.nii.gz``, ``_t1ce``, ``_t2``, ``_flair``, ``_seg``;
* BraTS 2023+ (GLI, MEN, MET, PED, SSA): ``BraTS-GLI-00000-000-t1n.nii.gz``, ``-t1c``, ``-t2w``,
  ``-t2f``, ``-seg``, mapped onto ``t1``, ``t1ce``, ``t2``, ``flair``.

Channels are exposed under one set of names, the 2017 ones ``(t1, t1ce, t2, flair)``, in that
order whatever order the files are found in; pick a subset with
:meth:`~volseg.data.layouts.Dataset.select_channels` (``data.channels: [t1ce, flair]``).

The naming tells the label convention, reported as :attr:`Dataset.labels`: up to 2021 the
enhancing tumour is label **4** (labels ``(0, 1, 2, 4)``, regions ``brats``); from 2023 it is
label **3** (labels ``(0, 1, 2, 3)``, regions ``brats2023``; see :mod:`volseg.regions`).
BraTS 2024 post-treatment glioma adds label 4 (resection cavity): declare
``data.labels: [0, 1, 2, 3, 4]`` for it. A dataset mixing the two namings is an error. A
validation set without segmentation files is unlabeled.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from volseg.data.layouts._files import image_files, sorted_unique, subfolders
from volseg.data.layouts.base import Case, Dataset, Layout, LayoutError, register_layout
from volseg.io import strip_suffix

__all__ = ["BraTSLayout"]

_CHANNELS = ("t1", "t1ce", "t2", "flair")
_SEG = "seg"


@dataclass(frozen=True)
class _Naming:
    """One BraTS file naming: ``<case><sep><tag>``, a tag per channel of ``_CHANNELS``."""

    title: str
    sep: str
    tags: tuple[str, ...]  # in _CHANNELS order
    labels: tuple[int, ...]

    def expected(self, folder: Path, name: str) -> Path:
        """Where a case folder's absent ``name`` file (a channel or ``seg``) should be."""
        tag = self.tags[_CHANNELS.index(name)] if name in _CHANNELS else name
        return folder / f"{folder.name}{self.sep}{tag}.nii.gz"


_NAMINGS = (
    _Naming("BraTS 2017-2021", "_", _CHANNELS, (0, 1, 2, 4)),
    _Naming("BraTS 2023+", "-", ("t1n", "t1c", "t2w", "t2f"), (0, 1, 2, 3)),
)


@register_layout
class BraTSLayout(Layout):
    """BraTS: recognised by a subfolder holding a ``*_flair`` or ``*-t2f`` image."""

    name = "brats"
    rank = 40

    def detect(self, path: Path) -> bool:
        return path.is_dir() and any(
            _tag(f)[1] == "flair" for sub in subfolders(path) for f in image_files(sub)
        )

    def find(self, root: Path) -> Dataset:
        if root.is_file():
            raise LayoutError(f"{root}: the brats layout needs a folder of case folders")
        found: list[tuple[Path, dict[str, Path]]] = []
        namings: dict[_Naming, Path] = {}  # each naming seen, with one file as the example
        for folder in subfolders(root):
            tagged: dict[str, Path] = {}
            for f in image_files(folder):
                naming, name = _tag(f)
                if naming is None:
                    continue
                if name in tagged:
                    raise LayoutError(f"{f}: second {name} file in {folder} ({tagged[name].name})")
                tagged[name] = f
                namings.setdefault(naming, f)
            if tagged:
                found.append((folder, tagged))
        if len(namings) > 1:
            examples = " and ".join(f"{n.title} ({f.name})" for n, f in namings.items())
            raise LayoutError(f"{root}: mixes two BraTS file namings, {examples}; use one")
        naming = next(iter(namings), _NAMINGS[0])
        any_seg = any(_SEG in tagged for _, tagged in found)
        cases = []
        for folder, tagged in found:
            images = tuple(tagged.get(c, naming.expected(folder, c)) for c in _CHANNELS)
            label = tagged.get(_SEG, naming.expected(folder, _SEG)) if any_seg else None
            cases.append(Case(folder.name, images, label))
        return Dataset(root, self.name, sorted_unique(cases, root), _CHANNELS, naming.labels)


def _tag(path: Path) -> tuple[_Naming | None, str]:
    """The naming and the channel (``t1`` ... ``flair``, or ``seg``) of a BraTS file name.

    ``BraTS2021_00000_t1ce.nii.gz`` -> (2017-2021, ``t1ce``); ``BraTS-GLI-00000-000-t1c.nii.gz``
    -> (2023+, ``t1ce``); any other name -> ``(None, "")``. Tags are matched case-insensitively.
    """
    stem = strip_suffix(path)
    for naming in _NAMINGS:
        if naming.sep in stem:
            tag = stem.rsplit(naming.sep, 1)[-1].lower()
            if tag == _SEG:
                return naming, _SEG
            if tag in naming.tags:
                return naming, _CHANNELS[naming.tags.index(tag)]
    return None, ""
