"""Dataset checks: each kind of problem is found and names the offending file."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from volseg.data.check import Problem, check_dataset
from volseg.data.layouts import Dataset, find_cases
from volseg.io import Volume, write_volume

SHAPE = (5, 7, 6)  # array order (z, y, x): a 6x7x5 volume
SPACING = (0.8, 1.1, 2.5)
ORIGIN = (10.0, -4.0, 7.5)
DIRECTION = (0.0, 1.0, 0.0, -1.0, 0.0, 0.0, 0.0, 0.0, 1.0)  # x/y swapped with a flip


def write(
    path: Path,
    array: np.ndarray,
    spacing: tuple[float, ...] = SPACING,
    origin: tuple[float, ...] = ORIGIN,
    direction: tuple[float, ...] = DIRECTION,
) -> Path:
    """Write ``array`` (spatial only, or ``(C, *spatial)`` when it has one more axis)."""
    if array.ndim == len(spacing):
        array = array[None]
    return write_volume(Volume(array, spacing, origin, direction), path)


def image(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=SHAPE).astype(np.float32)


def label(values: tuple[int, ...] = (0, 1, 2), dtype: type = np.uint8) -> np.ndarray:
    out: np.ndarray = np.zeros(SHAPE, dtype=dtype)
    for i, v in enumerate(values):
        out[1 + i % 3, 1 + i, 1:4] = v
    return out


def make_clean(root: Path, ending: str = ".nii.gz") -> Path:
    """nnU-Net v2 dataset: 3 cases, 2 channels, labels 0/1/2 declared, all consistent."""
    root.mkdir(parents=True)
    (root / "dataset.json").write_text(
        json.dumps(
            {
                "channel_names": {"0": "T2", "1": "ADC"},
                "labels": {"background": 0, "PZ": 1, "TZ": 2},
                "file_ending": ending,
            }
        ),
        encoding="utf-8",
    )
    for n in range(3):
        for c in range(2):
            write(root / f"imagesTr/case{n}_{c:04d}{ending}", image(10 * n + c))
        write(root / f"labelsTr/case{n}{ending}", label())
    return root


def _ending(root: Path) -> str:
    ending: str = json.loads((root / "dataset.json").read_text(encoding="utf-8"))["file_ending"]
    return ending


def img(root: Path, n: int = 1, c: int = 0) -> Path:
    return root / f"imagesTr/case{n}_{c:04d}{_ending(root)}"


def lbl(root: Path, n: int = 1) -> Path:
    return root / f"labelsTr/case{n}{_ending(root)}"


@pytest.mark.parametrize("ending", [".nii.gz", ".mha", ".nrrd"])
def test_clean_dataset_has_no_problems(tmp_path: Path, ending: str) -> None:
    ds = find_cases(make_clean(tmp_path / "ds", ending))
    assert len(ds.cases) == 3
    assert check_dataset(ds) == []


# Each mutation breaks one thing in case1 and returns (offending file, words, other file named).
Mutation = Callable[[Path], tuple[Path, str, Path | None]]


def _missing_image(root: Path) -> tuple[Path, str, Path | None]:
    img(root, c=1).unlink()
    return img(root, c=1), "file not found", None


def _missing_label(root: Path) -> tuple[Path, str, Path | None]:
    lbl(root).unlink()
    return lbl(root), "file not found", None


def _unreadable_image(root: Path) -> tuple[Path, str, Path | None]:
    img(root).write_bytes(b"this is not a NIfTI file at all")
    return img(root), "cannot read", None


def _unreadable_label(root: Path) -> tuple[Path, str, Path | None]:
    lbl(root).write_bytes(b"\x00" * 40)
    return lbl(root), "cannot read", None


def _channel_grid(root: Path) -> tuple[Path, str, Path | None]:
    write(img(root, c=1), image(0), spacing=(0.8, 1.1, 3.0))
    return img(root, c=1), "grid differs", img(root, c=0)


def _label_grid(root: Path) -> tuple[Path, str, Path | None]:
    write(lbl(root), label(), origin=(10.0, -4.0, 9.0))
    return lbl(root), "origin", img(root, c=0)


def _label_direction(root: Path) -> tuple[Path, str, Path | None]:
    write(lbl(root), label(), direction=(1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0))
    return lbl(root), "direction", img(root, c=0)


def _label_shape(root: Path) -> tuple[Path, str, Path | None]:
    write(lbl(root), np.ones((5, 7, 5), np.uint8))
    return lbl(root), "shape", img(root, c=0)


def _channel_count(root: Path) -> tuple[Path, str, Path | None]:
    write(img(root, c=1), np.stack([image(1), image(2)]))  # a 2-component vector image
    return img(root, c=1), "3 channel(s)", None


def _multichannel_label(root: Path) -> tuple[Path, str, Path | None]:
    write(lbl(root), np.stack([label(), label()]))
    return lbl(root), "2 channels, expected 1", None


def _undeclared_label(root: Path) -> tuple[Path, str, Path | None]:
    write(lbl(root), label((0, 1, 3)))
    return lbl(root), "[3] not among the declared labels [0, 1, 2]", None


def _non_integer_label(root: Path) -> tuple[Path, str, Path | None]:
    values = label().astype(np.float32)
    values[0, 0, 0] = 0.5
    write(lbl(root), values)
    return lbl(root), "non-integer label values [0.5]", None


def _negative_label(root: Path) -> tuple[Path, str, Path | None]:
    write(lbl(root), label((0, 1, -1), dtype=np.int16))
    return lbl(root), "negative label values [-1]", None


def _nan_image(root: Path) -> tuple[Path, str, Path | None]:
    values = image(3)
    values[2, 3, 4] = np.nan
    write(img(root, c=1), values)
    return img(root, c=1), "1 NaN and 0 Inf", None


def _inf_image(root: Path) -> tuple[Path, str, Path | None]:
    values = image(3)
    values[0, 0, :2] = np.inf
    write(img(root), values)
    return img(root), "0 NaN and 2 Inf", None


def _empty_label(root: Path) -> tuple[Path, str, Path | None]:
    write(lbl(root), np.zeros(SHAPE, np.uint8))
    return lbl(root), "empty", None


def _two_dimensional_case(root: Path) -> tuple[Path, str, Path | None]:
    spacing, origin, direction = (0.8, 1.1), (10.0, -4.0), (0.0, 1.0, -1.0, 0.0)
    for c in range(2):
        write(img(root, c=c), image(c)[0], spacing, origin, direction)
    write(lbl(root), label()[2], spacing, origin, direction)
    return img(root, c=0), "2-D volume, but case case0 is 3-D", img(root, n=0, c=0)


_MUTATIONS = [
    _missing_image,
    _missing_label,
    _unreadable_image,
    _unreadable_label,
    _channel_grid,
    _label_grid,
    _label_direction,
    _label_shape,
    _channel_count,
    _multichannel_label,
    _undeclared_label,
    _non_integer_label,
    _negative_label,
    _nan_image,
    _inf_image,
    _empty_label,
    _two_dimensional_case,
]


@pytest.mark.parametrize(
    ("ending", "mutate"),
    [(ending, m) for ending in (".mha", ".nii.gz") for m in _MUTATIONS],
    ids=lambda v: v if isinstance(v, str) else v.__name__.strip("_"),
)
def test_each_problem_names_the_file(tmp_path: Path, ending: str, mutate: Mutation) -> None:
    root = make_clean(tmp_path / "ds", ending)
    bad, words, other = mutate(root)
    problems = check_dataset(find_cases(root))
    assert len(problems) == 1, [str(p) for p in problems]
    (problem,) = problems
    assert problem.path == bad
    assert words in problem.message
    assert str(problem) == f"{bad}: {problem.message}"
    assert "\n" not in str(problem)
    if other is not None:
        assert str(other) in problem.message


def test_every_problem_is_reported(tmp_path: Path) -> None:
    """Checking does not stop at the first problem, nor at the first problem of a case."""
    root = make_clean(tmp_path / "ds", ".mha")
    found = [_missing_image(root), _empty_label(root), _nan_image_case(root, 2)]
    problems = check_dataset(find_cases(root))
    assert len(problems) == len(found)
    assert {(p.path, any(w in p.message for _, w, _ in found)) for p in problems} == {
        (path, True) for path, _, _ in found
    }


def _nan_image_case(root: Path, n: int) -> tuple[Path, str, Path | None]:
    values = image(5)
    values[:] = np.nan
    write(img(root, n=n), values)
    return img(root, n=n), "NaN", None


def test_several_problems_in_one_label(tmp_path: Path) -> None:
    root = make_clean(tmp_path / "ds")
    write(lbl(root), label((0, -2, 7), dtype=np.int16), spacing=(1.0, 1.0, 1.0))
    messages = [p.message for p in check_dataset(find_cases(root))]
    assert len(messages) == 3
    assert any("grid differs" in m and "spacing" in m for m in messages)
    assert any("negative label values [-2]" in m for m in messages)
    assert any("[7] not among the declared labels" in m for m in messages)


def _manifest(tmp_path: Path, cases: list[dict[str, object]], **extra: object) -> Dataset:
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps({"cases": cases, **extra}), encoding="utf-8")
    return find_cases(path)


def test_undeclared_values_pass_when_no_labels_are_declared(tmp_path: Path) -> None:
    write(tmp_path / "a.nii.gz", image(0))
    write(tmp_path / "a_seg.nii.gz", label((0, 7, 250)))
    ds = _manifest(tmp_path, [{"case_id": "a", "images": ["a.nii.gz"], "label": "a_seg.nii.gz"}])
    assert ds.labels is None
    assert check_dataset(ds) == []


def test_manifest_case_with_too_few_channel_files(tmp_path: Path) -> None:
    write(tmp_path / "a0.nii.gz", image(0))
    write(tmp_path / "b0.nii.gz", image(1))
    write(tmp_path / "b1.nii.gz", image(2))
    ds = _manifest(
        tmp_path,
        [
            {"case_id": "a", "images": ["a0.nii.gz"]},
            {"case_id": "b", "images": ["b0.nii.gz", "b1.nii.gz"]},
        ],
        channel_names=["T1", "T2"],
    )
    assert check_dataset(ds) == [
        Problem(
            tmp_path / "a0.nii.gz",
            "case a has 1 channel(s) in 1 file(s), but the dataset has 2 (T1, T2)",
        )
    ]


def test_manifest_case_with_missing_and_too_few_files(tmp_path: Path) -> None:
    ds = _manifest(
        tmp_path, [{"case_id": "a", "images": ["gone.nii.gz"]}], channel_names=["x", "y"]
    )
    messages = {str(p) for p in check_dataset(ds)}
    assert messages == {
        f"{tmp_path / 'gone.nii.gz'}: file not found",
        f"{tmp_path / 'gone.nii.gz'}: case a lists 1 image file(s), but the dataset has 2 "
        "channel(s) (x, y)",
    }


def test_problem_str() -> None:
    assert str(Problem(Path("/d/x.nii.gz"), "file not found")) == "/d/x.nii.gz: file not found"
