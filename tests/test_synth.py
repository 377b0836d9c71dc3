"""volseg.synth: every registered dataset written tiny, read back through the MSD layout."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

from volseg.data.check import check_dataset
from volseg.data.layouts import Dataset, find_cases
from volseg.io import read_volume
from volseg.synth import SYNTH, list_synth, write_synth

# small settings per dataset so that each test takes seconds
TINY: dict[str, dict[str, float]] = {
    "brain-structures": {"spacing": 3.0},
    "brats-like": {"spacing": 3.0},
    "ctp-like": {"spacing": 3.0},
    "em-membranes": {"size": 128},
}


def _tiny(name: str) -> dict[str, float]:
    return TINY.get(name, {})


@pytest.fixture(scope="module", params=list_synth())
def written(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    name = request.param
    root = write_synth(name, tmp_path_factory.mktemp(name), cases=3, seed=0, **_tiny(name))
    return name, root, find_cases(root)


def _arrays(root: Path, split: str = "Tr") -> dict[str, np.ndarray]:
    return {
        f.relative_to(root).as_posix(): read_volume(f).array
        for f in sorted((root / f"images{split}").glob("*.nii.gz"))
        + sorted((root / f"labels{split}").glob("*.nii.gz"))
    }


def test_registry_lists_the_four_datasets() -> None:
    assert set(list_synth()) == set(SPECIFIC)


def test_layout_finds_cases_channels_and_labels(written) -> None:
    name, root, dataset = written
    generator = SYNTH.get(name)
    assert dataset.layout == "msd"
    assert len(dataset.cases) == 3
    assert dataset.channel_names == generator.channel_names
    assert dataset.labels == tuple(sorted(generator.labels))
    meta = json.loads((root / "dataset.json").read_text(encoding="utf-8"))
    assert meta["numTraining"] == 3 and len(meta["test"]) == 1
    assert (root / "imagesTs").is_dir() and (root / "labelsTs").is_dir()
    assert "Generator" in (root / "PROVENANCE.md").read_text(encoding="utf-8")


def test_check_reports_no_problem(written) -> None:
    _, _, dataset = written
    assert check_dataset(dataset) == []


def test_labels_and_grids(written) -> None:
    name, _, dataset = written
    generator = SYNTH.get(name)
    seen: set[int] = set()
    for case in dataset.cases:
        label = read_volume(case.label)
        assert label.ndim == generator.dims
        assert np.issubdtype(label.array.dtype, np.integer)
        values = set(np.unique(label.array).tolist())
        assert values <= set(generator.labels)
        seen |= values
        for path in case.images:
            image = read_volume(path)
            assert image.channels == 1 and image.same_grid(label), image.grid_difference(label)
            assert np.isfinite(image.array).all()
    assert seen == set(generator.labels)  # every declared label occurs


def test_same_seed_same_arrays_other_seed_differs(written, tmp_path: Path) -> None:
    name, _, _ = written
    a = _arrays(write_synth(name, tmp_path / "a", cases=1, seed=7, test_cases=0, **_tiny(name)))
    b = _arrays(write_synth(name, tmp_path / "b", cases=1, seed=7, test_cases=0, **_tiny(name)))
    c = _arrays(write_synth(name, tmp_path / "c", cases=1, seed=8, test_cases=0, **_tiny(name)))
    assert a.keys() == b.keys() == c.keys() and a
    for key in a:
        assert a[key].dtype == b[key].dtype and np.array_equal(a[key], b[key]), key
    assert any(not np.array_equal(a[k], c[k]) for k in a if k.startswith("images"))


# -- one property per dataset ---------------------------------------------------------------


def _brain_structures(dataset: Dataset) -> None:
    """Small targets: foreground well under 5 % of the voxels."""
    for case in dataset.cases:
        label = read_volume(case.label).array
        assert 0 < (label > 0).mean() < 0.05


def _brats_like(dataset: Dataset) -> None:
    """Nested regions: necrosis (1) is enclosed by the enhancing rim (4), the tumour core
    (1 or 4) by oedema (2); no face-neighbour of 1 is 0 or 2, none of 1 or 4 is 0."""
    for case in dataset.cases:
        label = read_volume(case.label).array[0]
        core, tumour = np.isin(label, (1, 4)), np.isin(label, (1, 2, 4))
        assert (label == 1).any() and (label == 4).any() and (label == 2).any()
        assert (ndimage.binary_dilation(label == 1) <= core).all()
        assert (ndimage.binary_dilation(core) <= tumour).all()


def _ctp_like(dataset: Dataset) -> None:
    """The DWI core (label 1) lies inside the perfusion deficit (Tmax > 6 s) and is smaller."""
    names = dataset.channel_names
    for case in dataset.cases:
        label = read_volume(case.label).array[0] == 1
        tmax = read_volume(case.images[names.index("Tmax")]).array[0]
        deficit = tmax > 6.0
        assert label.any() and (label <= deficit).all()
        assert label.sum() < deficit.sum()
        dwi = case.label.parent.parent / "dwiTr" / case.label.name
        assert read_volume(dwi).same_grid(read_volume(case.label))


def _em_membranes(dataset: Dataset) -> None:
    """Membranes are thin: a fraction of the pixels under 30 %, and the cells they separate."""
    for case in dataset.cases:
        membrane = read_volume(case.label).array[0] == 1
        assert 0.05 < membrane.mean() < 0.30
        _, cells = ndimage.label(~membrane)
        assert cells > 4


SPECIFIC: dict[str, Callable[[Dataset], None]] = {
    "brain-structures": _brain_structures,
    "brats-like": _brats_like,
    "ctp-like": _ctp_like,
    "em-membranes": _em_membranes,
}


def test_dataset_specific_property(written) -> None:
    name, _, dataset = written
    SPECIFIC[name](dataset)


def test_cli_writes_a_dataset(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from volseg.cli import main

    out = tmp_path / "em"
    assert main(["synth", "em-membranes", "--out", str(out), "--cases", "2"]) == 0
    assert json.loads((out / "dataset.json").read_text(encoding="utf-8"))["numTraining"] == 2
    assert "written to" in capsys.readouterr().out
    assert main(["synth", "no-such-set", "--out", str(tmp_path / "x")]) == 2
    assert "em-membranes" in capsys.readouterr().err


def test_write_refuses_a_used_folder_and_leaves_nothing_on_failure(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import volseg.synth.base as base

    used = tmp_path / "used"
    used.mkdir()
    (used / "keep.txt").write_text("mine", encoding="utf-8")
    with pytest.raises(FileExistsError, match="used: already exists and is not an empty folder"):
        write_synth("em-membranes", used, cases=1, test_cases=0, **_tiny("em-membranes"))
    assert [p.name for p in used.iterdir()] == ["keep.txt"]
    written = base._write_case

    def fail_on_second(root: Path, split: str, case_id: str, case: object) -> None:
        if case_id.endswith("_001"):
            raise OSError(28, "No space left on device")  # a full disk, mid-dataset
        written(root, split, case_id, case)  # type: ignore[arg-type]

    monkeypatch.setattr(base, "_write_case", fail_on_second)
    with pytest.raises(OSError, match="bad: cannot write the dataset \\(No space left on device"):
        write_synth(
            "em-membranes", tmp_path / "bad", cases=2, test_cases=0, **_tiny("em-membranes")
        )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["used"]  # no partial or hidden folder
