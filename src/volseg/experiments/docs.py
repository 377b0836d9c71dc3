"""Write measured experiment results into a Markdown document (``volseg experiment --doc``).

The results part of ``docs/experiments.md`` is not written by hand: this module copies each
experiment folder's small outputs (``results.csv``, ``curves.csv``, ``experiment.json``, the
PNGs) into ``<doc folder>/<doc name>/<experiment>/`` and renders, from those copies only, a
block between two marker lines: an overview of every claim and its verdict, then each
experiment's tables and claims (as in its ``summary.md``) and its figures. Text outside the
markers (the reading of the results, by a person) is kept. Because the block depends only on
the copies and the registered experiments, a test can re-render it and compare.
"""

from __future__ import annotations

import csv
import json
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from volseg._atomic import atomic_path
from volseg.experiments.base import EXPERIMENTS
from volseg.experiments.claims import evaluate_claim
from volseg.experiments.report import summary_markdown

__all__ = ["BEGIN", "END", "collect_results", "render_results", "write_docs"]

BEGIN = "<!-- begin: results written by `volseg experiment --doc`; do not edit by hand -->"
END = "<!-- end: results written by `volseg experiment --doc` -->"
_COPIED = ("results.csv", "curves.csv", "experiment.json")


def _value(text: str) -> Any:
    """A CSV cell as the runner wrote it: int, float (``nan``, ``inf`` included) or text."""
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def _read_csv(path: Path) -> list[dict[str, Any]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return [{k: _value(v) for k, v in row.items()} for row in csv.DictReader(handle)]


def collect_results(out_dirs: Sequence[str | Path], dest: str | Path) -> list[Path]:
    """Copy each experiment folder's results and PNGs into ``dest/<experiment name>/``."""
    copied = []
    for out in map(Path, out_dirs):
        missing = [n for n in _COPIED if not (out / n).is_file()]
        if missing:
            raise ValueError(f"{out}: not a finished experiment folder (no {', '.join(missing)})")
        name = json.loads((out / "experiment.json").read_text(encoding="utf-8"))["experiment"]
        target = Path(dest) / name
        if target.resolve() != out.resolve():
            target.mkdir(parents=True, exist_ok=True)
            for old in target.iterdir():
                if old.is_file():
                    old.unlink()
            for path in [*(out / n for n in _COPIED), *sorted(out.glob("*.png"))]:
                with atomic_path(target / path.name) as tmp:
                    shutil.copyfile(path, tmp)
        copied.append(target)
    return copied


def _shift_headings(markdown: str, levels: int) -> str:
    return "\n".join(
        "#" * levels + line if line.startswith("#") else line for line in markdown.splitlines()
    )


def render_results(results_root: str | Path, link_prefix: str) -> str:
    """The generated block (markers included) from ``results_root/<experiment>/`` folders.

    ``link_prefix``: the path of ``results_root`` relative to the document, for the figures.
    """
    root = Path(results_root)
    folders = {p.name: p for p in sorted(root.iterdir()) if (p / "experiment.json").is_file()}
    order = [n for n in EXPERIMENTS.list() if n in folders]
    overview = ["| experiment | claim | verdict | difference [95% interval] | pairs | p |"]
    overview.append("|---|---|---|---|---|---|")
    sections = []
    for name in order:
        folder = folders[name]
        meta = json.loads((folder / "experiment.json").read_text(encoding="utf-8"))
        exp = EXPERIMENTS.create(name, profile=meta["profile"])
        rows = _read_csv(folder / "results.csv")
        curves = _read_csv(folder / "curves.csv")
        for claim in exp.claims:
            r = evaluate_claim(claim, rows, curves)
            p = f"{r.stats.p:.2g}" if r.stats.p is not None else "n/a"
            overview.append(
                f"| `{name}` | {claim.text} | **{r.verdict}** | {r.stats.mean:+.3f} "
                f"[{r.stats.low:+.3f}, {r.stats.high:+.3f}] | {r.stats.n} | {p} |"
            )
        summary = summary_markdown(exp, rows, meta["profile"], int(meta["seeds"]), curves)
        figures = ", ".join(
            f"[{png.name}]({link_prefix}/{name}/{png.name})" for png in sorted(folder.glob("*.png"))
        )
        sections += [
            _shift_headings(summary, 2).rstrip(),
            "",
            f"{meta['runs']} runs, {meta['training_minutes']} min of training in all "
            f"(the runs' own clocks). Figures: {figures}. Data: "
            f"[results.csv]({link_prefix}/{name}/results.csv), "
            f"[curves.csv]({link_prefix}/{name}/curves.csv).",
            "",
        ]
    return "\n".join([BEGIN, "", *overview, "", *sections, END])


def write_docs(doc: str | Path, out_dirs: Sequence[str | Path] = ()) -> Path:
    """Copy ``out_dirs``' results beside ``doc`` and (re)write its generated block.

    Without ``out_dirs`` the block is re-rendered from the copies already there. Text outside
    the markers is kept; a document without them gets the block appended.
    """
    doc = Path(doc)
    results_root = doc.with_suffix("")
    collect_results(out_dirs, results_root)
    if not results_root.is_dir():
        raise ValueError(f"{results_root}: no experiment results to write (give --results DIR)")
    block = render_results(results_root, results_root.name)
    text = doc.read_text(encoding="utf-8") if doc.is_file() else ""
    if BEGIN in text and END in text:
        head, _, rest = text.partition(BEGIN)
        _, _, tail = rest.partition(END)
        text = head + block + tail
    else:
        text = text.rstrip() + ("\n\n" if text else "") + block + "\n"
    with atomic_path(doc) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return doc
