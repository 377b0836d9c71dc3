"""Find the cases of a dataset on disk, whatever its layout.

A *case* is one subject: one image file per channel (in channel order) and an optional label
map. :func:`find_cases` only looks at file names and the dataset's metadata; it never opens an
image, so it is cheap. Files that the layout promises but that are absent are still listed (with
the path they should have) so that :func:`volseg.data.check.check_dataset` can report them.
``find_cases(root, channels=("t1ce", "flair"))`` (``data.channels``) keeps those channels, in that
order (:meth:`Dataset.select_channels`, the same for every layout).

The layouts, in auto-detection order (:func:`list_layouts`), with their ``rank``:

* 10 ``msd``: a folder with ``dataset.json`` (MSD / nnU-Net v1 and v2; :mod:`.msd`);
* 20 ``manifest``: a ``.csv`` or ``.json`` file listing each case's files, or a folder holding
  one (any name but ``dataset.json``; :mod:`.manifest`);
* 30 ``promise12``: ``CaseNN.mhd`` (+ ``CaseNN_segmentation.mhd``) files (:mod:`.promise12`);
* 40 ``brats``: case folders of ``<case>_t1/_t1ce/_t2/_flair/_seg`` files, or BraTS 2023+'s
  ``<case>-t1n/-t1c/-t2w/-t2f/-seg`` (:mod:`.brats`);
* 100 ``folder``: any folder, or one image; unlabeled cases, nnU-Net's ``CASE_0000``,
  ``CASE_0001`` files grouped into case ``CASE`` (:mod:`.folder`).

Case names are the same everywhere: :func:`case_id_of` names a case from its channel files as
nnU-Net does (``hip_008_0000.nii.gz`` -> ``hip_008``); the layouts, ``volseg predict`` (its
output ``CASE.nii.gz``) and ``volseg evaluate`` (its pairing) all use it.

Adding a layout: one module defining a ``@register_layout`` subclass of :class:`Layout` (a
``name``, a ``rank``, ``detect`` and ``find``), one import line below, a line above, and a
fixture builder in ``tests/data/test_layouts.py`` (a test fails until there is one).
"""

from __future__ import annotations

from volseg.data.layouts._files import case_id_of, strip_channel
from volseg.data.layouts.base import (
    LAYOUTS,
    Case,
    Dataset,
    Layout,
    LayoutError,
    detect_layout,
    find_cases,
    list_layouts,
    register_layout,
)

__all__ = [
    "LAYOUTS",
    "Case",
    "Dataset",
    "Layout",
    "LayoutError",
    "case_id_of",
    "detect_layout",
    "find_cases",
    "list_layouts",
    "register_layout",
    "strip_channel",
]

# Explicit imports that register the layouts (no folder crawling); detection order is by rank.
from volseg.data.layouts import brats as brats
from volseg.data.layouts import folder as folder
from volseg.data.layouts import manifest as manifest
from volseg.data.layouts import msd as msd
from volseg.data.layouts import promise12 as promise12
