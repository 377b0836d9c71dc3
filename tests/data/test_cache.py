from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from volseg.config import PreprocessConfig
from volseg.data import sampling
from volseg.data.cache import PreprocessCache, cache_key
from volseg.data.layouts import Case
from volseg.data.preprocessing import preprocess
from volseg.data.sampling import load_case
from volseg.io import Volume, write_volume


@pytest.fixture
def case(tmp_path: Path, phantom: tuple[Volume, Volume]) -> Case:
    image, label = phantom
    return Case(
        "c0",
        (write_volume(image, tmp_path / "img.nii.gz"),),
        write_volume(label, tmp_path / "lbl.nii.gz"),
    )


def test_save_then_load_round_trips(tmp_path: Path, phantom: tuple[Volume, Volume]) -> None:
    work, work_label, record = preprocess(phantom[0], PreprocessConfig(), phantom[1])
    cache = PreprocessCache(tmp_path / "cache")
    folder = cache.save("k", work, work_label, record)
    assert sorted(p.name for p in folder.iterdir()) == ["image.npy", "label.npy", "meta.json"]
    assert not [p for p in (tmp_path / "cache").iterdir() if p.name.startswith(".")]  # no temp
    loaded = cache.load("k")
    assert loaded is not None and loaded.label is not None and work_label is not None
    np.testing.assert_array_equal(loaded.image.array, work.array)
    np.testing.assert_array_equal(loaded.label.array, work_label.array)
    assert loaded.record == record and loaded.image.same_grid(work)
    assert cache.load("missing") is None
    (folder / "image.npy").write_bytes(b"broken")
    assert cache.load("k") is None  # unreadable entries are misses, then rewritten
    cache.save("k", work, work_label, record)
    assert cache.load("k") is not None


def test_key_follows_inputs_and_config_but_not_cache_dir(case: Case) -> None:
    inputs = [*case.images, case.label]
    key = cache_key(inputs, PreprocessConfig())
    assert key == cache_key(inputs, PreprocessConfig(cache_dir="/elsewhere"))
    assert key != cache_key(inputs, PreprocessConfig(target_spacing=(1.0, 1.0, 1.0)))
    stat = os.stat(case.images[0])
    os.utime(case.images[0], ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    assert key != cache_key(inputs, PreprocessConfig())


def test_second_load_reads_arrays_not_scans(
    case: Case, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = PreprocessConfig(cache_dir=str(tmp_path / "cache"))
    first = load_case(case, config, [0, 1], 1)
    assert len(list((tmp_path / "cache").iterdir())) == 1

    def no_reading(*args: object) -> None:
        raise AssertionError("read a scan although the case is cached")

    monkeypatch.setattr(sampling, "read_volume", no_reading)
    second = load_case(case, config, [0, 1], 1)
    assert (first.image == second.image).all() and (first.target == second.target).all()
    assert first.record == second.record
