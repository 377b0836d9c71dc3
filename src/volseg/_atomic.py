"""Atomic file writes: write beside the target under a hidden unique name, then rename.

Every file volseg writes (volumes, checkpoints, CSVs, PNGs, exports) goes through
:func:`atomic_path`, so a crash or an error leaves the old file or the new one, never a part.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["atomic_path"]


@contextmanager
def atomic_path(path: str | Path, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it over ``path``.

    Args:
        path: the final file.
        suffix: ending for the temporary name, for writers that pick the format from it
            (e.g. ``".nii.gz"`` for SimpleITK).

    The temporary file is removed if the block raises. (Not ``mkstemp``: its 0600 mode would
    survive the rename.)
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{uuid.uuid4().hex}.tmp{suffix}"
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
