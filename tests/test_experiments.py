"""``volseg experiment``: the registry, the smoke run of every experiment, resuming, statistics."""

from __future__ import annotations

import csv
import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import wilcoxon

from volseg.cli import main
from volseg.experiments import EXPERIMENTS, list_experiments, paired_stats, run_experiment

NAMES = [
    "vnet-dice-vs-logistic",
    "liu-hybrid-vs-ce",
    "drozdzal-skips",
    "adeniji-vae",
    "yu-heng-residual",
]


def test_list_prints_one_name_per_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["experiment", "--list"]) == 0
    assert sorted(capsys.readouterr().out.splitlines()) == sorted(NAMES)
    assert sorted(list_experiments()) == sorted(NAMES)


def test_unknown_experiment_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["experiment", "nope", "--out", "x"]) == 2
    assert "unknown 'nope'" in capsys.readouterr().err


@pytest.mark.parametrize("name", list_experiments())
def test_smoke_profile_writes_results_and_summary_and_resumes(name: str, tmp_path: Path) -> None:
    exp = EXPERIMENTS.create(name, profile="smoke")
    out = tmp_path / "exp"
    assert main(["experiment", name, "--profile", "smoke", "--out", str(out)]) == 0

    rows = list(csv.DictReader((out / "results.csv").open(encoding="utf-8")))
    cases = exp.synth["cases"] if exp.folds else exp.synth["test_cases"]
    assert len(rows) == len(exp.variants) * exp.seeds * cases
    assert {r["variant"] for r in rows} == {v.name for v in exp.variants}
    assert {r["seed"] for r in rows} == {str(s) for s in range(exp.seeds)}
    assert all(0.0 <= float(r["dice"]) <= 1.0 for r in rows)
    assert ("fold" in rows[0]) == bool(exp.folds)
    assert ("hd95" in rows[0]) == exp.hd95

    summary = (out / "summary.md").read_text(encoding="utf-8")
    for variant in exp.variants:
        assert f"| {variant.name} | " in summary and " +/- " in summary
    for claim in exp.claims:
        line = next(x for x in summary.splitlines() if x.startswith(f"- {claim.text} ("))
        assert "95% interval" in line and "Wilcoxon signed-rank" in line
        assert any(f"**{v}**" in line for v in ("supported", "contradicted", "not shown"))
    curves = list(csv.DictReader((out / "curves.csv").open(encoding="utf-8")))
    runs = len(exp.variants) * exp.seeds * max(exp.folds, 1)
    assert len(curves) == runs * exp.base.train.epochs
    meta = json.loads((out / "experiment.json").read_text(encoding="utf-8"))
    assert meta["experiment"] == name and meta["runs"] == runs and meta["profile"] == "smoke"
    assert "paper:" in summary
    assert (out / "dice_distribution.png").stat().st_size > 0

    checkpoints = sorted(out.glob("runs/**/checkpoint_last.pt"))
    assert len(checkpoints) == len(exp.variants) * exp.seeds * max(exp.folds, 1)
    mtimes = [p.stat().st_mtime_ns for p in checkpoints]
    before = (out / "results.csv").read_text(encoding="utf-8")
    assert main(["experiment", name, "--profile", "smoke", "--out", str(out)]) == 0
    assert [p.stat().st_mtime_ns for p in checkpoints] == mtimes  # finished runs skipped
    assert (out / "results.csv").read_text(encoding="utf-8") == before


def test_paired_stats_known_example() -> None:
    method = np.array([0.80, 0.75, 0.90, 0.70, 0.85, 0.60, 0.95, 0.72])
    baseline = np.array([0.70, 0.72, 0.81, 0.71, 0.74, 0.58, 0.80, 0.69])
    diff = method - baseline
    s = paired_stats(method, baseline, resamples=2000, seed=0)
    assert s.n == 8 and s.mean == pytest.approx(diff.mean())
    assert s.low <= diff.mean() <= s.high and s.low < s.high
    assert s.p == pytest.approx(wilcoxon(diff).pvalue)
    assert paired_stats(method, baseline, seed=0) == s  # seeded: reproducible


def test_paired_stats_all_zero_differences_has_no_p() -> None:
    s = paired_stats([0.5, 0.6, 0.7], [0.5, 0.6, 0.7])
    assert s.p is None and "every difference is zero" in s.note
    assert s.mean == s.low == s.high == 0.0


def test_an_unfinished_run_is_resumed(tmp_path: Path) -> None:
    """A run short of its epochs (as after an interruption) continues from checkpoint_last.pt."""
    exp = EXPERIMENTS.create("drozdzal-skips", profile="smoke")
    out = tmp_path / "exp"
    run_experiment("drozdzal-skips", out, experiment=exp)
    log = out / "runs" / "both" / "seed_0" / "log.csv"
    assert len(log.read_text(encoding="utf-8").splitlines()) == 1 + exp.base.train.epochs
    longer = dataclasses.replace(
        exp,
        base=dataclasses.replace(
            exp.base, train=dataclasses.replace(exp.base.train, epochs=exp.base.train.epochs + 1)
        ),
    )
    run_experiment("drozdzal-skips", out, experiment=longer)
    lines = log.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 2 + exp.base.train.epochs  # one epoch more, the first ones kept
    assert [line.split(",")[0] for line in lines[1:]] == ["1", "2"]
