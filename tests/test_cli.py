from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from volseg.cli import main
from volseg.data.synthetic import make_phantom, write_phantom_dataset
from volseg.io import read_volume, write_volume

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def test_python_m_volseg_help() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "volseg", "--help"], capture_output=True, text=True, check=True
    )
    for command in ("train", "predict", "evaluate", "check", "demo"):
        assert command in out.stdout


def test_predict_writes_the_source_geometry(run_dir: Path, tmp_path: Path) -> None:
    image, _ = make_phantom()
    scan = write_volume(image, tmp_path / "scan.nrrd")
    assert (
        main(
            ["predict", "-m", str(run_dir), "-i", str(scan), "-o", str(tmp_path / "m.nii.gz"), "-q"]
        )
        == 0
    )
    mask = read_volume(tmp_path / "m.nii.gz")
    assert mask.shape == image.shape and mask.same_grid(image)


def test_predict_unreadable_file_is_one_line_and_no_output(
    run_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.nii.gz"
    bad.write_bytes(b"\x00" * 10)
    out = tmp_path / "out.nii.gz"
    assert main(["predict", "-m", str(run_dir), "-i", str(bad), "-o", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "bad.nii.gz: cannot read image" in err[0]
    assert not out.exists() and list(tmp_path.glob(".*")) == []


def test_predict_wrong_channel_count(
    run_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    image, _ = make_phantom(channels=2)
    scan = write_volume(image, tmp_path / "two.mha")
    assert (
        main(["predict", "-m", str(run_dir), "-i", str(scan), "-o", str(tmp_path / "o.mha")]) == 2
    )
    assert "two.mha: 2 channel(s), the model expects 1" in capsys.readouterr().err


def test_batch_with_one_corrupt_file_predicts_the_rest(
    run_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    scans = tmp_path / "scans"
    for i in range(2):
        write_volume(make_phantom(seed=i)[0], scans / f"s{i}.nii.gz")
    (scans / "s9.nii.gz").write_bytes(b"corrupt")
    out = tmp_path / "preds"
    assert main(["predict", "-m", str(run_dir), "-i", str(scans), "-o", str(out), "-q"]) == 1
    assert sorted(p.name for p in out.iterdir()) == ["s0.nii.gz", "s1.nii.gz"]
    assert "s9.nii.gz" in capsys.readouterr().err


def test_check_reports_bad_file_and_exits_nonzero(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = write_phantom_dataset(tmp_path, cases=2)
    (tmp_path / "case01_label.nii.gz").unlink()
    assert main(["check", str(manifest)]) == 1
    assert "case01_label.nii.gz" in capsys.readouterr().out
    write_volume(make_phantom(seed=1)[1], tmp_path / "case01_label.nii.gz")
    assert main(["check", str(manifest)]) == 0


def test_train_config_error_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "c.yaml").write_text(
        yaml.safe_dump({"train": {"epochs": "many"}}), encoding="utf-8"
    )
    assert main(["train", str(tmp_path / "c.yaml")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "train.epochs: expected an integer" in err[0]


def schedule_lines(capsys: pytest.CaptureFixture[str], *argv: str) -> list[tuple[int, float, str]]:
    """Run ``volseg schedule`` and parse each stdout line as ``epoch lr [# note]``."""
    assert main(["schedule", *argv]) == 0
    rows = []
    for line in capsys.readouterr().out.splitlines():
        epoch, lr, *rest = line.split()
        rows.append((int(epoch), float(lr), " ".join(rest)))
    return rows


def test_schedule_shows_the_adeniji_warmup_then_poly(capsys: pytest.CaptureFixture[str]) -> None:
    rows = schedule_lines(capsys, str(CONFIGS / "segresnet_vae_brats.yaml"))
    assert [epoch for epoch, _, _ in rows] == list(range(300))
    # linear warm-up 1e-6 -> 1e-5 over the first 10 epochs
    warmup = [1e-6, 2e-6, 3e-6, 4e-6, 5e-6, 6e-6, 7e-6, 8e-6, 9e-6, 1e-5]
    assert [lr for _, lr, _ in rows[:10]] == pytest.approx(warmup, rel=1e-5)
    assert all("warm-up" in note for _, _, note in rows[:10]) and not rows[10][2]
    # then 1e-4 * (1 - e / 300) ** 0.9 at the global epoch: 9.69949e-5 at e = 10
    assert rows[10][1] == pytest.approx(9.699_49e-5, rel=1e-5)
    assert [lr for _, lr, _ in rows[10:]] == pytest.approx(
        [1e-4 * (1 - e / 300) ** 0.9 for e in range(10, 300)], rel=1e-5
    )


def test_schedule_marks_the_vnet_step(capsys: pytest.CaptureFixture[str]) -> None:
    # lr 1e-4 / 10 at iteration 25000; 100 iterations per epoch: epoch 250 starts there
    rows = schedule_lines(capsys, str(CONFIGS / "vnet_promise12.yaml"))
    assert len(rows) == 300
    assert {lr for _, lr, _ in rows[:250]} == {1e-4} and {lr for _, lr, _ in rows[250:]} == {1e-5}
    notes = {epoch: note for epoch, _, note in rows if note}
    assert notes == {250: "# iteration 25000: lr 1e-05"}


def test_schedule_names_a_step_inside_an_epoch(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    schedule = {"name": "step", "step_size": 250}
    train = {"epochs": 4, "iterations_per_epoch": 100, "schedule": schedule}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump({"train": train}), encoding="utf-8")
    rows = schedule_lines(capsys, str(tmp_path / "c.yaml"))
    assert [lr for _, lr, _ in rows] == pytest.approx([1e-3, 1e-3, 1e-3, 1e-4])
    assert rows[2][2] == "# iteration 250: lr 0.0001" and not rows[3][2]


def test_schedule_plot_writes_a_png(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "plots" / "lr.png"
    rows = schedule_lines(capsys, str(CONFIGS / "vnet_promise12.yaml"), "--plot", str(out))
    assert len(rows) == 300
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in out.parent.iterdir()] == ["lr.png"]  # no temporary file left


def test_schedule_bad_config_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"train": {"schedule": {"name": "cosine"}}}), encoding="utf-8")
    assert main(["schedule", str(bad)]) == 2
    captured = capsys.readouterr()
    err = captured.err.strip().splitlines()
    assert not captured.out and len(err) == 1
    assert str(bad) in err[0] and "train.schedule.name: expected one of" in err[0]
    assert main(["schedule", str(tmp_path / "none.yaml")]) == 2
    assert "none.yaml: config file not found" in capsys.readouterr().err


def test_evaluate_writes_csv(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _, label = make_phantom()
    write_volume(label, tmp_path / "pred" / "a.nii.gz")
    write_volume(label, tmp_path / "ref" / "a.nrrd")
    assert main(["evaluate", "--pred", str(tmp_path / "pred"), "--ref", str(tmp_path / "ref")]) == 0
    text = (tmp_path / "pred" / "metrics.csv").read_text(encoding="utf-8")
    assert "dice_1" in text and "hd95_1" in text
    assert "dice_1: 1.0000" in capsys.readouterr().out


def test_flat_public_api() -> None:
    import volseg

    for name in volseg.__all__:
        assert getattr(volseg, name) is not None
    assert "vnet" in volseg.list_models()
    assert volseg.Predictor.from_run.__name__ == "from_run"


def test_prediction_jobs_take_the_runs_channels(tmp_path: Path) -> None:
    """A run trained on a channel subset gets that subset of each case of a dataset folder."""
    import json

    from volseg.cli.predict import _prediction_jobs
    from volseg.data.synthetic import make_phantom

    root = tmp_path / "msd"
    (root / "imagesTr").mkdir(parents=True)
    (root / "labelsTr").mkdir()
    for i in range(2):
        image, label = make_phantom(channels=3, seed=i)
        for c in range(3):
            write_volume(
                image.with_array(image.array[c : c + 1]), root / f"imagesTr/c{i}_{c:04d}.nii.gz"
            )
        write_volume(label, root / f"labelsTr/c{i}.nii.gz")
    names = {
        "channel_names": {"0": "t1", "1": "t2", "2": "flair"},
        "labels": {"background": 0, "a": 1},
    }
    (root / "dataset.json").write_text(
        json.dumps({**names, "file_ending": ".nii.gz"}), encoding="utf-8"
    )
    jobs = _prediction_jobs([str(root)], str(tmp_path / "out"), ("flair", "t1"))
    assert [[p.name for p in images] for images, _ in jobs] == [
        ["c0_0002.nii.gz", "c0_0000.nii.gz"],
        ["c1_0002.nii.gz", "c1_0000.nii.gz"],
    ]
    assert len(_prediction_jobs([str(root)], str(tmp_path / "out"))[0][0]) == 3


def test_evaluate_region_choices_are_the_region_sets() -> None:
    from volseg.cli import build_parser
    from volseg.regions import region_sets

    parser = build_parser()
    evaluate = parser._subparsers._group_actions[0].choices["evaluate"]  # type: ignore[union-attr]
    regions = next(a for a in evaluate._actions if a.dest == "regions")
    assert sorted(regions.choices) == region_sets()


def test_warnings_print_as_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A volseg 0.1 key (``train.lr``) is upgraded with a warning: one ``volseg: warning:`` line."""
    config = tmp_path / "old.yaml"
    config.write_text("train:\n  lr: 0.01\n", encoding="utf-8")
    assert main(["schedule", str(config)]) == 0
    err = capsys.readouterr().err.splitlines()
    warned = [line for line in err if line.startswith("volseg: warning: ")]
    assert len(warned) == 1 and "train.lr -> train.optimizer.lr" in warned[0]
    assert not [line for line in err if "Warning" in line or "warnings.warn" in line]
