"""Writes that cannot lie, and outputs that cannot overwrite inputs.

Every file volseg writes (volumes, checkpoints, CSVs, PNGs, exports) goes through
:func:`atomic_path` (or :func:`atomic_files` for header + data pairs such as ``.mhd``): the new
content goes to a hidden temporary name in the target's folder, is checked (not empty, and read
back by the caller's ``verify`` when given: some writers, e.g. SimpleITK's NIfTI writer, do not
report a full disk), flushed to the disk (``fsync``), and only then renamed over the target. A
failure anywhere leaves the earlier file byte-identical, removes the temporary file and raises
one :class:`OSError` whose ``filename`` is the target and whose ``strerror`` says why.

Temporary names start with ``.`` and hold ``.tmp`` (:func:`is_temp`): folder scans skip them.
:func:`check_not_inputs` refuses an output that is one of the inputs, through symlinks and hard
links.
"""

from __future__ import annotations

import errno
import os
import shutil
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = [
    "atomic_files",
    "atomic_path",
    "check_not_inputs",
    "is_temp",
    "same_file",
    "write_error",
]

_TMP = ".tmp"


def is_temp(path: str | Path) -> bool:
    """Whether ``path`` is (inside) a temporary name of :func:`atomic_path`/:func:`atomic_files`."""
    return any(part.startswith(".") and _TMP in part for part in Path(path).parts)


def _temp_name(path: Path, suffix: str) -> Path:
    return path.parent / f".{path.name}.{uuid.uuid4().hex}{_TMP}{suffix}"


def write_error(path: Path, err: BaseException) -> OSError:
    """One :class:`OSError` naming the output ``path`` and the cause, e.g. 'no space left'."""
    if isinstance(err, OSError):
        reason = err.strerror or str(err) or type(err).__name__
        code = err.errno or errno.EIO
    else:
        lines = str(err).strip().splitlines()
        reason, code = (lines[-1][:200] if lines else type(err).__name__), errno.EIO
    if reason.startswith("cannot write"):
        return OSError(code, reason, str(path))
    return OSError(code, f"cannot write ({reason})", str(path))


def _fsync_file(path: Path) -> None:
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())


def _fsync_dir(folder: Path) -> None:
    """Make the rename itself durable (best effort: not every filesystem allows it)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _check_written(tmp: Path) -> None:
    if not tmp.is_file():
        raise OSError(errno.EIO, "cannot write (the writer produced no file)", str(tmp))
    if tmp.stat().st_size == 0:
        raise OSError(errno.ENOSPC, "cannot write (0 bytes written; disk full?)", str(tmp))


@contextmanager
def atomic_path(
    path: str | Path, suffix: str = "", verify: Callable[[Path], None] | None = None
) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success check it and rename it over ``path``.

    Args:
        path: the final file.
        suffix: ending for the temporary name, for writers that pick the format from it
            (e.g. ``".nii.gz"`` for SimpleITK).
        verify: called with the temporary file after the block; raises if its content is
            wrong (e.g. reads it back and compares).

    Raises:
        OSError: naming ``path`` when the block raises an ``OSError``, the file is missing or
            empty, ``verify`` fails, or the fsync or rename fails. Other exceptions from the
            block pass through. In every case the temporary file is removed and ``path`` is
            left as it was. (Not ``mkstemp``: its 0600 mode would survive the rename.)
    """
    path = Path(path)
    _make_parent(path)
    tmp = _temp_name(path, suffix)
    try:
        try:
            yield tmp
        except OSError as err:
            raise write_error(path, err) from None
        try:
            _check_written(tmp)
            if verify is not None:
                verify(tmp)
            _fsync_file(tmp)
            os.replace(tmp, path)
        except (OSError, ValueError, RuntimeError) as err:
            raise write_error(path, err) from None
        _fsync_dir(path.parent)
    finally:
        tmp.unlink(missing_ok=True)


def _make_parent(path: Path) -> None:
    """Create ``path``'s folder; a failure names ``path`` and its cause."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise write_error(path, err) from None


@contextmanager
def atomic_files(path: str | Path, verify: Callable[[Path], None] | None = None) -> Iterator[Path]:
    """Like :func:`atomic_path` for a file written with companions (``.mhd`` + ``.zraw``).

    Yields ``path``'s name inside a hidden temporary folder beside it; every file the block
    writes there is checked and moved beside ``path``, ``path`` itself last (so a header never
    names data that is not in place yet). ``verify`` gets the temporary ``path``.
    """
    path = Path(path)
    _make_parent(path)
    folder = _temp_name(path, "")
    try:
        tmp = folder / path.name
        try:
            folder.mkdir()
            yield tmp
        except OSError as err:
            raise write_error(path, err) from None
        try:
            _check_written(tmp)
            if verify is not None:
                verify(tmp)
            written = sorted(folder.iterdir(), key=lambda p: p == tmp)  # header last
            for f in written:
                _check_written(f)
                _fsync_file(f)
            for f in written:
                os.replace(f, path.parent / f.name)
        except (OSError, ValueError, RuntimeError) as err:
            raise write_error(path, err) from None
        _fsync_dir(path.parent)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def same_file(a: str | Path, b: str | Path) -> bool:
    """Whether two paths name one file: after resolving symlinks, or as hard links."""
    if os.path.realpath(a) == os.path.realpath(b):
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist (yet)
        return False


def check_not_inputs(outputs: Iterable[str | Path], inputs: Iterable[str | Path]) -> None:
    """Raise ``ValueError`` if any output path is one of the input files (or a DICOM folder's).

    Paths are resolved (symlinks) and compared as files (hard links), so ``-i link.nii.gz -o
    target.nii.gz`` is refused when ``link.nii.gz`` points to ``target.nii.gz``.
    """
    expanded: list[Path] = []
    for p in inputs:
        p = Path(p)
        expanded.append(p)
        if p.is_dir():
            expanded.extend(f for f in p.iterdir() if f.is_file())
    for out in outputs:
        for inp in expanded:
            if same_file(out, inp):
                raise ValueError(f"{out}: output would overwrite the input file {inp}")
