"""``volseg fingerprint``: what a dataset holds, measured, so that training can be planned.

What nnU-Net calls the dataset fingerprint, written for a person to read as well: per case and
over the cases, the sizes, spacings (and anisotropy), orientations, intensity statistics per
channel inside the foreground (and whether it looks like CT or MR), the volume, presence and
connected components of every class, and the foreground's share of the volume; plus the cases
that stand out. ``volseg plan`` reads it.

* :mod:`.schema`: the frozen dataclasses and their versioned JSON form (``"format": 1``);
* :mod:`.stats`: the numbers, as pure functions of arrays;
* :mod:`.outliers`: the stated rules that flag cases and classes;
* :mod:`.compute`: :func:`fingerprint_dataset` (reads each file once, in a process pool);
* :mod:`.page`: the HTML page with the distributions as plots (:func:`write_fingerprint_page`).

Example::

    from volseg.fingerprint import fingerprint_dataset

    fp = fingerprint_dataset("data/Task04_Hippocampus", workers=2)
    fp.summary.spacing.median          # (z, y, x) in mm
    fp.write("fingerprint.json")
"""

from __future__ import annotations

from volseg.fingerprint.compute import fingerprint_dataset
from volseg.fingerprint.page import write_fingerprint_page
from volseg.fingerprint.schema import (
    FORMAT,
    CaseFingerprint,
    Fingerprint,
    Outlier,
    Summary,
)

__all__ = [
    "FORMAT",
    "CaseFingerprint",
    "Fingerprint",
    "Outlier",
    "Summary",
    "fingerprint_dataset",
    "write_fingerprint_page",
]
