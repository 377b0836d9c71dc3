"""Writes that cannot lie and outputs that cannot overwrite inputs (issue 18, items 1-2).

A "full disk" is a writer patched to fail the way SimpleITK does (no error, an empty or cut
file) or the way a careful writer does (``OSError(ENOSPC)``); one test also fills a real tmpfs
when run as root. Every failure must leave the earlier file byte-identical, no temporary file,
and one line naming the output and the cause.
"""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import uuid
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
import torch

from volseg._atomic import atomic_path, check_not_inputs, is_temp
from volseg.cli import main
from volseg.data.layouts import find_cases
from volseg.data.synthetic import make_phantom
from volseg.io import Volume, read_volume, write_volume
from volseg.training.checkpoint import Checkpoint, load_checkpoint, save_checkpoint

_REAL_WRITE = sitk.WriteImage


def _snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` (hidden ones too) with its bytes."""
    return {
        str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
    }


def _empty_writer(image: sitk.Image, path: str, *args: object, **kwargs: object) -> None:
    """SimpleITK's NIfTI writer on a full disk: a 0-byte file and no error."""
    Path(path).write_bytes(b"")


def _cut_writer(image: sitk.Image, path: str, *args: object, **kwargs: object) -> None:
    """A write that stops half-way without an error."""
    _REAL_WRITE(image, path, *args, **kwargs)
    data = Path(path).read_bytes()
    Path(path).write_bytes(data[: len(data) // 2])


def _enospc_writer(image: sitk.Image, path: str, *args: object, **kwargs: object) -> None:
    Path(path).write_bytes(b"partial")
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), path)


def _runtime_writer(image: sitk.Image, path: str, *args: object, **kwargs: object) -> None:
    Path(path).write_bytes(b"partial")
    raise RuntimeError("Exception thrown in SimpleITK WriteImage: ... Could not write file")


WRITERS: dict[str, Callable[..., None]] = {
    "empty": _empty_writer,
    "cut": _cut_writer,
    "enospc": _enospc_writer,
    "runtime": _runtime_writer,
}


@pytest.fixture
def volume() -> Volume:
    image, _ = make_phantom(shape=(6, 7, 8), spacing=(0.7, 1.3, 2.1))
    return image


@pytest.mark.parametrize("suffix", [".nii.gz", ".nii", ".mha", ".nrrd", ".mhd", ".nhdr"])
@pytest.mark.parametrize("writer", sorted(WRITERS))
def test_failed_volume_write_keeps_the_earlier_file(
    tmp_path: Path, volume: Volume, suffix: str, writer: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / f"out{suffix}"
    write_volume(volume, target)
    before = _snapshot(tmp_path)
    monkeypatch.setattr(sitk, "WriteImage", WRITERS[writer])
    with pytest.raises(OSError) as info:
        write_volume(volume.with_array(volume.array * 2), target)
    assert info.value.filename == str(target)
    assert "cannot write" in str(info.value.strerror)
    if writer == "enospc":
        assert "No space left on device" in str(info.value.strerror)
    assert _snapshot(tmp_path) == before  # earlier file(s) byte-identical, no temp left


def test_mhd_write_leaves_no_temporary_files_and_reads_back(tmp_path: Path, volume: Volume) -> None:
    write_volume(volume, tmp_path / "a.mhd")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.mhd", "a.zraw"]
    np.testing.assert_array_equal(read_volume(tmp_path / "a.mhd").array, volume.array)


def test_failing_block_removes_its_temp_file_and_names_the_target(tmp_path: Path) -> None:
    target = tmp_path / "table.csv"
    target.write_text("old\n", encoding="utf-8")
    with pytest.raises(OSError) as info, atomic_path(target) as tmp:
        tmp.write_text("half", encoding="utf-8")
        raise OSError(errno.ENOSPC, "No space left on device")
    assert info.value.filename == str(target) and "No space left" in str(info.value)
    assert target.read_text(encoding="utf-8") == "old\n" and sorted(tmp_path.iterdir()) == [target]


def test_empty_result_is_not_renamed_into_place(tmp_path: Path) -> None:
    target = tmp_path / "table.csv"
    target.write_text("old\n", encoding="utf-8")
    with pytest.raises(OSError, match="0 bytes"), atomic_path(target) as tmp:
        tmp.write_bytes(b"")
    assert target.read_text(encoding="utf-8") == "old\n" and sorted(tmp_path.iterdir()) == [target]


def test_failed_checkpoint_save_keeps_the_earlier_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "checkpoint_last.pt"
    save_checkpoint(Checkpoint({"w": torch.ones(2)}, {}, [0, 1], 1, epoch=3), path)
    before = path.read_bytes()

    def full(obj: object, handle: object, *args: object, **kwargs: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", full)
    with pytest.raises(OSError, match="No space left"):
        save_checkpoint(Checkpoint({"w": torch.zeros(2)}, {}, [0, 1], 1, epoch=4), path)
    assert path.read_bytes() == before and load_checkpoint(path).epoch == 3
    assert sorted(tmp_path.iterdir()) == [path]


def test_temp_names_are_recognised_and_skipped_by_folder_scans(
    tmp_path: Path, volume: Volume
) -> None:
    write_volume(volume, tmp_path / "a.nii.gz")
    leftover = tmp_path / f".b.nii.gz.{uuid.uuid4().hex}.tmp.nii.gz"  # a SIGKILLed write
    shutil.copy(tmp_path / "a.nii.gz", leftover)
    (tmp_path / f".c.mhd.{uuid.uuid4().hex}.tmp").mkdir()
    assert is_temp(leftover) and not is_temp(tmp_path / "a.nii.gz")
    assert [c.case_id for c in find_cases(tmp_path).cases] == ["a"]


# -- the CLI ------------------------------------------------------------------------------------


def _scans(folder: Path, n: int) -> list[Path]:
    folder.mkdir()
    paths = []
    for i in range(n):
        image, _ = make_phantom(seed=i)
        paths.append(write_volume(image, folder / f"case{i}.nii.gz"))
    return paths


def test_predict_onto_a_full_disk_exits_nonzero_and_keeps_the_earlier_output(
    run_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    (scan,) = _scans(tmp_path / "in", 1)
    out = tmp_path / "out" / "mask.nii.gz"
    assert main(["predict", "-m", str(run_dir), "-i", str(scan), "-o", str(out), "-q"]) == 0
    before = _snapshot(tmp_path / "out")
    capsys.readouterr()
    monkeypatch.setattr(sitk, "WriteImage", _empty_writer)
    assert main(["predict", "-m", str(run_dir), "-i", str(scan), "-o", str(out), "-q"]) == 2
    captured = capsys.readouterr()
    err = captured.err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"volseg: error: {out}: cannot write")
    assert "wrote" not in captured.out
    assert _snapshot(tmp_path / "out") == before


def test_batch_onto_a_full_disk_fails_each_case_and_a_rerun_redoes_empty_outputs(
    run_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _scans(tmp_path / "in", 2)
    out = tmp_path / "out"
    argv = ["predict", "-m", str(run_dir), "-i", str(tmp_path / "in"), "-o", str(out), "-q"]
    monkeypatch.setattr(sitk, "WriteImage", _empty_writer)
    assert main(argv) == 1
    assert "2 of 2 case(s) failed" in capsys.readouterr().err
    assert not out.exists() or list(out.iterdir()) == []
    # an empty file left by an older volseg (or another tool) is no prediction: redone
    monkeypatch.setattr(sitk, "WriteImage", _REAL_WRITE)
    out.mkdir(exist_ok=True)
    (out / "case0.nii.gz").write_bytes(b"")
    assert main(argv) == 0
    assert read_volume(out / "case0.nii.gz").shape == make_phantom(seed=0)[0].shape
    assert "skipped" not in capsys.readouterr().out


def _mount_tmpfs(folder: Path, size: str) -> bool:
    folder.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        return False
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
        capture_output=True,
        check=False,
    )
    return done.returncode == 0


def test_predict_onto_a_real_full_tmpfs(
    run_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    disk = tmp_path / "disk"
    if not _mount_tmpfs(disk, "256k"):
        pytest.skip("needs root and tmpfs to fill a real filesystem")
    try:
        image, _ = make_phantom()
        scan = write_volume(image, tmp_path / "scan.nii")
        out = disk / "mask.nii"  # uncompressed: the label map needs its full size
        assert main(["predict", "-m", str(run_dir), "-i", str(scan), "-o", str(out), "-q"]) == 0
        before = out.read_bytes()
        filler = disk / "filler"
        with open(filler, "wb", buffering=0) as handle:  # fill the disk, then free a few KB
            try:
                while True:
                    handle.write(b"\0" * 4096)
            except OSError:
                pass
        filler.write_bytes(b"\0" * (filler.stat().st_size - 8192))
        capsys.readouterr()
        assert main(["predict", "-m", str(run_dir), "-i", str(scan), "-o", str(out), "-q"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and f"{out}: cannot write" in err[0], err
        assert out.read_bytes() == before
        assert sorted(p.name for p in disk.iterdir()) == ["filler", "mask.nii"]
    finally:
        subprocess.run(["umount", str(disk)], check=False)


# -- inputs are never overwritten ------------------------------------------------------------


@pytest.mark.parametrize("link", ["symlink", "hardlink", "dotdot"])
def test_predict_refuses_an_output_that_is_its_input(
    run_dir: Path, tmp_path: Path, link: str, capsys: pytest.CaptureFixture[str]
) -> None:
    (scan,) = _scans(tmp_path / "in", 1)
    before = scan.read_bytes()
    if link == "symlink":
        given = tmp_path / "link.nii.gz"
        given.symlink_to(scan)
        argv = ["-i", str(given), "-o", str(scan)]
    elif link == "hardlink":
        given = tmp_path / "hard.nii.gz"
        os.link(scan, given)
        argv = ["-i", str(given), "-o", str(scan)]
    else:
        argv = ["-i", str(scan), "-o", str(tmp_path / "in" / ".." / "in" / scan.name)]
    assert main(["predict", "-m", str(run_dir), *argv, "-q"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "output would overwrite the input file" in err[0]
    assert scan.read_bytes() == before


def test_check_not_inputs_accepts_distinct_files(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    a.write_text("a", encoding="utf-8")
    check_not_inputs([b], [a])
    b.symlink_to(a)
    with pytest.raises(ValueError, match="would overwrite"):
        check_not_inputs([b], [a])
