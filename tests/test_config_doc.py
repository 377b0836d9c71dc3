"""``docs/config.md`` is generated from the config dataclasses and kept in step with them."""

from __future__ import annotations

import dataclasses
import typing
from pathlib import Path

import pytest

from volseg.cli import main
from volseg.config import Config, _attribute_docs, _section_class, render_config_reference

DOC = Path(__file__).parents[1] / "docs" / "config.md"


def _leaf_keys(cls: type, prefix: str = "") -> list[str]:
    keys = []
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        key = f"{prefix}.{f.name}" if prefix else f.name
        hint = typing.get_type_hints(cls)[f.name]
        section = _section_class(hint)
        entry = typing.get_args(hint)[0] if typing.get_origin(hint) is tuple else None
        if section is not None:
            keys += _leaf_keys(section, key)
        elif dataclasses.is_dataclass(entry):
            keys += [key, *_leaf_keys(entry, f"{key}.N")]  # type: ignore[arg-type]
        else:
            keys.append(key)
    return keys


def test_committed_reference_is_up_to_date() -> None:
    assert DOC.read_text(encoding="utf-8") == render_config_reference(), (
        "docs/config.md is stale: run `volseg config doc -o docs/config.md`"
    )


def test_every_key_has_a_row_with_type_default_and_meaning() -> None:
    rows = {}
    for line in render_config_reference().splitlines():
        if line.startswith("| `"):
            cells = [c.strip() for c in line.strip("|").split(" | ")]
            rows[cells[0].strip("`")] = cells
    keys = _leaf_keys(Config)
    assert len(keys) > 70
    for key in keys:
        _, type_text, default, meaning = rows[key]
        assert type_text and default and len(meaning) > 10, key
    assert rows["train.optimizer.lr"][1:3] == ["number", "`0.001`"]
    assert rows["infer.window"][1:3] == ["list of (integer) or null", "`null`"]
    assert rows["train.runtime.amp"][1:3] == ["`none`, `bf16`, `fp16`", "`none`"]
    assert rows["augment.transforms.N.name"][2] == "(required)"


def test_attributes_sections_are_parsed() -> None:
    class Example:
        """Summary.

        Attributes:
            a: first line
                continued.
            b, c: shared ``text`` with a :func:`~volseg.x.y` role.

        Note:
            not: an attribute.
        """

    docs = _attribute_docs(Example)
    assert docs == {
        "a": "first line continued.",
        "b": "shared ``text`` with a :func:`~volseg.x.y` role.",
        "c": "shared ``text`` with a :func:`~volseg.x.y` role.",
    }


def test_an_undocumented_field_fails_the_render(monkeypatch: pytest.MonkeyPatch) -> None:
    from volseg import config

    monkeypatch.setattr(config.StoppingConfig, "__doc__", "When training stops.")
    with pytest.raises(ValueError, match="StoppingConfig.patience: not in its docstring"):
        render_config_reference()


def test_config_doc_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config", "doc"]) == 0
    assert capsys.readouterr().out == render_config_reference()
    assert main(["config", "doc", "-o", str(tmp_path / "config.md")]) == 0
    assert (tmp_path / "config.md").read_text(encoding="utf-8") == render_config_reference()
