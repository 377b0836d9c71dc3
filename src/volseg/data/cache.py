"""An on-disk cache of preprocessed cases, so the second epoch and the second run read arrays.

A case's entry is keyed by the identity of its input files (absolute path, size, modification
time in ns; every file of a DICOM folder) and by the preprocessing configuration (all
:class:`~volseg.config.PreprocessConfig` keys except ``cache_dir``). Changing a scan or a
preprocessing key gives a new key; stale entries are simply never read again (delete the folder
to reclaim the space).

An entry is a folder ``<root>/<key>/`` with ``image.npy``, ``label.npy`` (when there is a label)
and ``meta.json`` (geometry and the :class:`~volseg.data.preprocessing.PreprocessRecord`). It is
written into a hidden temporary folder and renamed into place, so a reader never sees half an
entry, and two processes writing the same entry at once both end with one complete copy.
Arrays are opened memory-mapped: DataLoader workers share the pages.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from volseg.config import PreprocessConfig, config_to_dict
from volseg.data.preprocessing import PreprocessRecord
from volseg.io import Volume

__all__ = ["CACHE_VERSION", "CachedCase", "PreprocessCache", "cache_key", "input_identity"]

CACHE_VERSION = 1  # bump when preprocessing's output changes for the same config


@dataclass(frozen=True)
class CachedCase:
    """A preprocessed image, its label map (or ``None``) and the record of what was done."""

    image: Volume
    label: Volume | None
    record: PreprocessRecord


def input_identity(paths: Sequence[str | Path]) -> list[list[Any]]:
    """``[absolute path, size, mtime_ns]`` of every input file (each file of a folder)."""
    identity: list[list[Any]] = []
    for path in paths:
        p = Path(path).resolve()
        files = sorted(f for f in p.iterdir() if f.is_file()) if p.is_dir() else [p]
        for f in files:
            stat = f.stat()
            identity.append([str(f), stat.st_size, stat.st_mtime_ns])
    return identity


def cache_key(paths: Sequence[str | Path], config: PreprocessConfig) -> str:
    """A hex key for these input files preprocessed with ``config`` (``cache_dir`` ignored)."""
    settings = config_to_dict(config)
    settings.pop("cache_dir", None)
    blob = json.dumps(
        {"version": CACHE_VERSION, "inputs": input_identity(paths), "config": settings},
        sort_keys=True,
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:32]


def _geometry(volume: Volume) -> dict[str, Any]:
    return {
        "spacing": list(volume.spacing),
        "origin": list(volume.origin),
        "direction": list(volume.direction),
        "source": volume.source,
    }


def _volume(array: np.ndarray, geometry: dict[str, Any]) -> Volume:
    return Volume(
        array,
        tuple(geometry["spacing"]),
        tuple(geometry["origin"]),
        tuple(geometry["direction"]),
        geometry["source"],
    )


class PreprocessCache:
    """Preprocessed cases stored as ``.npy`` arrays under ``root``.

    Args:
        root: the cache folder (created on the first write).
    """

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def path(self, key: str) -> Path:
        return self.root / key

    def load(self, key: str, mmap: bool = True) -> CachedCase | None:
        """The entry for ``key``, or ``None`` when absent or unreadable."""
        folder = self.path(key)
        try:
            meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
            mode: Literal["r"] | None = "r" if mmap else None
            image = _volume(np.load(folder / "image.npy", mmap_mode=mode), meta["image"])
            label = None
            if meta["label"] is not None:
                label = _volume(np.load(folder / "label.npy", mmap_mode=mode), meta["label"])
            return CachedCase(image, label, PreprocessRecord.from_dict(meta["record"]))
        except (OSError, ValueError, KeyError):
            return None

    def save(self, key: str, image: Volume, label: Volume | None, record: PreprocessRecord) -> Path:
        """Write an entry atomically (temporary folder + rename); returns its folder."""
        self.root.mkdir(parents=True, exist_ok=True)
        final = self.path(key)
        tmp = self.root / f".{key}.{uuid.uuid4().hex}.tmp"
        tmp.mkdir()
        try:
            np.save(tmp / "image.npy", np.ascontiguousarray(image.array))
            if label is not None:
                np.save(tmp / "label.npy", np.ascontiguousarray(label.array))
            meta = {
                "version": CACHE_VERSION,
                "image": _geometry(image),
                "label": None if label is None else _geometry(label),
                "record": record.to_dict(),
            }
            (tmp / "meta.json").write_text(json.dumps(meta), encoding="utf-8")
            if final.exists() and self.load(key) is None:
                shutil.rmtree(final, ignore_errors=True)  # a broken entry: replace it
            try:
                os.rename(tmp, final)
            except OSError:
                if not final.exists():
                    raise
                # another process finished the same entry first: keep theirs
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
        return final

    def get_or_compute(
        self,
        paths: Sequence[str | Path],
        config: PreprocessConfig,
        compute: Callable[[], tuple[Volume, Volume | None, PreprocessRecord]],
    ) -> CachedCase:
        """The cached entry for ``paths`` + ``config``, computing and storing it when missing."""
        key = cache_key(paths, config)
        cached = self.load(key)
        if cached is not None:
            return cached
        image, label, record = compute()
        self.save(key, image, label, record)
        return CachedCase(image, label, record)
