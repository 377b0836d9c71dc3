"""Finding cases on disk: every layout, auto-detection and the errors."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pytest

from volseg.data.layouts import (
    LAYOUTS,
    Case,
    Dataset,
    LayoutError,
    find_cases,
    list_layouts,
    register_layout,
)
from volseg.io import Volume, read_volume, write_volume

SPACING = (0.8, 1.1, 2.5)
ORIGIN = (10.0, -4.0, 7.5)
DIRECTION = (0.0, 1.0, 0.0, -1.0, 0.0, 0.0, 0.0, 0.0, 1.0)  # x/y swapped with a flip


def write(path: Path, value: float = 1.0, dtype: type = np.float32) -> Path:
    """A tiny anisotropic 6x7x5 (x, y, z) volume with a non-identity direction."""
    array: np.ndarray = np.full((1, 5, 7, 6), value, dtype=dtype)
    return write_volume(Volume(array, SPACING, ORIGIN, DIRECTION), path)


def touch(path: Path) -> Path:
    """An empty placeholder: layouts only look at names, never at voxels."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    return path


def write_json(path: Path, data: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


# -- msd / nnU-Net ----------------------------------------------------------------------------


def make_msd_v2(root: Path) -> Path:
    """nnU-Net v2: two channels; case ``c`` lacks its ADC file, case ``d`` has only a label."""
    write_json(
        root / "dataset.json",
        {
            "channel_names": {"1": "ADC", "0": "T2"},
            "labels": {"background": 0, "PZ": 1, "TZ": 2},
            "numTraining": 4,
            "file_ending": ".nii.gz",
        },
    )
    for case in ("b", "a", "c"):
        write(root / "imagesTr" / f"{case}_0000.nii.gz")
        if case != "c":
            write(root / "imagesTr" / f"{case}_0001.nii.gz")
    for case in ("a", "b", "c", "d"):
        write(root / "labelsTr" / f"{case}.nii.gz", dtype=np.uint8)
    return root


def test_msd_v2_cases_channels_and_labels(tmp_path: Path) -> None:
    root = make_msd_v2(tmp_path / "Dataset001")
    ds = find_cases(root, "msd")
    assert ds.layout == "msd"
    assert ds.root == root
    assert ds.channel_names == ("T2", "ADC")
    assert ds.labels == (0, 1, 2)
    assert [c.case_id for c in ds.cases] == ["a", "b", "c", "d"]
    a = ds.cases[0]
    assert a.images == (root / "imagesTr/a_0000.nii.gz", root / "imagesTr/a_0001.nii.gz")
    assert a.label == root / "labelsTr/a.nii.gz"
    # missing channel files are still listed, with the path they should have
    assert ds.cases[2].images[1] == root / "imagesTr/c_0001.nii.gz"
    assert not ds.cases[2].images[1].exists()
    assert ds.cases[3].images == (
        root / "imagesTr/d_0000.nii.gz",
        root / "imagesTr/d_0001.nii.gz",
    )


def test_msd_v2_file_ending_and_inferred_channels(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    write_json(root / "dataset.json", {"file_ending": ".mha", "labels": {"background": 0}})
    for c in range(3):
        touch(root / "imagesTr" / f"x_{c:04d}.mha")
    ds = find_cases(root)
    assert ds.channel_names == ("0", "1", "2")
    assert ds.cases == (Case("x", tuple(root / f"imagesTr/x_{c:04d}.mha" for c in range(3)), None),)


def test_msd_v2_region_labels(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    labels = {"background": 0, "whole": [1, 2, 3], "core": [2, 3], "enhancing": 3}
    write_json(root / "dataset.json", {"channel_names": {"0": "t1"}, "labels": labels})
    touch(root / "imagesTr/x_0000.nii.gz")
    assert find_cases(root).labels == (0, 1, 2, 3)


def test_msd_v1_one_4d_file_per_case(tmp_path: Path) -> None:
    root = tmp_path / "Task01_BrainTumour"
    write_json(
        root / "dataset.json",
        {
            "modality": {"0": "FLAIR", "1": "T1w", "2": "t1gd", "3": "T2w"},
            "labels": {"0": "background", "1": "edema", "2": "non-enhancing", "3": "enhancing"},
            "training": [
                {"image": "./imagesTr/BRATS_002.nii.gz", "label": "./labelsTr/BRATS_002.nii.gz"},
                {"image": "./imagesTr/BRATS_001.nii.gz", "label": "./labelsTr/BRATS_001.nii.gz"},
            ],
            "test": ["./imagesTs/BRATS_485.nii.gz"],
        },
    )
    touch(root / "imagesTr/BRATS_001.nii.gz")
    touch(root / "imagesTr/BRATS_002.nii.gz")
    ds = find_cases(root)
    assert ds.layout == "msd"
    assert ds.channel_names == ("FLAIR", "T1w", "t1gd", "T2w")
    assert ds.labels == (0, 1, 2, 3)
    assert [c.case_id for c in ds.cases] == ["BRATS_001", "BRATS_002"]
    assert ds.cases[0].images == (root / "imagesTr/BRATS_001.nii.gz",)
    assert ds.cases[0].label == root / "labelsTr/BRATS_001.nii.gz"


def test_msd_v1_converted_channel_files(tmp_path: Path) -> None:
    """nnU-Net v1 lists ``la_003.nii.gz`` but stores ``la_003_0000.nii.gz``."""
    root = tmp_path / "Task002"
    write_json(
        root / "dataset.json",
        {
            "modality": {"0": "T2", "1": "ADC"},
            "labels": {"0": "background", "1": "prostate"},
            "training": [
                {"image": "./imagesTr/la_003.nii.gz", "label": "./labelsTr/la_003.nii.gz"}
            ],
        },
    )
    touch(root / "imagesTr/la_003_0000.nii.gz")
    (case,) = find_cases(root).cases
    assert case.images == (
        root / "imagesTr/la_003_0000.nii.gz",
        root / "imagesTr/la_003_0001.nii.gz",
    )


def test_msd_explicit_dataset_entries(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    write_json(
        root / "dataset.json",
        {
            "channel_names": {"0": "CT"},
            "labels": {"background": 0, "liver": 1},
            "dataset": {"p1": {"images": ["scans/p1.nrrd"], "label": "seg/p1.nrrd"}},
        },
    )
    ds = find_cases(root)
    assert ds.cases == (Case("p1", (root / "scans/p1.nrrd",), root / "seg/p1.nrrd"),)


def test_msd_without_labels_folder_is_unlabeled(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    write_json(root / "dataset.json", {"channel_names": {"0": "CT"}})
    touch(root / "imagesTr/q_0000.nii.gz")
    ds = find_cases(root)
    assert ds.labels is None
    assert ds.cases[0].label is None


# -- manifest ---------------------------------------------------------------------------------


def test_manifest_csv(tmp_path: Path) -> None:
    folder = tmp_path / "study"
    manifest = folder / "cases.csv"
    folder.mkdir()
    manifest.write_text(
        "case_id,image_t1,image_t2,label\n"
        "p2,img/p2_t1.nii.gz,img/p2_t2.nii.gz,\n"
        "p1,img/p1_t1.nii.gz,/abs/p1_t2.nii.gz,seg/p1.nii.gz\n",
        encoding="utf-8",
    )
    ds = find_cases(manifest)
    assert ds.layout == "manifest"
    assert ds.root == manifest
    assert ds.channel_names == ("t1", "t2")
    assert ds.labels is None
    assert ds.cases == (
        Case(
            "p1", (folder / "img/p1_t1.nii.gz", Path("/abs/p1_t2.nii.gz")), folder / "seg/p1.nii.gz"
        ),
        Case("p2", (folder / "img/p2_t1.nii.gz", folder / "img/p2_t2.nii.gz"), None),
    )


def test_manifest_csv_single_image_column_without_case_id(tmp_path: Path) -> None:
    manifest = tmp_path / "m.csv"
    manifest.write_text("image,label\nscans/x.mha,labels/x.mha\n", encoding="utf-8")
    ds = find_cases(manifest, "manifest")
    assert ds.channel_names == ("image",)
    assert ds.cases == (Case("x", (tmp_path / "scans/x.mha",), tmp_path / "labels/x.mha"),)


def test_manifest_json_list(tmp_path: Path) -> None:
    manifest = write_json(
        tmp_path / "m.json",
        [
            {"case_id": "b", "images": ["b0.nii.gz", "b1.nii.gz"], "label": "bl.nii.gz"},
            {"case_id": "a", "images": ["a0.nii.gz", "a1.nii.gz"], "label": None},
        ],
    )
    ds = find_cases(manifest)
    assert ds.channel_names == ("0", "1")
    assert [c.case_id for c in ds.cases] == ["a", "b"]
    assert ds.cases[0].label is None
    assert ds.cases[1].images == (tmp_path / "b0.nii.gz", tmp_path / "b1.nii.gz")
    assert ds.cases[1].label == tmp_path / "bl.nii.gz"


def test_manifest_json_object(tmp_path: Path) -> None:
    manifest = write_json(
        tmp_path / "sub" / "m.json",
        {
            "cases": [{"case_id": "k", "images": ["../k.nrrd"], "label": "k_seg.nrrd"}],
            "labels": [1, 2],
            "channel_names": ["CT"],
        },
    )
    ds = find_cases(manifest)
    assert ds.channel_names == ("CT",)
    assert ds.labels == (0, 1, 2)
    assert ds.cases == (Case("k", (tmp_path / "sub/../k.nrrd",), tmp_path / "sub/k_seg.nrrd"),)


def test_manifest_folder_with_manifest_file(tmp_path: Path) -> None:
    (tmp_path / "manifest.csv").write_text("case_id,image\nz,z.nii.gz\n", encoding="utf-8")
    ds = find_cases(tmp_path, "manifest")
    assert ds.root == tmp_path / "manifest.csv"
    assert [c.case_id for c in ds.cases] == ["z"]


# -- brats ------------------------------------------------------------------------------------


# The two BraTS namings: (case ids, separator, file tag per channel t1, t1ce, t2, flair).
BRATS_NAMINGS = {
    "2019": (("BraTS19_2", "BraTS19_1"), "_", ("t1", "t1ce", "t2", "flair")),
    "2021": (("BraTS2021_00002", "BraTS2021_00000"), "_", ("t1", "t1ce", "t2", "flair")),
    "2023": (("BraTS-GLI-00002-000", "BraTS-GLI-00000-000"), "-", ("t1n", "t1c", "t2w", "t2f")),
}


def make_brats(root: Path, with_seg: bool = True, naming: str = "2019") -> Path:
    """Two BraTS cases; each channel's voxels hold its channel index (t1 0 ... flair 3)."""
    case_ids, sep, tags = BRATS_NAMINGS[naming]
    for case in case_ids:
        if with_seg:
            write(root / case / f"{case}{sep}seg.nii.gz", dtype=np.uint8)
        for index in (3, 2, 1, 0):  # written out of channel order
            write(root / case / f"{case}{sep}{tags[index]}.nii.gz", value=float(index))
    return root


def test_brats_channel_order_and_labels(tmp_path: Path) -> None:
    root = make_brats(tmp_path / "brats")
    ds = find_cases(root, "brats")
    assert ds.layout == "brats"
    assert ds.channel_names == ("t1", "t1ce", "t2", "flair")
    assert ds.labels == (0, 1, 2, 4)
    assert [c.case_id for c in ds.cases] == ["BraTS19_1", "BraTS19_2"]
    case = ds.cases[0]
    folder = root / "BraTS19_1"
    assert case.images == tuple(
        folder / f"BraTS19_1_{t}.nii.gz" for t in ("t1", "t1ce", "t2", "flair")
    )
    assert case.label == folder / "BraTS19_1_seg.nii.gz"
    # the files found are the files written, in channel order
    assert read_volume(case.images[0]).shape == (5, 7, 6)


def test_brats_missing_channel_and_other_suffix(tmp_path: Path) -> None:
    root = make_brats(tmp_path / "brats")
    (root / "BraTS19_2/BraTS19_2_t2.nii.gz").unlink()
    touch(root / "BraTS19_3/BraTS19_3_flair.mha")
    (root / "empty").mkdir()  # an empty subfolder is not a case
    ds = find_cases(root)
    assert [c.case_id for c in ds.cases] == ["BraTS19_1", "BraTS19_2", "BraTS19_3"]
    assert ds.cases[1].images[2] == root / "BraTS19_2/BraTS19_2_t2.nii.gz"
    assert ds.cases[2].images[3] == root / "BraTS19_3/BraTS19_3_flair.mha"
    assert ds.cases[2].label == root / "BraTS19_3/BraTS19_3_seg.nii.gz"  # expected, missing


def test_brats_validation_set_without_seg_is_unlabeled(tmp_path: Path) -> None:
    ds = find_cases(make_brats(tmp_path / "val", with_seg=False))
    assert ds.layout == "brats"
    assert all(c.label is None for c in ds.cases)


@pytest.mark.parametrize(("naming", "labels"), [("2021", (0, 1, 2, 4)), ("2023", (0, 1, 2, 3))])
def test_brats_2021_and_2023_namings(tmp_path: Path, naming: str, labels: tuple[int, ...]) -> None:
    """Both namings expose t1, t1ce, t2, flair (2023: t1n, t1c, t2w, t2f) and their labels."""
    root = make_brats(tmp_path / "brats", naming=naming)
    case_ids, sep, tags = BRATS_NAMINGS[naming]
    ds = find_cases(root)
    assert ds.layout == "brats"
    assert ds.channel_names == ("t1", "t1ce", "t2", "flair")
    assert ds.labels == labels
    assert [c.case_id for c in ds.cases] == sorted(case_ids)
    case = ds.cases[0]
    folder = root / case.case_id
    assert case.images == tuple(folder / f"{case.case_id}{sep}{t}.nii.gz" for t in tags)
    assert case.label == folder / f"{case.case_id}{sep}seg.nii.gz"
    assert [float(read_volume(p).array.max()) for p in case.images] == [0.0, 1.0, 2.0, 3.0]


def test_brats_2023_missing_files_keep_the_2023_naming(tmp_path: Path) -> None:
    root = make_brats(tmp_path / "brats", naming="2023")
    (root / "BraTS-GLI-00000-000/BraTS-GLI-00000-000-t1c.nii.gz").unlink()
    touch(root / "BraTS-GLI-00003-000/BraTS-GLI-00003-000-T2F.mha")  # tags: any case
    ds = find_cases(root)
    assert ds.cases[0].images[1] == root / "BraTS-GLI-00000-000/BraTS-GLI-00000-000-t1c.nii.gz"
    assert ds.cases[2].images[3] == root / "BraTS-GLI-00003-000/BraTS-GLI-00003-000-T2F.mha"
    assert ds.cases[2].label == root / "BraTS-GLI-00003-000/BraTS-GLI-00003-000-seg.nii.gz"


def test_brats_mixed_namings_are_an_error(tmp_path: Path) -> None:
    root = make_brats(tmp_path / "brats")
    touch(root / "BraTS-GLI-00000-000/BraTS-GLI-00000-000-t2f.nii.gz")
    with pytest.raises(LayoutError, match=f"^{root}: mixes two BraTS file namings, .*t2f"):
        find_cases(root)


# -- channel subsets ----------------------------------------------------------------------------


@pytest.mark.parametrize("naming", ["2019", "2023"])
def test_channel_subset_in_the_chosen_order(tmp_path: Path, naming: str) -> None:
    root = make_brats(tmp_path / "brats", naming=naming)
    full = find_cases(root)
    ds = find_cases(root, "brats", channels=("flair", "t1ce"))
    assert ds.channel_names == ("flair", "t1ce")
    assert ds == full.select_channels(["flair", "t1ce"])
    assert ds.labels == full.labels and ds.root == full.root
    for case, whole in zip(ds.cases, full.cases, strict=True):
        assert case.images == (whole.images[3], whole.images[1])
        assert case.label == whole.label
    # the files picked hold the channels asked for: flair (3) first, then t1ce (1)
    assert [float(read_volume(p).array.max()) for p in ds.cases[0].images] == [3.0, 1.0]
    assert find_cases(root, channels=("t1", "t1ce", "t2", "flair")) == full


def test_channel_subset_on_msd_names(tmp_path: Path) -> None:
    root = make_msd_v2(tmp_path / "msd")
    ds = find_cases(root, channels=["ADC"])
    assert ds.channel_names == ("ADC",)
    assert ds.cases[0].images == (root / "imagesTr/a_0001.nii.gz",)
    assert find_cases(root).select_channels("ADC") == ds  # one string is one name


@pytest.mark.parametrize(
    ("channels", "words"),
    [
        (("t1ce", "FLAIR"), "unknown channel 'FLAIR'; available: t1, t1ce, t2, flair"),
        (("t1", "t1"), "channel 't1' selected more than once"),
        ((), "no channel selected; available: t1, t1ce, t2, flair"),
    ],
)
def test_channel_subset_errors(tmp_path: Path, channels: tuple[str, ...], words: str) -> None:
    root = make_brats(tmp_path / "brats")
    with pytest.raises(LayoutError) as info:
        find_cases(root, channels=channels)
    assert str(info.value) == f"{root}: {words}"


def test_channel_subset_needs_one_file_per_channel(tmp_path: Path) -> None:
    """MSD v1 keeps the 4 channels of a case in one 4-D file: nothing to pick from."""
    root = tmp_path / "Task01"
    write_json(
        root / "dataset.json",
        {
            "modality": {"0": "FLAIR", "1": "T1w"},
            "training": [{"image": "./imagesTr/B_1.nii.gz", "label": "./labelsTr/B_1.nii.gz"}],
        },
    )
    touch(root / "imagesTr/B_1.nii.gz")
    with pytest.raises(LayoutError, match="case 'B_1' has 1 image file.* one file per channel"):
        find_cases(root, channels=["T1w"])


# -- promise12 --------------------------------------------------------------------------------


def test_promise12(tmp_path: Path) -> None:
    for n in (1, 0):
        write(tmp_path / f"Case{n:02d}.mhd")
        write(tmp_path / f"Case{n:02d}_segmentation.mhd", dtype=np.uint8)
    ds = find_cases(tmp_path)
    assert ds.layout == "promise12"
    assert ds.labels == (0, 1)
    assert ds.channel_names == ("T2",)
    assert ds.cases == (
        Case("Case00", (tmp_path / "Case00.mhd",), tmp_path / "Case00_segmentation.mhd"),
        Case("Case01", (tmp_path / "Case01.mhd",), tmp_path / "Case01_segmentation.mhd"),
    )


def test_promise12_parts_and_test_set(tmp_path: Path) -> None:
    touch(tmp_path / "TrainingData_Part2/Case03.mhd")
    touch(tmp_path / "TrainingData_Part1/Case01.mhd")
    ds = find_cases(tmp_path)
    assert ds.layout == "promise12"
    assert [c.case_id for c in ds.cases] == ["Case01", "Case03"]
    assert all(c.label is None for c in ds.cases)


# -- folder -----------------------------------------------------------------------------------


def test_folder(tmp_path: Path) -> None:
    write(tmp_path / "b.mha")
    write(tmp_path / "a.nii.gz")
    write(tmp_path / "c.nrrd")
    (tmp_path / "notes.txt").write_text("not an image", encoding="utf-8")
    touch(tmp_path / ".hidden.nii.gz")
    ds = find_cases(tmp_path)
    assert ds.layout == "folder"
    assert ds.labels is None
    assert ds.channel_names == ("image",)
    assert ds.cases == (
        Case("a", (tmp_path / "a.nii.gz",), None),
        Case("b", (tmp_path / "b.mha",), None),
        Case("c", (tmp_path / "c.nrrd",), None),
    )


def test_folder_single_file(tmp_path: Path) -> None:
    path = write(tmp_path / "scan.nii")
    ds = find_cases(path)
    assert ds.layout == "folder"
    assert ds.cases == (Case("scan", (path,), None),)


# -- every registered layout ------------------------------------------------------------------


class Built(NamedTuple):
    """A tiny dataset on disk: its root, the case ids it holds, whether the cases are labelled."""

    root: Path
    case_ids: tuple[str, ...]
    labelled: bool


def _build_msd(tmp: Path) -> Built:
    root = tmp / "Dataset002"
    write_json(root / "dataset.json", {"channel_names": {"0": "CT"}, "labels": {"liver": 1}})
    for case in ("b", "a"):
        write(root / "imagesTr" / f"{case}_0000.nii.gz")
        write(root / "labelsTr" / f"{case}.nii.gz", dtype=np.uint8)
    return Built(root, ("a", "b"), True)


def _build_manifest(tmp: Path) -> Built:
    for case in ("b", "a"):
        write(tmp / "img" / f"{case}.nrrd")
        write(tmp / "seg" / f"{case}.nrrd", dtype=np.uint8)
    rows = "".join(f"{c},img/{c}.nrrd,seg/{c}.nrrd\n" for c in ("b", "a"))
    manifest = tmp / "cases.csv"
    manifest.write_text("case_id,image,label\n" + rows, encoding="utf-8")
    return Built(manifest, ("a", "b"), True)


def _build_brats(tmp: Path) -> Built:
    return Built(make_brats(tmp / "brats"), ("BraTS19_1", "BraTS19_2"), True)


def _build_brats2023(tmp: Path) -> Built:
    root = make_brats(tmp / "brats23", naming="2023")
    return Built(root, ("BraTS-GLI-00000-000", "BraTS-GLI-00002-000"), True)


def _build_promise12(tmp: Path) -> Built:
    for n in (1, 0):
        write(tmp / "p" / f"Case{n:02d}.mhd")
        write(tmp / "p" / f"Case{n:02d}_segmentation.mhd", dtype=np.uint8)
    return Built(tmp / "p", ("Case00", "Case01"), True)


def _build_folder(tmp: Path) -> Built:
    write(tmp / "f" / "y.mha")
    write(tmp / "f" / "x.nii.gz")
    return Built(tmp / "f", ("x", "y"), False)


# One builder per registered layout (``layout:variant`` for more of one layout): a new layout
# without one fails the next test.
BUILDERS: dict[str, Callable[[Path], Built]] = {
    "msd": _build_msd,
    "manifest": _build_manifest,
    "brats": _build_brats,
    "brats:2023": _build_brats2023,
    "promise12": _build_promise12,
    "folder": _build_folder,
}


def test_every_layout_has_a_builder() -> None:
    assert sorted({key.split(":")[0] for key in BUILDERS}) == sorted(list_layouts())


@pytest.mark.parametrize("key", sorted(BUILDERS))
def test_every_layout_found_by_detection_and_by_name(tmp_path: Path, key: str) -> None:
    layout = key.split(":")[0]
    built = BUILDERS[key](tmp_path)
    ds = find_cases(built.root)
    assert ds.layout == layout
    assert find_cases(built.root, "auto") == ds == find_cases(built.root, layout)
    assert tuple(c.case_id for c in ds.cases) == built.case_ids
    for case in ds.cases:
        assert len(case.images) == len(ds.channel_names)
        assert all(p.is_file() for p in case.images), case
        if built.labelled:
            assert case.label is not None and case.label.is_file(), case
        else:
            assert case.label is None
    assert read_volume(ds.cases[0].images[0]).shape == (5, 7, 6)


def test_list_layouts_in_detection_order() -> None:
    # the documented order (volseg.data.layouts' docstring): specific layouts first, folder last
    assert list_layouts() == ["msd", "manifest", "promise12", "brats", "folder"]
    ranks = [LAYOUTS.create(name).rank for name in list_layouts()]
    assert ranks == sorted(set(ranks))


def test_detection_asks_promise12_before_brats(tmp_path: Path) -> None:
    touch(tmp_path / "Case00.mhd")
    touch(tmp_path / "x" / "x_flair.nii.gz")
    assert find_cases(tmp_path).layout == "promise12"
    assert find_cases(tmp_path, "brats").layout == "brats"


def test_a_name_is_registered_once() -> None:
    with pytest.raises(ValueError, match="already registered"):
        register_layout(type(LAYOUTS.create("folder")))


# -- determinism, errors -------------------------------------------------------------------------


def test_deterministic(tmp_path: Path) -> None:
    root = make_msd_v2(tmp_path / "msd")
    first: Dataset = find_cases(root)
    assert find_cases(str(root)) == first
    assert hash(first) == hash(find_cases(root))


def _bad_json(tmp: Path) -> tuple[Path, str, Path]:
    (tmp / "dataset.json").write_text("{not json", encoding="utf-8")
    return tmp, "msd", tmp / "dataset.json"


def _no_dataset_json(tmp: Path) -> tuple[Path, str, Path]:
    return tmp, "msd", tmp / "dataset.json"


def _bad_v2_name(tmp: Path) -> tuple[Path, str, Path]:
    write_json(tmp / "dataset.json", {"channel_names": {"0": "CT"}})
    return tmp, "auto", touch(tmp / "imagesTr/case1.nii.gz")


def _duplicate_id(tmp: Path) -> tuple[Path, str, Path]:
    touch(tmp / "a.nii")
    touch(tmp / "a.nii.gz")
    return tmp, "folder", tmp


def _csv_without_image(tmp: Path) -> tuple[Path, str, Path]:
    path = tmp / "m.csv"
    path.write_text("case_id,label\na,a.nii.gz\n", encoding="utf-8")
    return path, "auto", path


def _empty_folder(tmp: Path) -> tuple[Path, str, Path]:
    return tmp, "auto", tmp


def _missing_root(tmp: Path) -> tuple[Path, str, Path]:
    return tmp / "nope", "auto", tmp / "nope"


def _unknown_layout(tmp: Path) -> tuple[Path, str, Path]:
    return tmp, "kitti", tmp


def _unknown_file(tmp: Path) -> tuple[Path, str, Path]:
    path = tmp / "readme.txt"
    path.write_text("hello", encoding="utf-8")
    return path, "auto", path


@pytest.mark.parametrize(
    ("make", "words"),
    [
        (_bad_json, "invalid JSON"),
        (_no_dataset_json, "dataset.json not found"),
        (_bad_v2_name, "CASE_XXXX"),
        (_duplicate_id, "more than once"),
        (_csv_without_image, "no image column"),
        (_empty_folder, "no cases found"),
        (_missing_root, "not found"),
        (_unknown_layout, "unknown layout"),
        (_unknown_file, "cannot detect"),
    ],
)
def test_errors_name_the_path(
    tmp_path: Path, make: Callable[[Path], tuple[Path, str, Path]], words: str
) -> None:
    root, layout, named = make(tmp_path)
    with pytest.raises(LayoutError) as info:
        find_cases(root, layout)
    message = str(info.value)
    assert message.startswith(f"{named}:")
    assert words in message
    assert "\n" not in message
    assert isinstance(info.value, ValueError)
