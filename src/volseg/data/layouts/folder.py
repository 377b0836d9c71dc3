"""``folder``: every image file of a folder (or one image file) is a single-channel, unlabeled
case, named after its file; for prediction. The catch-all: it accepts any folder, so it ranks
last in auto-detection.
"""

from __future__ import annotations

from pathlib import Path

from volseg.data.layouts._files import image_files, is_image, sorted_unique
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
        files = [root] if root.is_file() else image_files(root)
        cases = [Case(strip_suffix(f), (f,), None) for f in files]
        return Dataset(root, self.name, sorted_unique(cases, root), ("image",), None)
