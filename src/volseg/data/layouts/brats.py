"""``brats``: one folder per case holding ``<case>_t1``, ``_t1ce``, ``_t2``, ``_flair`` and
``_seg`` files (BraTS challenges up to 2020; any readable suffix).

Channels are in that order whatever order the files are found in; labels are BraTS's 0, 1, 2, 4.
A validation set without ``_seg`` files is unlabeled.
"""

from __future__ import annotations

from pathlib import Path

from volseg.data.layouts._files import image_files, sorted_unique, subfolders
from volseg.data.layouts.base import Case, Dataset, Layout, LayoutError, register_layout
from volseg.io import strip_suffix

__all__ = ["BraTSLayout"]

_CHANNELS = ("t1", "t1ce", "t2", "flair")
_LABELS = (0, 1, 2, 4)


@register_layout
class BraTSLayout(Layout):
    """BraTS: recognised by a subfolder holding a ``*_flair`` image."""

    name = "brats"
    rank = 40

    def detect(self, path: Path) -> bool:
        return path.is_dir() and any(
            _tag(f) == "flair" for sub in subfolders(path) for f in image_files(sub)
        )

    def find(self, root: Path) -> Dataset:
        if root.is_file():
            raise LayoutError(f"{root}: the brats layout needs a folder of case folders")
        wanted = (*_CHANNELS, "seg")
        found: list[tuple[Path, dict[str, Path]]] = []
        for folder in subfolders(root):
            tagged: dict[str, Path] = {}
            for f in image_files(folder):
                tag = _tag(f)
                if tag in wanted:
                    if tag in tagged:
                        raise LayoutError(
                            f"{f}: second _{tag} file in {folder} ({tagged[tag].name})"
                        )
                    tagged[tag] = f
            if tagged:
                found.append((folder, tagged))
        any_seg = any("seg" in tagged for _, tagged in found)
        cases = []
        for folder, tagged in found:
            case_id = folder.name
            images = tuple(tagged.get(tag, folder / f"{case_id}_{tag}.nii.gz") for tag in _CHANNELS)
            label = tagged.get("seg", folder / f"{case_id}_seg.nii.gz") if any_seg else None
            cases.append(Case(case_id, images, label))
        return Dataset(root, self.name, sorted_unique(cases, root), _CHANNELS, _LABELS)


def _tag(path: Path) -> str:
    """The ``_t1``/``_flair``/``_seg`` tag at the end of a BraTS file name (lower case)."""
    stem = strip_suffix(path)
    return stem.rsplit("_", 1)[-1].lower() if "_" in stem else ""
