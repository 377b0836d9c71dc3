"""``volseg predict --shard K/N`` and ``--nproc N``: the same outputs as one process."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from volseg.cli import main
from volseg.cli._parallel import select_shard
from volseg.data.synthetic import make_phantom
from volseg.io import read_volume, write_volume

SRC = Path(__file__).resolve().parents[1] / "src"


@pytest.fixture
def scans(tmp_path: Path) -> Path:
    folder = tmp_path / "imagesTs"
    for i in range(5):
        image, _ = make_phantom(shape=(12, 14, 10), seed=i)
        write_volume(image, folder / f"case{i}_0000.nii.gz")
    return folder


def _outputs(folder: Path) -> dict[str, np.ndarray]:
    return {p.name: read_volume(p).array for p in sorted(folder.glob("*.nii.gz"))}


def _scores(folder: Path) -> dict[str, str]:
    with (folder / "uncertainty" / "scores.csv").open(newline="", encoding="utf-8") as f:
        return {r["case"]: r["uncertainty"] for r in csv.DictReader(f)}


def test_select_shard_covers_every_item_once() -> None:
    items = list(range(11))
    parts = [select_shard(items, k, 4) for k in range(1, 5)]
    assert parts[0] == [0, 4, 8] and parts[3] == [3, 7]
    assert sorted(x for part in parts for x in part) == items


@pytest.mark.parametrize("spec", ["0/2", "3/2", "a/b", "1"])
def test_bad_shard_is_one_line(
    run_dir: Path, scans: Path, tmp_path: Path, spec: str, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    assert (
        main(["predict", "-m", str(run_dir), "-i", str(scans), "-o", str(out), "--shard", spec])
        == 2
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"volseg: error: --shard {spec}: ")
    assert not out.exists()


def test_shards_together_equal_one_process(run_dir: Path, scans: Path, tmp_path: Path) -> None:
    common = ["predict", "-m", str(run_dir), "-i", str(scans), "--uncertainty", "-q"]
    assert main([*common, "-o", str(tmp_path / "single")]) == 0
    for k in (1, 2, 3):
        assert main([*common, "-o", str(tmp_path / "sharded"), "--shard", f"{k}/3"]) == 0
    single, sharded = _outputs(tmp_path / "single"), _outputs(tmp_path / "sharded")
    assert list(single) == [f"case{i}.nii.gz" for i in range(5)]
    assert list(sharded) == list(single)
    assert all(np.array_equal(single[name], sharded[name]) for name in single)
    assert _scores(tmp_path / "sharded") == _scores(tmp_path / "single")


def test_nproc_runs_torchrun_ranks_with_the_same_outputs(
    run_dir: Path, scans: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYTHONPATH", str(SRC))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    common = ["predict", "-m", str(run_dir), "-i", str(scans), "--uncertainty", "-q"]
    assert main([*common, "-o", str(tmp_path / "single")]) == 0
    assert main([*common, "-o", str(tmp_path / "ranks"), "--nproc", "2", "--device", "cpu"]) == 0
    single, ranks = _outputs(tmp_path / "single"), _outputs(tmp_path / "ranks")
    assert list(ranks) == list(single)
    assert all(np.array_equal(single[name], ranks[name]) for name in single)
    assert _scores(tmp_path / "ranks") == _scores(tmp_path / "single")
