"""Claims tested on results: pairing per case / run / seed, the verdict rule, the docs block."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy.stats import wilcoxon

from volseg.cli import main
from volseg.experiments import run_experiment
from volseg.experiments.base import EXPERIMENTS, Claim
from volseg.experiments.claims import evaluate_claim, verdict
from volseg.experiments.docs import BEGIN, END, render_results, write_docs
from volseg.experiments.stats import PairedStats

DOCS = Path(__file__).resolve().parents[1] / "docs"


def _rows(method: list[float], baseline: list[float]) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    for variant, values in (("a", method), ("b", baseline)):
        rows += [
            {"variant": variant, "seed": i % 2, "case": f"c{i}", "dice": v, "hd95": 10 * v}
            for i, v in enumerate(values)
        ]
    return rows


def test_case_claim_pairs_by_seed_and_case_and_follows_the_rule() -> None:
    method = [0.9, 0.8, 0.85, 0.95, 0.7, 0.88, 0.91, 0.86]
    baseline = [0.7, 0.6, 0.80, 0.90, 0.5, 0.80, 0.85, 0.70]
    rows = _rows(method, baseline)
    result = evaluate_claim(Claim("a beats b", "a", "b"), rows[::-1])  # order does not matter
    diff = np.subtract(method, baseline)
    assert result.stats.n == 8 and result.stats.mean == pytest.approx(diff.mean())
    assert result.stats.p == pytest.approx(wilcoxon(diff).pvalue)  # 0.0078 < 0.05
    assert result.verdict == "supported"
    assert result.method_mean == pytest.approx(np.mean(method))
    # the same data read as "lower is better" (e.g. HD95) contradicts the claim
    lower = evaluate_claim(Claim("a lower", "a", "b", "hd95", higher_is_better=False), rows)
    assert lower.verdict == "contradicted"
    assert lower.stats.mean == pytest.approx(10 * diff.mean())


def test_verdict_needs_both_the_interval_and_the_p_value() -> None:
    assert verdict(PairedStats(12, 0.1, 0.05, 0.15, 0.001), True) == "supported"
    assert verdict(PairedStats(12, 0.1, 0.05, 0.15, 0.001), False) == "contradicted"
    assert verdict(PairedStats(12, 0.1, -0.01, 0.2, 0.01), True) == "not shown"  # 0 inside
    assert verdict(PairedStats(3, 0.1, 0.05, 0.15, 0.25), True) == "not shown"  # p too big
    assert verdict(PairedStats(1, 0.1, 0.1, 0.1, None, "one pair"), True) == "not shown"


def test_run_measures_pair_runs_gap_mean_last_and_fold_std() -> None:
    curves = []
    # two runs per variant (seeds 0, 1), two epochs each
    values = {"a": [[0.5, 0.7], [0.4, 0.6]], "b": [[0.3, 0.5], [0.2, 0.4]]}
    for variant, runs in values.items():
        for seed, run in enumerate(runs):
            for epoch, v in enumerate(run, start=1):
                train = v + (0.1 if variant == "a" else 0.3)
                curves.append(
                    {
                        "variant": variant,
                        "seed": seed,
                        "epoch": epoch,
                        "val_dice": v,
                        "train_dice": train,
                    }
                )
    mean = evaluate_claim(Claim("faster", "a", "b", "mean:val_dice"), [], curves)
    assert mean.method_mean == pytest.approx(np.mean([0.6, 0.5]))
    assert mean.stats.n == 2 and mean.stats.mean == pytest.approx(0.2)
    last = evaluate_claim(Claim("better", "a", "b", "last:val_dice"), [], curves)
    assert last.method_mean == pytest.approx(0.65) and last.baseline_mean == pytest.approx(0.45)
    gap = evaluate_claim(Claim("gap", "a", "b", "gap", higher_is_better=False), [], curves)
    assert gap.method_mean == pytest.approx(0.1) and gap.baseline_mean == pytest.approx(0.3)
    assert gap.verdict == "not shown"  # two runs can never reach p < 0.05

    rows = [
        {"variant": v, "seed": s, "fold": f, "case": f"c{f}{i}", "dice": d}
        for v, by_fold in (("a", (0.8, 0.8)), ("b", (0.6, 1.0)))
        for s in (0, 1)
        for f, d in enumerate(by_fold)
        for i in range(2)
    ]
    stable = evaluate_claim(Claim("stable", "a", "b", "fold_std", higher_is_better=False), rows)
    assert stable.method_mean == pytest.approx(0.0) and stable.baseline_mean == pytest.approx(0.2)


def test_unknown_measure_is_an_error() -> None:
    with pytest.raises(ValueError, match="unknown measure 'median:val_dice'"):
        evaluate_claim(
            Claim("x", "a", "b", "median:val_dice"), [], [{"variant": "a", "seed": 0, "epoch": 1}]
        )


def test_doc_block_is_written_from_the_copies_and_keeps_the_hand_text(tmp_path: Path) -> None:
    out = tmp_path / "drozdzal"
    run_experiment("drozdzal-skips", out, experiment=EXPERIMENTS.create("drozdzal-skips"))
    doc = tmp_path / "docs" / "results.md"
    doc.parent.mkdir()
    doc.write_text(
        f"# Results\n\nhand-written before\n\n{BEGIN}\nold\n{END}\n\nhand after\n", encoding="utf-8"
    )
    assert main(["experiment", "--doc", str(doc), "--results", str(out)]) == 0
    text = doc.read_text(encoding="utf-8")
    assert text.startswith("# Results\n\nhand-written before\n\n") and text.endswith("hand after\n")
    assert "old" not in text.split(BEGIN)[1]
    copies = tmp_path / "docs" / "results" / "drozdzal-skips"
    assert {p.name for p in copies.iterdir()} >= {"results.csv", "curves.csv", "experiment.json"}
    assert "long and short skips together beat short skips only" in text
    assert "](results/drozdzal-skips/dice_distribution.png)" in text
    # re-rendering from the copies alone gives the same block
    block = BEGIN + text.split(BEGIN)[1].split(END)[0] + END
    assert render_results(tmp_path / "docs" / "results", "results") == block
    assert write_docs(doc) == doc and doc.read_text(encoding="utf-8") == text


def test_doc_without_results_is_a_one_line_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["experiment", "--doc", str(tmp_path / "x.md")]) == 2
    assert "no experiment results to write" in capsys.readouterr().err
    assert not (tmp_path / "x.md").exists()


def test_docs_experiments_md_holds_what_the_command_writes() -> None:
    """docs/experiments.md's results are `volseg experiment --doc` output from the copies."""
    text = (DOCS / "experiments.md").read_text(encoding="utf-8")
    assert BEGIN in text and END in text, "docs/experiments.md lacks the generated block"
    block = BEGIN + text.split(BEGIN)[1].split(END)[0] + END
    assert render_results(DOCS / "experiments", "experiments") == block, (
        "stale: run `volseg experiment --doc docs/experiments.md`"
    )
