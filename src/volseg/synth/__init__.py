"""Synthetic datasets with known ground truth, written in the MSD layout (``volseg synth``).

Built on small shipped derivatives of real anatomy (``data/``, with its provenance and licence)
or made procedurally. Each module registers one generator; they are imported here explicitly,
so :func:`list_synth` is complete once this package is imported.

* :mod:`.brain_structures`: ``brain-structures`` (hippocampi and amygdalae in T1 heads, 3-D).
* :mod:`.brats_like`: ``brats-like`` (t1, t1ce, t2, flair with nested tumours 1, 2, 4; 3-D).
* :mod:`.ctp_like`: ``ctp-like`` (CBF, CBV, MTT, Tmax slices; label: the DWI core; 2-D).
* :mod:`.em_membranes`: ``em-membranes`` (EM-like cells, label 1 = membrane; 2-D, procedural).
"""

from __future__ import annotations

from volseg.synth import brain_structures, brats_like, ctp_like, em_membranes
from volseg.synth.base import (
    SYNTH,
    SynthCase,
    SynthGenerator,
    list_synth,
    load_anatomy,
    register_synth,
    write_synth,
)

__all__ = [
    "SYNTH",
    "SynthCase",
    "SynthGenerator",
    "brain_structures",
    "brats_like",
    "ctp_like",
    "em_membranes",
    "list_synth",
    "load_anatomy",
    "register_synth",
    "write_synth",
]
