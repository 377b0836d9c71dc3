"""``folder``: the image files of a folder (or one image file) as unlabeled cases; for
prediction. The catch-all: it accepts any folder, so it ranks last in auto-detection.

Files named as nnU-Net names its inputs (``imagesTs``: ``CASE_0000.nii.gz``, ``CASE_0001...``)
are grouped as nnU-Net groups them: when every image is ``CASE_XXXX`` and the channel numbers are
0..n-1, each case is ``CASE`` with its n channel files (channels ``"0"``..``"n-1"``). Otherwise
each file is a single-channel case named after its file (channel ``"image"``), with a lone
``_0000`` suffix dropped (:func:`~volseg.data.layouts.case_id_of`) unless two files would then
share a name.
"""

from __future__ import annotations

from pathlib import Path

from volseg.data.layouts._files import (
    case_id_of,
    group_channel_files,
    image_files,
    is_image,
    sorted_unique,
)
from volseg.data.layouts.base import Case, Dataset, Layout, LayoutError, register_layout
from volseg.io import strip_suffix

__all__ = ["FolderLayout"]


@register_layout
class FolderLayout(Layout):
    """Plain images: recognised by any folder, or by one readable image file."""

    name = "folder"
    rank = 100

    def detect(self, path: Path) -> bool:
        return path.is_dir() or is_image(path)

    def find(self, root: Path) -> Dataset:
        if root.is_file() and not is_image(root):
            raise LayoutError(f"{root}: not an image file volseg can read")
        if root.is_file():
            cases = [Case(case_id_of([root]), (root,), None)]
            return Dataset(root, self.name, tuple(cases), ("image",), None)
        files = image_files(root)
        groups = group_channel_files(files)
        if groups is None:
            ids = [case_id_of([f]) for f in files]
            if len(set(ids)) < len(ids):  # x.nii.gz beside x_0000.nii.gz: keep the file names
                ids = [strip_suffix(f) for f in files]
            cases = [Case(i, (f,), None) for i, f in zip(ids, files, strict=True)]
            names: tuple[str, ...] = ("image",)
        else:
            cases = [Case(case_id, images, None) for case_id, images in groups]
            names = tuple(str(c) for c in range(len(groups[0][1])))
        return Dataset(root, self.name, sorted_unique(cases, root), names, None)
