"""``volseg plan`` with real trial steps: the CPU peak measurement against the torch
profiler's record of every allocation, a small memory budget that the chosen patch's own trial
step keeps, every registered net planned on a synthetic dataset (slow), and one planned recipe
trained for a step (slow)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import yaml

from volseg.cli import main
from volseg.config import load_config
from volseg.fingerprint import Fingerprint, fingerprint_dataset
from volseg.nn import list_models
from volseg.plan import SAFETY, Budget, Trial, plan_recipe, run_trial
from volseg.plan.memory import profiler_peak
from volseg.plan.planner import paper_recipe
from volseg.synth import write_synth

SMALL = {"channels": [8, 16, 32, 64]}  # ResVolNet at a quarter of the paper's width


def test_cpu_peak_tracks_the_profiler() -> None:
    trial = Trial("resvolnet", {**SMALL, "in_channels": 1, "out_channels": 2}, (48, 48, 48), 2)
    measured = run_trial(trial)
    assert measured.method == "cpu peak RSS"
    assert 0 < measured.static_bytes < measured.peak_bytes
    reference = profiler_peak(trial)
    assert measured.peak_bytes == pytest.approx(reference, rel=0.05)  # measured: within 1 %


@pytest.fixture(scope="module")
def brain(tmp_path_factory: pytest.TempPathFactory) -> Fingerprint:
    root = write_synth("brain-structures", tmp_path_factory.mktemp("s") / "b", 3, 0, 0, spacing=3.0)
    return fingerprint_dataset(root, workers=1, progress=False)


@pytest.mark.slow  # about 30 s: four trial steps, each in a fresh process
def test_a_small_memory_budget_is_kept(brain: Fingerprint, tmp_path: Path) -> None:
    recipe = yaml.safe_load(paper_recipe("resvolnet").read_text(encoding="utf-8"))
    recipe["model"]["kwargs"] = dict(SMALL)
    (tmp_path / "small.yaml").write_text(yaml.safe_dump(recipe), encoding="utf-8")
    budget = Budget.parse("gpu:150MB")
    plan = plan_recipe(brain, "resvolnet", budget, recipe=tmp_path / "small.yaml", device="cpu")
    train = plan.recipe["train"]
    median = [round(v) for v in brain.summary.shape.median]
    assert train["patch_size"] != [((m + 7) // 8) * 8 for m in median]  # it had to shrink
    # an independent trial step at the chosen size stays within the budget
    kwargs = {**plan.recipe["model"]["kwargs"], "in_channels": 1, "out_channels": 5}
    trial = Trial(
        "resvolnet", kwargs, tuple(train["patch_size"]), train["batch_size"], loss="cross_entropy"
    )
    assert run_trial(trial).peak_bytes <= SAFETY * budget.memory_bytes
    assert "measured" in plan.notes["train.patch_size"]


DATASETS = {
    "vnet": ("brain-structures", {"spacing": 3.0}),
    "resvolnet": ("brain-structures", {"spacing": 3.0}),
    "segresnet_vae": ("brats-like", {"spacing": 4.0}),
    "resunet": ("ctp-like", {}),
    "fcresnet": ("em-membranes", {"size": 128}),
}


@pytest.mark.slow
@pytest.mark.parametrize("net", sorted(DATASETS))
def test_every_net_plans_with_real_trials(net: str, tmp_path: Path) -> None:
    assert set(DATASETS) == set(list_models())
    name, options = DATASETS[net]
    root = write_synth(name, tmp_path / name, 3, 0, 0, **options)
    out = tmp_path / "recipe.yaml"
    assert main(["plan", str(root), "--net", net, "--budget", "gpu:2GB", "-o", str(out), "-q"]) == 0
    config = load_config(out)
    assert config.model.name == net
    text = out.read_text(encoding="utf-8")
    assert "largest that fits 85% of 2.00 GB" in text
    assert "peak" in text and "cpu peak RSS" in text


@pytest.mark.slow
def test_a_planned_recipe_trains(brain: Fingerprint, tmp_path: Path) -> None:
    from volseg.training.trainer import train

    out = tmp_path / "recipe.yaml"
    (tmp_path / "fp.json").write_text(brain.to_json(), encoding="utf-8")
    args = ["plan", str(tmp_path / "fp.json"), "--net", "resvolnet", "--budget", "cpu:2"]
    assert main([*args, "--minutes", "2", "-o", str(out), "-q"]) == 0
    config = load_config(out)
    one = dataclasses.replace(config.train, epochs=1, iterations_per_epoch=1)
    result = train(
        dataclasses.replace(config, train=one, run_dir=str(tmp_path / "run")), progress=False
    )
    assert result.epochs == 1
    assert (tmp_path / "run" / "checkpoint_last.pt").is_file()
