"""``volseg plan``: the spacing rule, budgets, the nets' depth and width, the YAML, and the
search for every registered net on synthetic datasets (a stand-in trial runner here; real
trial steps in the ``slow`` tests and in ``tests/test_plan_trials.py``)."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml

from volseg.cli import main
from volseg.config import config_from_dict, load_config
from volseg.fingerprint import Fingerprint, fingerprint_dataset
from volseg.io import Volume, write_volume
from volseg.nn import create_model, list_models
from volseg.nn.network import check_network
from volseg.plan import SAFETY, Budget, Trial, TrialResult, nets, plan_recipe, target_spacing
from volseg.plan.budget import MIN_ITERATIONS, STEP_SHARE, training_length
from volseg.plan.recipe import recipe_yaml
from volseg.synth import write_synth

IDENTITY = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)

# the synthetic dataset each net is planned on (its paper's regime)
DATASETS: dict[str, tuple[str, dict[str, Any]]] = {
    "vnet": ("brain-structures", {"spacing": 3.0}),
    "resvolnet": ("brain-structures", {"spacing": 3.0}),
    "segresnet_vae": ("brats-like", {"spacing": 4.0}),
    "resunet": ("ctp-like", {}),
    "fcresnet": ("em-membranes", {"size": 64}),
}


@pytest.fixture(scope="module")
def fingerprints(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Fingerprint]:
    root = tmp_path_factory.mktemp("synth")
    out = {}
    for name, options in {n: o for n, o in DATASETS.values()}.items():
        folder = write_synth(name, root / name, cases=3, seed=0, test_cases=0, **options)
        out[name] = fingerprint_dataset(folder, workers=1, progress=False)
    return out


def _fake(per_voxel: float = 2000.0, static: int = 10_000_000, seconds: float = 2e-6):
    """A trial runner with known answers: peak = static + per_voxel x samples x voxels x
    (first-level channels / 8); time = seconds x the same product x channels / 8."""
    seen: list[Trial] = []

    def run(trial: Trial) -> TrialResult:
        seen.append(trial)
        width = (nets.first_channels(trial.net, trial.kwargs) or 8) / 8
        work = trial.batch * math.prod(trial.patch) * width
        return TrialResult(int(static + per_voxel * work), static, seconds * work * width, "fake")

    run.seen = seen  # type: ignore[attr-defined]
    return run


# -- spacing ------------------------------------------------------------------------------


def test_target_spacing_is_the_median_on_isotropic_data() -> None:
    choice = target_spacing(
        [(1.0, 1.0, 1.0), (1.2, 1.0, 0.9), (3.0, 1.0, 1.0)], [(90, 100, 100)] * 3
    )
    assert choice.spacing == (1.2, 1.0, 1.0)
    assert choice.thick_axis is None


def test_thick_slices_take_the_10th_percentile() -> None:
    # ACDC-like: 9 cases of 10 mm slices and one of 5 mm, 10 slices of 200 x 200
    spacings = [(10.0, 1.5, 1.5)] * 9 + [(5.0, 1.5, 1.5)]
    choice = target_spacing(spacings, [(10, 200, 200)] * 10)
    assert choice.thick_axis == 0
    assert choice.spacing[0] == pytest.approx(np.percentile([10.0] * 9 + [5.0], 10))  # 9.5
    assert choice.spacing[1:] == (1.5, 1.5)
    assert "10th percentile" in choice.reason
    # thick spacing but as many voxels along z as in-plane: not a stack of slices
    assert target_spacing(spacings, [(200, 200, 200)] * 10).thick_axis is None


def test_the_thick_axis_never_goes_finer_than_the_others() -> None:
    spacings = [(10.0, 3.1, 3.1)] * 8 + [(1.0, 3.1, 3.1)] * 2  # p10 is 1 mm
    choice = target_spacing(spacings, [(10, 200, 200)] * 10)
    assert choice.spacing[0] == pytest.approx(3.1)


# -- budgets ------------------------------------------------------------------------------


def test_budget_parse() -> None:
    assert Budget.parse("gpu:24GB").memory_bytes == 24 * 10**9
    assert Budget.parse("gpu:1.5GiB").memory_bytes == int(1.5 * 2**30)
    assert Budget.parse("gpu:300MB").memory_bytes == 300 * 10**6
    cpu = Budget.parse("cpu:2", minutes=30)
    assert (cpu.threads, cpu.minutes) == (2, 30.0)
    assert cpu.step_seconds() == pytest.approx(STEP_SHARE * 30 * 60 / MIN_ITERATIONS)
    for bad, minutes in [("cpu:2", None), ("gpu:lots", None), ("tpu:1", None), ("gpu:8GB", 5.0)]:
        with pytest.raises(ValueError, match="budget|minutes"):
            Budget.parse(bad, minutes)


def test_training_length() -> None:
    # 1 s per step, 8 min: 360 steps of 75 % of 480 s -> 40 epochs of 9
    assert training_length(1.0, 8, 300, 100) == (40, 9)
    assert training_length(0.01, 8, 10, 10) == (10, 10)  # the recipe fits: unchanged
    epochs, per_epoch = training_length(0.5, 30, 200, 20)
    assert epochs * per_epoch * 0.5 <= STEP_SHARE * 30 * 60


# -- nets ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(nets.KNOBS))
def test_depth_and_width_knobs_build_the_net_they_say(name: str) -> None:
    assert set(nets.KNOBS) == set(list_models())
    assert name in nets.PAPER_RECIPES
    paper = nets.downsamplings(name, {})
    assert paper is not None and paper >= 2
    kwargs = nets.with_width(name, nets.with_downsamplings(name, {}, paper - 1), 0.5)
    with torch.device("meta"):
        model = check_network(create_model(name, **kwargs))
        full = check_network(create_model(name))
    assert full.divisor == 2**paper
    assert model.divisor == 2 ** (paper - 1)
    assert nets.first_channels(name, kwargs) == round(nets.first_channels(name, {}) / 2)


def test_depth_for_keeps_four_voxels() -> None:
    assert nets.depth_for(64, 4) == 4  # 64 / 16 = 4
    assert nets.depth_for(32, 4) == 3
    assert nets.depth_for(20, 4) == 2
    assert nets.depth_for(4, 4) == 1  # at least one downsampling


# -- YAML ---------------------------------------------------------------------------------


def test_recipe_yaml_reads_back_with_its_comments() -> None:
    data = {
        "train": {"patch_size": [32, 64, 64], "optimizer": {"name": "adam", "lr": 0.001}},
        "augment": {"transforms": [{"name": "flip", "p": 0.5, "kwargs": {"axes": [0, 1]}}]},
        "infer": {"window": None},
    }
    text = recipe_yaml(data, {"train.patch_size": "largest that fits"}, ["top", "", "why"])
    assert yaml.safe_load(text) == data
    assert text.startswith("# top\n#\n# why\n")
    assert "patch_size: [32, 64, 64]  # largest that fits" in text
    assert "- {name: flip, p: 0.5, kwargs: {axes: [0, 1]}}" in text


# -- the search, every net ----------------------------------------------------------------


@pytest.mark.parametrize("net", sorted(DATASETS))
def test_plan_fits_a_memory_budget_for_every_net(
    net: str, fingerprints: dict[str, Fingerprint], tmp_path: Path
) -> None:
    fp = fingerprints[DATASETS[net][0]]
    budget = Budget.parse("gpu:200MB")
    runner = _fake()
    plan = plan_recipe(fp, net, budget, runner=runner, device="cpu")
    train = plan.recipe["train"]
    patch, batch = tuple(train["patch_size"]), train["batch_size"]
    # the chosen size was measured (the last trial) and fits SAFETY of the budget
    last = runner.seen[-1]
    assert (last.patch, last.batch) == (patch, batch)
    assert runner(last).peak_bytes <= SAFETY * budget.memory_bytes
    # the net built from the recipe accepts the patch
    kwargs = dict(plan.recipe["model"]["kwargs"])
    with torch.device("meta"):
        model = check_network(create_model(net, **kwargs))
    assert all(p % model.divisor == 0 for p in patch)
    assert len(patch) == model.spatial_dims
    # volseg train's reader accepts the file, and it says why
    path = tmp_path / "recipe.yaml"
    path.write_text(plan.yaml(), encoding="utf-8")
    config = load_config(path)
    assert config.train.patch_size == patch
    text = path.read_text(encoding="utf-8")
    assert "# changed for the data and the device:" in text
    assert f"fits 85% of 200 MB with batch {batch}" in text
    assert f"kept from the paper: the loss ({plan.recipe['loss']['name']})" in text
    # the paper's loss and optimiser are untouched
    paper = yaml.safe_load(Path(plan.header[1].split()[-1]).read_text(encoding="utf-8"))
    assert plan.recipe["loss"] == paper["loss"]
    assert plan.recipe["train"]["optimizer"] == paper["train"]["optimizer"]


def test_cpu_budget_gives_up_width_then_resolution(
    fingerprints: dict[str, Fingerprint], tmp_path: Path
) -> None:
    fp = fingerprints["brain-structures"]
    runner = _fake(seconds=2e-6)
    budget = Budget.parse("cpu:2", minutes=8)
    plan = plan_recipe(fp, "vnet", budget, runner=runner, device="cpu")
    train = plan.recipe["train"]
    [trial] = {  # the measured trial of the chosen patch and width
        (t.patch, t.batch, t.amp): t
        for t in runner.seen
        if list(t.patch) == train["patch_size"]
        and t.kwargs.get("base_channels", 16) == plan.recipe["model"]["kwargs"]["base_channels"]
    }.values()
    chosen = runner(trial)
    steps = train["epochs"] * train["iterations_per_epoch"]
    assert chosen.seconds <= budget.step_seconds()
    assert steps >= MIN_ITERATIONS
    assert steps * chosen.seconds <= STEP_SHARE * 8 * 60
    assert train["stopping"]["max_minutes"] == 8.0
    assert plan.recipe["model"]["kwargs"]["base_channels"] == 8  # paper 16, the floor
    header = "\n".join(plan.header)
    assert "given up to fit the budget (in this order):\n#" not in header
    assert "width x0.5" in header
    config = config_from_dict(plan.recipe)
    assert config.train.patch_size == tuple(train["patch_size"])


def test_strongly_anisotropic_data_plans_2d_slices(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    rows = ["case_id,image,label"]
    for i in range(3):
        image = rng.normal(100, 10, (6, 64, 64)).astype(np.float32)
        label = np.zeros((6, 64, 64), np.uint8)
        label[2:4, 20:40, 20:40] = 1
        spacing = (0.8, 0.8, 6.0 if i else 5.0)  # x, y, z
        for array, suffix in ((image, "img"), (label, "seg")):
            write_volume(
                Volume(array[None], spacing, (0.0, 0.0, 0.0), IDENTITY),
                tmp_path / f"c{i}_{suffix}.nii.gz",
            )
        rows.append(f"c{i},{tmp_path / f'c{i}_img.nii.gz'},{tmp_path / f'c{i}_seg.nii.gz'}")
    (tmp_path / "cases.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    fp = fingerprint_dataset(tmp_path / "cases.csv", workers=1, progress=False)
    plan = plan_recipe(fp, "vnet", Budget.parse("gpu:1GB"), runner=_fake(), device="cpu")
    assert plan.recipe["model"]["kwargs"]["spatial_dims"] == 2
    assert len(plan.recipe["train"]["patch_size"]) == 2
    assert plan.recipe["preprocess"]["target_spacing"] == [0.8, 0.8]  # x, y; z kept
    assert "thick slices" in plan.notes["model.kwargs.spatial_dims"]
    # forced 3-D: z takes the 10th percentile of 5, 6, 6 mm
    plan3 = plan_recipe(fp, "vnet", Budget.parse("gpu:1GB"), dims="3", runner=_fake())
    assert plan3.recipe["preprocess"]["target_spacing"][2] == pytest.approx(5.2)


def test_ct_is_clipped_to_foreground_percentiles(
    fingerprints: dict[str, Fingerprint],
) -> None:
    fp = fingerprints["brain-structures"]
    channel = dataclasses.replace(fp.summary.channels[0], modality="CT", modality_reason="test")
    ct = dataclasses.replace(fp, summary=dataclasses.replace(fp.summary, channels=(channel,)))
    plan = plan_recipe(ct, "vnet", Budget.parse("gpu:200MB"), runner=_fake(), device="cpu")
    pre = plan.recipe["preprocess"]
    low, high = channel.intensity.p0_5, channel.intensity.p99_5
    assert pre["clip_window"] == pytest.approx([low, high], abs=1e-3)
    assert pre["normalize"] == "zscore"
    assert pre["n4"] is False  # the V-Net recipe's N4 is for MR bias fields
    mr = plan_recipe(fp, "vnet", Budget.parse("gpu:200MB"), runner=_fake(), device="cpu")
    assert "clip_window" not in mr.recipe["preprocess"]
    assert mr.recipe["preprocess"]["normalize"] == "zscore"  # the paper's


def test_cli_errors_are_one_line(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["plan", str(tmp_path), "--net", "vnet", "--budget", "cpu:2"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "volseg: error: plan: --budget cpu:2: give the training time with --minutes M > 0"
    ]


def test_the_demo_sizing_is_what_a_cpu_plan_gives(tmp_path: Path) -> None:
    """demo.yaml's sizing (V-Net at half width, about 3 mm, a patch over the whole head, about
    400 steps in 8 minutes) from V-Net's paper recipe, on a machine where the demo's own step
    (8 channels, 64^3, batch 2) takes 0.8 s: the time model below (a stand-in runner)."""
    assert main(["fingerprint", "--demo", "-o", str(tmp_path / "fp.json"), "-q"]) == 0
    fp = Fingerprint.read(tmp_path / "fp.json")
    runner = _fake(seconds=0.8 / (2 * 64**3))  # width 8: 0.8 s for 2 x 64^3 voxels
    plan = plan_recipe(fp, "vnet", Budget.parse("cpu:2", minutes=8), runner=runner)
    demo = yaml.safe_load(
        (Path(__file__).parents[1] / "src/volseg/demo_data/demo.yaml").read_text(encoding="utf-8")
    )
    r = plan.recipe
    assert r["model"]["kwargs"]["base_channels"] == demo["model"]["kwargs"]["base_channels"] == 8
    spacing = r["preprocess"]["target_spacing"]
    assert max(spacing) == min(spacing)  # isotropic, as the demo's 3 mm
    assert 3.0 <= spacing[0] <= 3.5
    assert r["train"]["batch_size"] == demo["train"]["batch_size"] == 2
    median_at_spacing = [
        m * s / spacing[0] for m, s in zip(fp.summary.shape.median, fp.summary.spacing.median)
    ]
    assert all(p >= m for p, m in zip(r["train"]["patch_size"], median_at_spacing))  # whole head
    steps = r["train"]["epochs"] * r["train"]["iterations_per_epoch"]
    assert 400 <= steps <= 600  # the demo: 40 x 10
    assert r["train"]["stopping"]["max_minutes"] == demo["train"]["stopping"]["max_minutes"]


def test_paper_recipes_ship_inside_the_package() -> None:
    """``volseg plan`` reads its starting recipes from the package (a wheel has no configs/)."""
    import volseg
    from volseg.plan import nets
    from volseg.plan.planner import paper_recipe

    package = Path(volseg.__file__).resolve().parent
    for net in nets.PAPER_RECIPES:
        path = paper_recipe(net).resolve()
        assert path.is_file() and package in path.parents, path


def test_recipe_root_resolves_as_load_config_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The recipe may be written anywhere (``-o recipes/plan.yaml``): its ``data.root`` must
    load back to the dataset from the working directory, where ``load_config`` resolves it."""
    from volseg.cli.plan import recipe_root
    from volseg.config import load_config

    (tmp_path / "data" / "Task01").mkdir(parents=True)
    (tmp_path / "recipes").mkdir()
    monkeypatch.chdir(tmp_path)
    root = recipe_root(tmp_path / "data" / "Task01")
    assert root == str(Path("data") / "Task01")
    recipe = tmp_path / "recipes" / "plan.yaml"
    recipe.write_text(f"data:\n  root: {root}\n", encoding="utf-8")
    assert Path(load_config(recipe).data.root) == (tmp_path / "data" / "Task01").resolve()
    assert recipe_root(tmp_path.parent) == str(tmp_path.parent.resolve())  # above: absolute


def test_plan_never_writes_over_an_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = write_synth("brain-structures", tmp_path / "ds", cases=2, test_cases=0, spacing=3.0)
    label = root / "labelsTr" / "brainstructures_000.nii.gz"
    before = label.read_bytes()
    (tmp_path / "link.yaml").symlink_to(label)
    for out in (label, tmp_path / "link.yaml", root / "dataset.json"):
        args = ["plan", str(root), "--net", "vnet", "--budget", "cpu:2", "--minutes", "1"]
        assert main([*args, "-o", str(out), "-q"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "output would overwrite the input file" in err[0]
    assert label.read_bytes() == before and (tmp_path / "link.yaml").is_symlink()
