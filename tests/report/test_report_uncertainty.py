"""``volseg predict --uncertainty``: entropy maps, per-case scores, and the report's flags."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import entropy as scipy_entropy

from volseg.cli import main
from volseg.inference import entropy_map, uncertainty_score
from volseg.io import Volume, read_volume
from volseg.report.page import write_report


def _volume(array: np.ndarray) -> Volume:
    return Volume(array, (1.0, 2.0, 3.0), (1.0, 2.0, 3.0), tuple(np.eye(3).ravel()))


def test_entropy_map_is_scipys_entropy_scaled() -> None:
    rng = np.random.default_rng(0)
    probs = rng.dirichlet([0.5, 1.0, 2.0], size=(4, 5, 6)).transpose(3, 0, 1, 2)  # (3, 4, 5, 6)
    h = entropy_map(_volume(probs.astype(np.float32)))
    expected = scipy_entropy(probs, axis=0) / math.log(3)
    np.testing.assert_allclose(h.array[0], expected, atol=1e-5)
    assert h.spacing == (1.0, 2.0, 3.0) and h.shape == (4, 5, 6)
    regions = rng.uniform(size=(2, 4, 5, 6))
    hs = entropy_map(_volume(regions.astype(np.float32)), "sigmoid")
    binary = [scipy_entropy(np.stack([r, 1 - r]), axis=0) / math.log(2) for r in regions]
    np.testing.assert_allclose(hs.array[0], np.mean(binary, axis=0), atol=1e-5)


def test_uncertainty_score_by_hand() -> None:
    entropy = _volume(np.array([[[[0.2, 0.4, 0.9]]]], dtype=np.float32))
    label = _volume(np.array([[[[1, 2, 0]]]], dtype=np.uint8))
    assert uncertainty_score(entropy, label) == pytest.approx(0.3)  # (0.2 + 0.4) / 2
    assert math.isnan(uncertainty_score(entropy, label.with_array(np.zeros_like(label.array))))


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An untrained but complete run (as tests/test_cli.py) and a phantom dataset."""
    import torch

    from volseg.config import Config, InferConfig, ModelConfig, TrainConfig, config_to_dict
    from volseg.data.synthetic import write_phantom_dataset
    from volseg.nn import create_model
    from volseg.training.checkpoint import Checkpoint, save_checkpoint

    root = tmp_path_factory.mktemp("unc")
    write_phantom_dataset(root / "data", cases=2)
    config = Config(
        model=ModelConfig("vnet", {"base_channels": 4, "kernel_size": 3}),
        train=TrainConfig(patch_size=(16, 16, 16)),
        infer=InferConfig(window=(16, 16, 16)),
    )
    torch.manual_seed(0)
    model = create_model("vnet", in_channels=1, out_channels=2, base_channels=4, kernel_size=3)
    checkpoint = Checkpoint(model.state_dict(), config_to_dict(config), [0, 1], 1)
    save_checkpoint(checkpoint, root / "run" / "checkpoint_best.pt")
    return root


def test_predict_writes_entropy_and_scores_and_the_report_shows_them(
    tiny_run: Path, tmp_path: Path
) -> None:
    images = sorted((tiny_run / "data").glob("*_0000.nii.gz"))
    listing = tmp_path / "cases.txt"
    listing.write_text("".join(f"{p}\n" for p in images), encoding="utf-8")
    out = tmp_path / "pred"
    args = ["predict", "-m", str(tiny_run / "run"), "-i", str(listing), "-o", str(out)]
    assert main([*args, "--uncertainty", "-q"]) == 0
    with (out / "uncertainty" / "scores.csv").open(encoding="utf-8") as handle:
        scores = {r["case"]: float(r["uncertainty"]) for r in csv.DictReader(handle)}
    names = sorted(p.name.removesuffix("_0000.nii.gz") for p in images)  # nnU-Net case names
    assert len(names) == 2 and sorted(scores) == names
    assert all(0.0 < v < 1.0 for v in scores.values()), scores  # an untrained net: unsure
    for name in names:
        entropy = read_volume(out / "uncertainty" / f"{name}.nii.gz")
        label = read_volume(out / f"{name}.nii.gz")
        assert entropy.same_grid(label) and 0.0 <= entropy.array.min() <= entropy.array.max() <= 1
        expected = uncertainty_score(entropy, label)
        assert scores[name] == pytest.approx(expected, rel=1e-5)
    report = write_report(out, tmp_path / "r.html", viewer=False)
    assert [r["uncertainty"] for r in sorted(report.rows, key=lambda r: str(r["case"]))] == [
        pytest.approx(scores[c], rel=1e-5) for c in sorted(scores)
    ]
    assert "<th>uncertainty</th>" in report.path.read_text(encoding="utf-8")


def test_report_flags_outlying_volume_and_uncertainty(
    case_folders: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    _, refs, preds = case_folders
    folder = tmp_path / "preds"
    folder.mkdir()
    for path in preds.iterdir():
        (folder / path.name).write_bytes(path.read_bytes())
    (folder / "uncertainty").mkdir()
    values = {"case0": 0.10, "case1": 0.11, "case2": 0.12, "case3": 0.13, "case4": 0.11}
    values["case1"] = 0.90  # far beyond the others' fences
    rows = "".join(f"{c},{v}\n" for c, v in values.items())
    (folder / "uncertainty" / "scores.csv").write_text(
        "case,uncertainty\n" + rows, encoding="utf-8"
    )
    report = write_report(folder, tmp_path / "r.html", ref=refs, viewer=False)
    flags = {r["case"]: r for r in report.rows}
    assert flags["case1"]["uncertainty"] == 0.90
    page = report.path.read_text(encoding="utf-8")
    box = page[page.index("Look at these first") :]
    box = box[: box.index("</div>")]
    assert "<b>case1</b>: uncertainty outlier" in box
    assert "case0" not in box
