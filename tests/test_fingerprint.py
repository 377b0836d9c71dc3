"""``volseg fingerprint``: statistics against numpy on a hand-built dataset, 1 vs 2 workers,
the JSON round trip, the outlier and modality rules, and the command on real layouts."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from volseg.cli import main
from volseg.fingerprint import FORMAT, Fingerprint, fingerprint_dataset
from volseg.fingerprint.schema import ChannelStats, Intensity
from volseg.fingerprint.stats import SAMPLES_PER_CASE, guess_modality, orientation_code
from volseg.io import Volume, write_volume

IDENTITY = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)
# axes permuted with flips: x -> anterior (-y), y -> inferior (-z), z -> left (+x): "AIL"
PERMUTED = (0.0, 0.0, 1.0, -1.0, 0.0, 0.0, 0.0, -1.0, 0.0)


def _case(seed: int, shape: tuple[int, int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A HU-like int16 channel (air -1000), a float MR-like channel and a label map."""
    rng = np.random.default_rng(seed)
    ct = rng.integers(-1000, 400, shape).astype(np.int16)
    ct[0, 0, 0] = -1000
    mr = rng.uniform(0.0, 500.0, shape).astype(np.float32)
    label = np.zeros(shape, np.uint8)
    label[1:3, 1:3, 1:3] = 1
    return ct, mr, label


# case -> (spacing x, y, z), direction; labels drawn on top of _case's
CASES = {
    "a": ((0.8, 0.9, 2.5), IDENTITY),
    "b": ((0.8, 0.9, 5.0), IDENTITY),  # z spacing twice the others': a spacing outlier
    "c": ((0.8, 0.9, 2.5), PERMUTED),  # another orientation
}


@pytest.fixture
def dataset(tmp_path: Path) -> tuple[Path, dict[str, dict[str, np.ndarray]]]:
    """Three cases of two channels in a JSON manifest declaring labels 0-3 (3 never drawn)."""
    arrays: dict[str, dict[str, np.ndarray]] = {}
    entries = []
    for i, (name, (spacing, direction)) in enumerate(CASES.items()):
        ct, mr, label = _case(i, (4, 5, 6))
        if name == "a":  # label 2: two blobs touching nowhere -> 2 components
            label[0, 4, 0] = 2
            label[3, 4, 5] = 2
        if name == "c":  # label 2: two voxels touching at a corner only -> 1 (26-connected)
            label[3, 3, 4] = 2
            label[2, 2, 3] = 2
        arrays[name] = {"ct": ct, "mr": mr, "label": label}
        files = []
        for key, array in (("ct", ct), ("mr", mr), ("label", label)):
            path = tmp_path / f"{name}_{key}.nii.gz"
            write_volume(Volume(array[None], spacing, (0.0, 0.0, 0.0), direction), path)
            files.append(path.name)
        entries.append({"case_id": name, "images": files[:2], "label": files[2]})
    manifest = tmp_path / "cases.json"
    manifest.write_text(
        json.dumps({"cases": entries, "labels": [0, 1, 2, 3], "channel_names": ["a", "t2"]}),
        encoding="utf-8",
    )
    return manifest, arrays


def test_statistics_match_numpy(dataset: tuple[Path, dict[str, dict[str, np.ndarray]]]) -> None:
    manifest, arrays = dataset
    fp = fingerprint_dataset(manifest, workers=1, progress=False)
    assert fp.format == FORMAT == 1
    assert fp.dataset.channel_names == ("a", "t2")
    assert fp.dataset.declared_labels == (0, 1, 2, 3)
    assert [c.case_id for c in fp.cases] == ["a", "b", "c"]
    assert [c.orientation for c in fp.cases] == ["LPS", "LPS", "AIL"]
    for case in fp.cases:
        a = arrays[case.case_id]
        spacing_xyz = CASES[case.case_id][0]
        assert case.shape == (4, 5, 6)
        assert case.spacing == pytest.approx(spacing_xyz[::-1])
        assert case.anisotropy == pytest.approx(max(spacing_xyz) / min(spacing_xyz))
        fg = a["label"] > 0
        assert case.foreground_voxels == fg.sum()
        assert case.foreground_fraction == pytest.approx(fg.mean())
        for stats, key in zip(case.channels, ("ct", "mr"), strict=True):
            values = a[key][fg].astype(np.float64)
            assert stats.region == "foreground"
            assert (stats.min, stats.max) == (a[key].min(), a[key].max())
            s = stats.intensity
            assert s.voxels == values.size
            assert (s.mean, s.std) == pytest.approx((values.mean(), values.std()))
            assert (s.p0_5, s.p50, s.p99_5) == pytest.approx(
                tuple(np.percentile(values, [0.5, 50, 99.5]))
            )
        ml = math.prod(spacing_xyz) / 1000.0
        assert [lab.label for lab in case.labels] == [1, 2, 3]
        for lab in case.labels:
            voxels = int((a["label"] == lab.label).sum())
            assert (lab.voxels, lab.size) == (voxels, pytest.approx(voxels * ml))
    assert [lab.components for lab in fp.cases[0].labels] == [1, 2, 0]
    assert [lab.components for lab in fp.cases[1].labels] == [1, 0, 0]
    assert [lab.components for lab in fp.cases[2].labels] == [1, 1, 0]

    # over the dataset: every foreground voxel pooled (all fewer than SAMPLES_PER_CASE)
    s = fp.summary
    assert all(a["label"].size < SAMPLES_PER_CASE for a in arrays.values())
    for channel, key in zip(s.channels, ("ct", "mr"), strict=True):
        pooled = np.concatenate(
            [a[key][a["label"] > 0].astype(np.float64) for a in arrays.values()]
        )
        i = channel.intensity
        assert i.voxels == pooled.size
        assert (i.mean, i.std) == pytest.approx((pooled.mean(), pooled.std()))
        assert (i.p0_5, i.p50, i.p99_5) == pytest.approx(
            tuple(np.percentile(pooled, [0.5, 50, 99.5]))
        )
    assert [c.modality for c in s.channels] == ["CT", "MR"]
    assert s.orientations == {"LPS": 2, "AIL": 1}
    assert s.spacing.median == pytest.approx((2.5, 0.9, 0.8))
    assert s.spacing.max == pytest.approx((5.0, 0.9, 0.8))
    assert [(lab.label, lab.present_in) for lab in s.labels] == [(1, 3), (2, 2), (3, 0)]
    assert s.labels[1].present_fraction == pytest.approx(2 / 3)
    assert s.labels[2].size is None
    fractions = [float((a["label"] > 0).mean()) for a in arrays.values()]
    assert s.foreground_fraction is not None
    assert s.foreground_fraction.median == pytest.approx(np.median(fractions))

    flagged = {(o.case_id, o.kind) for o in fp.outliers}
    assert flagged == {("c", "orientation"), ("b", "spacing"), (None, "label")}
    (label_finding,) = [o for o in fp.outliers if o.kind == "label"]
    assert "label 3" in label_finding.detail


def test_one_and_two_workers_give_equal_fingerprints(
    dataset: tuple[Path, dict[str, dict[str, np.ndarray]]],
) -> None:
    manifest, _ = dataset
    one = fingerprint_dataset(manifest, workers=1, progress=False)
    two = fingerprint_dataset(manifest, workers=2, progress=False)
    assert one == two
    assert one.to_json() == two.to_json()


def test_json_round_trip_and_format_check(
    dataset: tuple[Path, dict[str, dict[str, np.ndarray]]], tmp_path: Path
) -> None:
    fp = fingerprint_dataset(dataset[0], workers=1, progress=False)
    path = fp.write(tmp_path / "out" / "fp.json")
    assert Fingerprint.read(path) == fp
    data = json.loads(path.read_text(encoding="utf-8"))
    assert data["format"] == 1 and data["cases"][0]["spacing"] == [2.5, 0.9, 0.8]
    data["format"] = 2
    path.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(ValueError, match=r"fp\.json: format 2; this volseg reads format 1"):
        Fingerprint.read(path)


def test_unlabeled_cases_measure_the_whole_image(tmp_path: Path) -> None:
    image = np.arange(24, dtype=np.float32).reshape(2, 3, 4) - 5.5
    write_volume(Volume(image[None], (1.0, 1.0, 1.0), (0.0,) * 3, IDENTITY), tmp_path / "x.nii.gz")
    fp = fingerprint_dataset(tmp_path, workers=1, progress=False)
    (case,) = fp.cases
    assert fp.dataset.layout == "folder" and fp.dataset.labeled == 0
    assert case.labels == () and case.foreground_fraction is None
    assert case.channels[0].region == "image"
    assert case.channels[0].intensity.mean == pytest.approx(image.mean())
    assert fp.summary.channels[0].modality == "other"  # negative, not HU-like


def _channel(low: float, whole: bool = True) -> ChannelStats:
    return ChannelStats("x", low, 100.0, whole, "foreground", Intensity(0, *[None] * 5))


def test_modality_rule() -> None:
    assert guess_modality("x", [_channel(-1024), _channel(-1000)])[0] == "CT"
    assert guess_modality("x", [_channel(-1024), _channel(-1000, whole=False)])[0] == "other"
    assert guess_modality("x", [_channel(-1024), _channel(0)])[0] == "other"  # one lacks air
    assert guess_modality("CT", [_channel(0)])[0] == "CT"
    assert guess_modality("FLAIR", [_channel(0)])[0] == "MR"
    assert guess_modality("x", [_channel(0)]) == (
        "other",
        "not HU-like, no negative value (MR, microscopy, perfusion maps alike)",
    )


def test_orientation_codes() -> None:
    assert orientation_code(IDENTITY, 3) == "LPS"
    assert orientation_code((-1.0, 0.0, 0.0, 0.0, -1.0, 0.0, 0.0, 0.0, 1.0), 3) == "RAS"
    assert orientation_code(PERMUTED, 3) == "AIL"
    assert orientation_code((1.0, 0.0, 0.0, 1.0), 2) == "LP"


def test_command_writes_json_and_page(
    dataset: tuple[Path, dict[str, dict[str, np.ndarray]]],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out, page = tmp_path / "fp.json", tmp_path / "fp.html"
    argv = ["fingerprint", str(dataset[0]), "-o", str(out), "--html", str(page), "-q"]
    assert main([*argv, "--workers", "1"]) == 0
    assert Fingerprint.read(out).dataset.cases == 3
    html = page.read_text(encoding="utf-8")
    assert "Look at these first" in html and "orientation AIL" in html
    assert html.count("data:image/png;base64,") >= 3
    assert "outlier: c (orientation)" in capsys.readouterr().out
    assert main(["fingerprint", "-o", str(out)]) == 2
    assert "give DATASET or --demo" in capsys.readouterr().err
    assert main(["fingerprint", str(tmp_path / "missing"), "-q"]) == 2
    capsys.readouterr()
    (dataset[0].parent / "b_mr.nii.gz").unlink()  # a worker's error reaches the user, one line
    assert main(["fingerprint", str(dataset[0]), "-o", str(out), "-q"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "b_mr.nii.gz: file not found" in err


@pytest.mark.slow
def test_command_on_the_demo_data_and_a_2d_synth_dataset(tmp_path: Path) -> None:
    assert (
        main(["fingerprint", "--demo", "-q", "--workers", "1", "-o", str(tmp_path / "demo.json")])
        == 0
    )
    demo = Fingerprint.read(tmp_path / "demo.json")
    assert demo.dataset.cases == 4 and demo.summary.orientations == {"RAS": 3, "AIL": 1}
    assert ("colin27_reoriented", "orientation") in {(o.case_id, o.kind) for o in demo.outliers}

    from volseg.synth import write_synth

    root = write_synth("em-membranes", tmp_path / "em", 2, 0, 0)
    out = tmp_path / "em.json"
    assert (
        main(["fingerprint", str(root), "-q", "-o", str(out), "--html", str(tmp_path / "em.html")])
        == 0
    )
    em = Fingerprint.read(out)
    assert em.dataset.dims == 2 and em.dataset.axes == "yx" and em.dataset.size_unit == "mm2"
    assert len(em.cases[0].orientation) == 2


def test_a_real_ct_scan_is_recognised_as_ct(shared_data: Path, tmp_path: Path) -> None:
    """pyradiomics' lung1 (CT, 512 x 512 x 48, padded with -1024) by the data rule alone."""
    folder = shared_data / "pyradiomics"
    manifest = tmp_path / "lung.csv"
    manifest.write_text(
        f"case_id,image,label\nlung1,{folder / 'lung1_image.nrrd'},{folder / 'lung1_label.nrrd'}\n",
        encoding="utf-8",
    )
    fp = fingerprint_dataset(manifest, workers=1, progress=False)
    (channel,) = fp.summary.channels
    assert channel.name == "image"  # not named CT: the voxels decide
    assert channel.modality == "CT" and channel.min == -1024
    assert fp.dataset.root == str(manifest.resolve())


def test_fingerprint_never_writes_over_an_input(
    dataset: tuple[Path, dict[str, dict[str, np.ndarray]]],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    manifest = dataset[0]
    inputs = {p: p.read_bytes() for p in manifest.parent.iterdir() if p.is_file()}
    target = manifest.parent / "a_ct.nii.gz"  # a scan the manifest lists
    link = tmp_path / "out" / "link.html"
    link.parent.mkdir()
    link.symlink_to(target)
    for flag, out in (("-o", target), ("-o", manifest), ("--html", link)):
        argv = ["fingerprint", str(manifest), flag, str(out), "-q"]
        if flag == "--html":
            argv += ["-o", str(tmp_path / "out" / "fp.json")]
        assert main(argv) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "output would overwrite the input file" in err[0]
    assert {p: p.read_bytes() for p in inputs} == inputs
    assert link.is_symlink() and sorted(p.name for p in link.parent.iterdir()) == ["link.html"]
