"""``volseg compare``: paired statistics against scipy and a hand computation."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import wilcoxon

from volseg.cli import main
from volseg.metrics import summarize, write_metrics_csv
from volseg.report.compare import compare_folders, load_methods


def _eval_dir(root: Path, name: str, scores: dict[str, dict[str, float]]) -> Path:
    """A folder as ``volseg evaluate`` leaves it: per-case rows, then mean/std/median."""
    rows: list[dict[str, float | str]] = [{"case": c, **s} for c, s in scores.items()]
    folder = root / name
    write_metrics_csv(rows, summarize([{k: v for k, v in r.items() if k != "case"} for r in rows]),
                      folder / "metrics.csv")  # fmt: skip
    return folder


A_DICE = [0.80, 0.70, 0.60, 0.90, 0.50]
STEP = [0.01, 0.02, 0.03, 0.04, 0.05]  # B - A, all positive, distinct


def _two(tmp_path: Path) -> tuple[Path, Path]:
    a = {f"c{i}": {"dice_1": d, "hd95_1": 4.0 + i} for i, d in enumerate(A_DICE)}
    b = {f"c{i}": {"dice_1": d + s, "hd95_1": 4.0 + i - 1.0} for i, (d, s) in
         enumerate(zip(A_DICE, STEP, strict=True))}  # fmt: skip
    return _eval_dir(tmp_path, "a", a), _eval_dir(tmp_path, "b", b)


def test_paired_numbers_by_hand(tmp_path: Path) -> None:
    comparison = compare_folders(_two(tmp_path))
    assert comparison.cases == [f"c{i}" for i in range(5)]  # mean/std/median rows dropped
    base, other = comparison.rows("dice_1")
    assert base["mean"] == pytest.approx(np.mean(A_DICE))
    assert other["diff"] == pytest.approx(0.03)  # (0.01 + ... + 0.05) / 5
    # all five differences positive with distinct ranks: W- = 0, and the exact two-sided
    # p-value is 2 * P(W+ = 15) = 2 / 2^5
    assert other["p_wilcoxon"] == pytest.approx(2 / 32)
    assert (other["wins"], other["losses"], other["ties"]) == (5, 0, 0)
    assert 0.01 <= other["ci_low"] <= 0.03 <= other["ci_high"] <= 0.05  # within the data range
    hd = comparison.rows("hd95_1")[1]
    assert hd["diff"] == pytest.approx(-1.0)
    assert (hd["wins"], hd["losses"]) == (5, 0)  # lower distance wins
    assert hd["p_wilcoxon"] == pytest.approx(wilcoxon([-1.0] * 5).pvalue)  # tied ranks


def test_p_value_is_scipys_wilcoxon(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    a_values, b_values = rng.uniform(0.5, 0.9, 12), rng.uniform(0.5, 0.9, 12)
    a = _eval_dir(tmp_path, "a", {f"c{i}": {"dice": v} for i, v in enumerate(a_values)})
    b = _eval_dir(tmp_path, "b", {f"c{i}": {"dice": v} for i, v in enumerate(b_values)})
    other = compare_folders([a, b]).rows("dice")[1]
    # the CSV keeps 6 significant digits: compare with scipy on what was written
    written = [
        [float(r["dice"]) for r in csv.DictReader((f / "metrics.csv").open(encoding="utf-8"))][:12]
        for f in (a, b)
    ]
    expected = wilcoxon(np.array(written[1]) - np.array(written[0])).pvalue
    assert other["p_wilcoxon"] == pytest.approx(expected, rel=1e-12)
    assert other["diff"] == pytest.approx(np.mean(written[1]) - np.mean(written[0]))


def test_different_case_sets_are_refused_naming_the_cases(tmp_path: Path) -> None:
    a = _eval_dir(tmp_path, "a", {"c0": {"dice": 0.5}, "c1": {"dice": 0.6}})
    b = _eval_dir(tmp_path, "b", {"c0": {"dice": 0.5}, "c2": {"dice": 0.6}})
    with pytest.raises(ValueError, match=r"lacks c1; has c2 that a lacks"):
        compare_folders([a, b])


def test_cli_prints_the_table_and_writes_a_local_page(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a, b = _two(tmp_path)
    out = tmp_path / "c.html"
    assert main(["compare", str(a), str(b), "--names", "base", "new", "-o", str(out)]) == 0
    text = capsys.readouterr().out
    assert (
        "dice_1 (5 cases; higher is better" in text and "hd95_1 (5 cases; lower is better" in text
    )
    line = next(ln for ln in text.splitlines() if ln.startswith("new "))
    assert "0.0300" in line and "0.0625" in line
    page = out.read_text(encoding="utf-8")
    assert not re.search(r"""(?:src|href)\s*=\s*["']?https?:""", page)
    assert page.count('alt="dice_1 paired"') == 1 and "Where the methods differ most" in page
    assert main(["compare", str(a), "--names", "x"]) == 2  # one method: nothing to compare
    assert "at least two methods" in capsys.readouterr().err


def test_experiment_results_give_one_method_per_variant(tmp_path: Path) -> None:
    path = tmp_path / "exp" / "results.csv"
    path.parent.mkdir()
    lines = ["experiment,variant,seed,case,dice"]
    lines += [f"e,{v},{s},k{c},{0.5 + 0.1 * c + (0.05 if v == 'new' else 0)}"
              for v in ("old", "new") for s in (0, 1) for c in range(3)]  # fmt: skip
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    methods = load_methods(path.parent)
    assert [m.name for m in methods] == ["exp:old", "exp:new"]
    assert sorted(methods[0].scores) == [f"seed{s}/k{c}" for s in (0, 1) for c in range(3)]
    other = compare_folders([path.parent]).rows("dice")[1]
    assert other["diff"] == pytest.approx(0.05) and other["wins"] == 6


def test_experiment_writes_its_report(tmp_path: Path) -> None:
    from volseg.experiments.runner import _write_report

    out = tmp_path / "exp"
    out.mkdir()
    lines = ["experiment,variant,seed,fold,case,dice,dice_1"]
    lines += [f"e,{v},{s},0,k{c},{0.6 + 0.05 * c},{0.6 + 0.05 * c + (0.1 if v == 'b' else 0)}"
              for v in ("a", "b") for s in (0, 1) for c in range(3)]  # fmt: skip
    (out / "results.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    page = _write_report(out).read_text(encoding="utf-8")
    assert _write_report(out) == out / "report.html"
    assert "volseg compare: exp:a vs exp:b" in page
    assert 'alt="dice paired"' in page and 'alt="dice_1 paired"' in page
    assert "seed0/fold0/k1" in page  # a case is a (seed, fold, case) triple


def test_page_opens_the_most_different_cases_in_the_viewer(
    case_folders: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    import json

    from volseg.evaluation import evaluate_folders
    from volseg.report.compare_page import write_compare

    images, refs, preds = case_folders
    folders = []
    for name, shift in (("a", 0), ("b", 1)):
        folder = tmp_path / name
        folder.mkdir()
        for path in sorted(preds.glob("*.nii.gz")):
            (folder / path.name).write_bytes(path.read_bytes())
        if shift:  # method b: case2 replaced by its reference (perfect)
            (folder / "case2.nii.gz").write_bytes((refs / "case2.nii.gz").read_bytes())
        evaluate_folders(folder, refs)
        folders.append(folder)
    comparison = compare_folders(folders)
    assert comparison.most_different("dice_1")[0][0] == "case2"  # the only case that differs
    page = write_compare(comparison, tmp_path / "c.html", images=images).read_text(encoding="utf-8")
    match = re.search(r'<script type="application/json" id="volseg-data">(.*?)</script>', page)
    assert match
    data = json.loads(match.group(1))
    assert data["order"][0] == "case2" and data["labels"] == {"prediction": "a", "reference": "b"}
    assert all(data["cases"]["case2"][role] for role in ("image", "prediction", "reference"))
