"""``promise12``: the PROMISE12 prostate MRI challenge, ``CaseNN.mhd`` with
``CaseNN_segmentation.mhd`` next to it, in the folder or its immediate subfolders
(``TrainingData_Part1``, ...). The test set has no segmentations: it is unlabeled.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

from volseg.data.layouts._files import sorted_unique, subfolders
from volseg.data.layouts.base import Case, Dataset, Layout, LayoutError, register_layout

__all__ = ["Promise12Layout"]

_CASE = re.compile(r"^Case\d+$")
_LABELS = (0, 1)


@register_layout
class Promise12Layout(Layout):
    """PROMISE12: recognised by a ``CaseNN.mhd`` file."""

    name = "promise12"
    rank = 30

    def detect(self, path: Path) -> bool:
        return any(_images(path))

    def find(self, root: Path) -> Dataset:
        if root.is_file():
            raise LayoutError(f"{root}: the promise12 layout needs a folder")
        images = list(_images(root))
        segs = [f.with_name(f"{f.name[: -len('.mhd')]}_segmentation.mhd") for f in images]
        any_seg = any(s.is_file() for s in segs)
        cases = [
            Case(f.name[: -len(".mhd")], (f,), s if any_seg else None)
            for f, s in zip(images, segs, strict=True)
        ]
        return Dataset(root, self.name, sorted_unique(cases, root), ("T2",), _LABELS)


def _images(root: Path) -> Iterator[Path]:
    """``CaseNN.mhd`` files in ``root`` and its immediate subfolders."""
    if not root.is_dir():
        return
    for folder in (root, *subfolders(root)):
        for f in sorted(folder.glob("*.mhd"), key=lambda p: p.name):
            if _CASE.match(f.name[: -len(".mhd")]) and f.is_file():
                yield f
