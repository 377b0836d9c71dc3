"""The bad-input corpus (issue 18, item 7): every case ends as README promises.

Each case builds its bad input in a fresh folder and runs one ``volseg`` command on it. It must
exit with the stated status, say what is wrong in ONE line naming the file (stderr
``volseg: error: ...``, or for ``check`` one problem line on stdout), and leave every file as
it was: nothing added, changed or removed, in the case's folder or in the run it used.
``docs/reliability.md`` lists the cases by family.
"""

from __future__ import annotations

import gzip
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from volseg.cli import main
from volseg.config import (
    Config,
    DataConfig,
    InferConfig,
    ModelConfig,
    PreprocessConfig,
    TrainConfig,
    config_to_dict,
)
from volseg.data.synthetic import make_phantom, write_phantom_dataset
from volseg.io import Volume, write_volume
from volseg.nn import create_model
from volseg.training.checkpoint import Checkpoint, save_checkpoint

Build = Callable[[Path, Path], list[str]]  # (case folder, run dir) -> argv


@dataclass(frozen=True)
class Bad:
    family: str
    name: str
    build: Build
    code: int
    message: str
    stream: str = "err"  # "err": one 'volseg: error:' line; "out": one problem line (check)


def _config(root: Path, run_dir: Path) -> Config:
    return Config(
        data=DataConfig(root=str(root), labels=(0, 1, 2), val_fraction=0.0),
        preprocess=PreprocessConfig(target_spacing=(1.5, 1.5, 1.5)),
        model=ModelConfig("vnet", {"base_channels": 4, "kernel_size": 3}),
        train=TrainConfig(epochs=1, iterations_per_epoch=1, batch_size=1, patch_size=(16, 16, 16)),
        infer=InferConfig(window=(16, 16, 16)),
        run_dir=str(run_dir),
    )


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An untrained, complete run (predicting needs no training to test its refusals)."""
    folder = tmp_path_factory.mktemp("corpus_run")
    torch.manual_seed(0)
    model = create_model("vnet", in_channels=1, out_channels=3, base_channels=4, kernel_size=3)
    config = config_to_dict(_config(folder, folder / "run"))
    for name in ("checkpoint_best.pt", "checkpoint_last.pt"):
        save_checkpoint(Checkpoint(model.state_dict(), config, [0, 1, 2], 1), folder / "run" / name)
    (folder / "run" / "config.yaml").write_text(
        yaml.safe_dump(config, sort_keys=False), encoding="utf-8"
    )
    return folder / "run"


def _image(d: Path, name: str = "scan.nii.gz", **kwargs: object) -> Path:
    image, _ = make_phantom(**kwargs)  # type: ignore[arg-type]
    return write_volume(image, d / name)


def _float_image(d: Path, name: str, edit: Callable[[np.ndarray], None]) -> Path:
    image, _ = make_phantom()
    array = image.array.astype(np.float32)
    edit(array)
    return write_volume(image.with_array(array), d / name)


def _predict(scan: Path | list[Path], out: Path, run: Path) -> list[str]:
    scans = scan if isinstance(scan, list) else [scan]
    return ["predict", "-m", str(run), "-i", *map(str, scans), "-o", str(out), "-q"]


def _edit_nifti_gz(path: Path, edit: Callable[[bytearray], None]) -> Path:
    raw = bytearray(gzip.decompress(path.read_bytes()))
    edit(raw)
    path.write_bytes(gzip.compress(bytes(raw)))
    return path


def _dicom(folder: Path, uid: str, depth: int = 5) -> None:
    import SimpleITK as sitk

    folder.mkdir(exist_ok=True)
    volume = sitk.GetImageFromArray(np.zeros((depth, 20, 20), np.int16))
    volume.SetSpacing((1.0, 1.0, 2.0))
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    for k in range(depth):
        s = volume[:, :, k]
        s.SetMetaData("0020|000e", uid)
        s.SetMetaData("0008|0060", "MR")
        s.SetMetaData("0020|0013", str(k + 1))
        s.SetMetaData("0020|0037", "1\\0\\0\\0\\1\\0")
        s.SetMetaData("0020|0032", f"0\\0\\{2.0 * k:g}")
        writer.SetFileName(str(folder / f"{uid[-1]}_{k}.dcm"))
        writer.Execute(s)


# -- files given to predict ---------------------------------------------------------------


def missing_file(d: Path, run: Path) -> list[str]:
    return _predict(d / "nope.nii.gz", d / "out.nii.gz", run)


def unsupported_suffix(d: Path, run: Path) -> list[str]:
    (d / "scan.png").write_bytes(b"\x89PNG")
    return _predict(d / "scan.png", d / "out.nii.gz", run)


def garbage_bytes(d: Path, run: Path) -> list[str]:
    (d / "scan.nii.gz").write_bytes(b"\x00" * 64)
    return _predict(d / "scan.nii.gz", d / "out.nii.gz", run)


def truncated_gzip(d: Path, run: Path) -> list[str]:
    scan = _image(d)
    scan.write_bytes(scan.read_bytes()[:-200])
    return _predict(scan, d / "out.nii.gz", run)


def truncated_nii(d: Path, run: Path) -> list[str]:
    scan = _image(d, "scan.nii")
    scan.write_bytes(scan.read_bytes()[:-200])
    return _predict(scan, d / "out.nii.gz", run)


def nan_in_mha(d: Path, run: Path) -> list[str]:
    scan = _float_image(d, "scan.mha", lambda a: a.flat.__setitem__(5, np.nan))
    return _predict(scan, d / "out.nii.gz", run)


def inf_in_nifti(d: Path, run: Path) -> list[str]:
    scan = _float_image(d, "scan.nii.gz", lambda a: a.flat.__setitem__(5, np.inf))
    return _predict(scan, d / "out.nii.gz", run)


def nan_in_nrrd(d: Path, run: Path) -> list[str]:
    scan = _float_image(d, "scan.nrrd", lambda a: a.flat.__setitem__(7, np.nan))
    return _predict(scan, d / "out.nii.gz", run)


def zero_pixdim(d: Path, run: Path) -> list[str]:
    scan = _edit_nifti_gz(_image(d), lambda h: struct.pack_into("<f", h, 84, 0.0))
    return _predict(scan, d / "out.nii.gz", run)


def size_bomb(d: Path, run: Path) -> list[str]:
    scan = _edit_nifti_gz(_image(d), lambda h: struct.pack_into("<4h", h, 40, 3, 1400, 1400, 1400))
    return _predict(scan, d / "out.nii.gz", run)


def four_d_image(d: Path, run: Path) -> list[str]:
    import SimpleITK as sitk

    volume = sitk.GetImageFromArray(np.zeros((4, 5, 6), np.float32))
    sitk.WriteImage(sitk.JoinSeries([volume, volume]), str(d / "s.nii"))  # x, y, z, t
    return _predict(d / "s.nii", d / "out.nii.gz", run)


def two_d_image(d: Path, run: Path) -> list[str]:
    image = Volume(np.zeros((1, 20, 20), np.float32), (1.0, 1.0), (0.0, 0.0), (1, 0, 0, 1))
    return _predict(write_volume(image, d / "slice.nii.gz"), d / "out.nii.gz", run)


def channel_count(d: Path, run: Path) -> list[str]:
    return _predict([_image(d, "a.nii.gz"), _image(d, "b.nii.gz")], d / "out.nii.gz", run)


def channel_grids(d: Path, run: Path) -> list[str]:
    a = _image(d, "a.nii.gz")
    b = _image(d, "b.nii.gz", spacing=(1.0, 1.0, 1.0))
    return _predict([a, b], d / "out.nii.gz", run)


def dicom_missing_slice(d: Path, run: Path) -> list[str]:
    _dicom(d / "ct", "1.2.3.4.1", depth=5)
    (d / "ct" / "1_2.dcm").unlink()
    return _predict(d / "ct", d / "out.nii.gz", run)


def dicom_two_series(d: Path, run: Path) -> list[str]:
    _dicom(d / "ct", "1.2.3.4.1")
    _dicom(d / "ct", "1.2.3.4.2")
    return _predict(d / "ct", d / "out.nii.gz", run)


def output_is_input_symlink(d: Path, run: Path) -> list[str]:
    scan = _image(d)
    (d / "link.nii.gz").symlink_to(scan)
    return _predict(d / "link.nii.gz", scan, run)


def output_in_a_file(d: Path, run: Path) -> list[str]:
    (d / "afile").write_text("x", encoding="utf-8")
    return _predict(_image(d), d / "afile" / "out.nii.gz", run)


def output_unsupported(d: Path, run: Path) -> list[str]:
    return _predict(_image(d), d / "out.png", run)


# -- datasets given to check --------------------------------------------------------------


def _dataset(d: Path) -> Path:
    return write_phantom_dataset(d / "data", cases=2)


def check_missing_file(d: Path, run: Path) -> list[str]:
    manifest = _dataset(d)
    (manifest.parent / "case01_label.nii.gz").unlink()
    return ["check", str(manifest.parent)]


def check_fractional_label(d: Path, run: Path) -> list[str]:
    manifest = _dataset(d)
    _float_image(manifest.parent, "case01_label.nii.gz", lambda a: a.__setitem__(..., 0.5))
    return ["check", str(manifest)]


def check_label_grid(d: Path, run: Path) -> list[str]:
    manifest = _dataset(d)
    _, label = make_phantom(seed=1, spacing=(1.0, 1.0, 1.0))
    write_volume(label, manifest.parent / "case01_label.nii.gz")
    return ["check", str(manifest)]


def check_nan_image(d: Path, run: Path) -> list[str]:
    manifest = _dataset(d)
    image, _ = make_phantom(seed=1)
    array = image.array.astype(np.float32)
    array.flat[3] = np.nan
    write_volume(image.with_array(array), manifest.parent / "case01_0000.nii.gz")
    return ["check", str(manifest)]


def manifest_no_image_column(d: Path, run: Path) -> list[str]:
    (d / "m.csv").write_text("case_id,label\na,a.nii.gz\n", encoding="utf-8")
    return ["check", str(d / "m.csv")]


def manifest_duplicate_ids(d: Path, run: Path) -> list[str]:
    (d / "m.csv").write_text("case_id,image\na,x.nii.gz\na,y.nii.gz\n", encoding="utf-8")
    return ["check", str(d / "m.csv")]


def dataset_json_invalid(d: Path, run: Path) -> list[str]:
    (d / "ds").mkdir()
    (d / "ds" / "dataset.json").write_text('{"labels": ', encoding="utf-8")
    return ["check", str(d / "ds")]


def dataset_root_missing(d: Path, run: Path) -> list[str]:
    return ["check", str(d / "nowhere")]


# -- configs given to train ---------------------------------------------------------------


def _yaml(d: Path, edit: Callable[[dict[str, dict[str, object]]], None]) -> list[str]:
    manifest = _dataset(d)
    data = config_to_dict(_config(manifest, d / "run"))
    edit(data)
    (d / "c.yaml").write_text(yaml.safe_dump(data), encoding="utf-8")
    return ["train", str(d / "c.yaml"), "-q"]


def config_unknown_key(d: Path, run: Path) -> list[str]:
    return _yaml(d, lambda c: c["train"].update(epoch=3))


def config_batch_zero(d: Path, run: Path) -> list[str]:
    return _yaml(d, lambda c: c["train"].update(batch_size=0))


def config_wrong_type(d: Path, run: Path) -> list[str]:
    return _yaml(d, lambda c: c["train"].update(epochs="ten"))


def config_patch_divisor(d: Path, run: Path) -> list[str]:
    return _yaml(d, lambda c: c["train"].update(patch_size=[12, 16, 16]))


def config_regions_labels(d: Path, run: Path) -> list[str]:
    return _yaml(d, lambda c: c["data"].update(regions="brats"))


def config_zero_spacing(d: Path, run: Path) -> list[str]:
    return _yaml(d, lambda c: c["preprocess"].update(target_spacing=[1.0, 0.0, 1.0]))


def config_invalid_yaml(d: Path, run: Path) -> list[str]:
    (d / "c.yaml").write_text("train: {epochs: [1, 2\n", encoding="utf-8")
    return ["train", str(d / "c.yaml"), "-q"]


def config_missing(d: Path, run: Path) -> list[str]:
    return ["train", str(d / "nope.yaml"), "-q"]


# -- runs ---------------------------------------------------------------------------------


def run_missing(d: Path, run: Path) -> list[str]:
    (d / "empty_run").mkdir()
    return _predict(_image(d), d / "out.nii.gz", d / "empty_run")


def run_corrupt_checkpoint(d: Path, run: Path) -> list[str]:
    (d / "bad.pt").write_bytes(b"not a checkpoint")
    return _predict(_image(d), d / "out.nii.gz", d / "bad.pt")


def run_corrupt_onnx(d: Path, run: Path) -> list[str]:
    (d / "m.onnx").write_bytes(b"\x00\x01garbage")
    return _predict(_image(d), d / "out.nii.gz", d / "m.onnx")


def resume_edited_config(d: Path, run: Path) -> list[str]:
    import shutil

    copy = Path(shutil.copytree(run, d / "run"))
    data = yaml.safe_load((copy / "config.yaml").read_text(encoding="utf-8"))
    data["train"]["batch_size"] = 4
    (copy / "config.yaml").write_text(yaml.safe_dump(data), encoding="utf-8")
    return ["train", "--resume", str(copy), "-q"]


def resume_without_checkpoint(d: Path, run: Path) -> list[str]:
    (d / "run").mkdir()
    (d / "run" / "config.yaml").write_text("{}\n", encoding="utf-8")
    return ["train", "--resume", str(d / "run"), "-q"]


def export_over_checkpoint(d: Path, run: Path) -> list[str]:
    (d / "m.onnx").symlink_to(run / "checkpoint_best.pt")
    return ["export", str(run), "--format", "onnx", "-o", str(d / "m.onnx")]


# -- evaluation ---------------------------------------------------------------------------


def evaluate_missing_folder(d: Path, run: Path) -> list[str]:
    (d / "ref").mkdir()
    return ["evaluate", "--pred", str(d / "nope"), "--ref", str(d / "ref")]


def evaluate_grid_mismatch(d: Path, run: Path) -> list[str]:
    for sub, spacing in (("pred", (1.0, 1.0, 1.0)), ("ref", (0.9, 1.1, 2.0))):
        (d / sub).mkdir()
        _, label = make_phantom(spacing=spacing)
        write_volume(label, d / sub / "a.nii.gz")
    return ["evaluate", "--pred", str(d / "pred"), "--ref", str(d / "ref"), "-o", str(d / "m.csv")]


def evaluate_unknown_metric(d: Path, run: Path) -> list[str]:
    (d / "pred").mkdir()
    return ["evaluate", "--pred", str(d / "pred"), "--ref", str(d / "pred"), "--metrics", "x"]


CORPUS = [
    Bad("file", "missing file", missing_file, 2, "nope.nii.gz: file not found"),
    Bad("file", "unsupported suffix", unsupported_suffix, 2, "scan.png: unsupported file type"),
    Bad("file", "garbage bytes", garbage_bytes, 2, "scan.nii.gz: cannot read image"),
    Bad("file", "truncated .nii.gz", truncated_gzip, 2, "scan.nii.gz: truncated file"),
    Bad("file", "truncated .nii", truncated_nii, 2, "scan.nii: truncated file"),
    Bad("file", "NaN in .mha", nan_in_mha, 2, "scan.mha: image has 1 NaN and 0 Inf"),
    Bad("file", "Inf in .nii.gz", inf_in_nifti, 2, "scan.nii.gz: image has 0 NaN and 1 Inf"),
    Bad("file", "NaN in .nrrd", nan_in_nrrd, 2, "scan.nrrd: image has 1 NaN and 0 Inf"),
    Bad("file", "zero pixdim", zero_pixdim, 2, "scan.nii.gz: spacing (0.9, 0, 2)"),
    Bad("file", "header declares 1400^3", size_bomb, 2, "2744000000 voxels, above the limit"),
    Bad("file", "4-D image", four_d_image, 2, "s.nii: 4-D images are not supported"),
    Bad("file", "2-D image, 3-D model", two_d_image, 2, "2-D image given to a 3-D model"),
    Bad("file", "two channels, one expected", channel_count, 2, "2 channel(s), the model"),
    Bad("file", "channels on two grids", channel_grids, 2, "b.nii.gz: grid differs from"),
    Bad("file", "DICOM missing slice", dicom_missing_slice, 2, "slice spacing is uneven"),
    Bad("file", "DICOM two series", dicom_two_series, 2, "2 DICOM series in one folder"),
    Bad("file", "output is the input", output_is_input_symlink, 2, "would overwrite the input"),
    Bad("file", "output folder is a file", output_in_a_file, 2, "out.nii.gz: cannot write"),
    Bad("file", "output type unknown", output_unsupported, 2, "out.png: unsupported output"),
    Bad(
        "dataset",
        "missing label file",
        check_missing_file,
        1,
        "label.nii.gz: file not found",
        "out",
    ),
    Bad(
        "dataset", "fractional labels", check_fractional_label, 1, "non-integer label values", "out"
    ),
    Bad("dataset", "label on another grid", check_label_grid, 1, "grid differs from image", "out"),
    Bad("dataset", "NaN in an image", check_nan_image, 1, "image has 1 NaN and 0 Inf", "out"),
    Bad("dataset", "manifest without image column", manifest_no_image_column, 2, "no image column"),
    Bad("dataset", "duplicate case ids", manifest_duplicate_ids, 2, "appears more than once"),
    Bad("dataset", "invalid dataset.json", dataset_json_invalid, 2, "dataset.json: invalid JSON"),
    Bad("dataset", "root missing", dataset_root_missing, 2, "nowhere: dataset root not found"),
    Bad("config", "unknown key", config_unknown_key, 2, "c.yaml: train: unknown key(s) epoch"),
    Bad("config", "batch_size 0", config_batch_zero, 2, "train.batch_size: must be >= 1"),
    Bad("config", "wrong type", config_wrong_type, 2, "c.yaml: train.epochs"),
    Bad("config", "patch not divisible", config_patch_divisor, 2, "must be divisible by 16"),
    Bad("config", "regions need labels", config_regions_labels, 2, "regions: 'brats' uses"),
    Bad("config", "zero target spacing", config_zero_spacing, 2, "target_spacing: every value"),
    Bad("config", "invalid YAML", config_invalid_yaml, 2, "c.yaml: invalid YAML"),
    Bad("config", "config missing", config_missing, 2, "nope.yaml: config file not found"),
    Bad("run", "no checkpoint", run_missing, 2, "empty_run: no checkpoint_best.pt"),
    Bad("run", "corrupt checkpoint", run_corrupt_checkpoint, 2, "bad.pt: unreadable checkpoint"),
    Bad("run", "corrupt ONNX", run_corrupt_onnx, 2, "m.onnx: unreadable ONNX model"),
    Bad("run", "resume, edited config.yaml", resume_edited_config, 2, "train.batch_size (4 in"),
    Bad("run", "resume, no checkpoint", resume_without_checkpoint, 2, "checkpoint not found"),
    Bad("run", "export over its checkpoint", export_over_checkpoint, 2, "would overwrite"),
    Bad("evaluation", "missing folder", evaluate_missing_folder, 2, "nope: not a folder"),
    Bad("evaluation", "grids differ", evaluate_grid_mismatch, 2, "a.nii.gz: grid differs"),
    Bad("evaluation", "unknown metric", evaluate_unknown_metric, 2, "--metrics: unknown x"),
]


def _snapshot(*folders: Path) -> dict[str, bytes]:
    """Every file (hidden ones too) and folder under ``folders``; links by their target."""
    found: dict[str, bytes] = {}
    for folder in folders:
        for p in sorted(folder.rglob("*")):
            key = str(p)
            if p.is_symlink():
                found[key] = b"->" + str(p.readlink()).encode()
            elif p.is_file():
                found[key] = p.read_bytes()
            else:
                found[key] = b"<dir>"
    return found


def test_corpus_is_large_and_covers_every_family() -> None:
    assert len(CORPUS) >= 30
    assert {c.family for c in CORPUS} == {"file", "dataset", "config", "run", "evaluation"}
    assert len({c.name for c in CORPUS}) == len(CORPUS)


@pytest.mark.parametrize("case", CORPUS, ids=[f"{c.family}: {c.name}" for c in CORPUS])
def test_bad_input(
    case: Bad, run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = case.build(tmp_path, run)
    before = _snapshot(tmp_path, run.parent)
    capsys.readouterr()
    code = main(argv)
    captured = capsys.readouterr()
    assert code == case.code, (code, captured.err, captured.out)
    if case.stream == "err":
        lines = captured.err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("volseg: error: "), lines
        assert case.message in lines[0], lines[0]
    else:
        problems = [line for line in captured.out.splitlines() if case.message in line]
        assert len(problems) == 1, captured.out
    assert _snapshot(tmp_path, run.parent) == before
