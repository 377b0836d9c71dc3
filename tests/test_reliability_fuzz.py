"""Fuzzing the parsers a user feeds by hand (issue 18, item 7): manifests, dataset.json, configs.

Whatever the input, a parser either returns a value or raises its own ``ValueError`` subclass
(``LayoutError``, ``ConfigError``) with a one-line message naming the file; never a
``KeyError``/``TypeError``/``AttributeError`` from deep inside (which the CLI would show as a
traceback). Hypothesis shrinks any counter-example to a minimal file.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from volseg.config import Config, ConfigError, config_from_dict, config_to_dict, load_config
from volseg.data.layouts import Dataset, LayoutError, find_cases

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

scalars = st.none() | st.booleans() | st.integers(-5, 5) | st.floats() | st.text(max_size=8)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
words = st.sampled_from(
    ["case_id", "image", "image_t1", "channel_0", "label", "a.nii.gz", "", "x", "../y.mha", " "]
)


def _one_line(err: Exception, path: Path) -> None:
    message = str(err)
    assert message and "\n" not in message.strip(), message
    assert str(path.name) in message or str(path.parent) in message, message


def _find(path: Path, layout: str) -> Dataset | None:
    try:
        return find_cases(path, layout)
    except LayoutError as err:
        _one_line(err, path)
        return None


@SETTINGS
@given(st.lists(st.lists(words | st.text(max_size=6), max_size=5), max_size=6))
def test_manifest_csv_never_crashes(rows: list[list[str]]) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "m.csv"
        path.write_text("\n".join(",".join(row) for row in rows), encoding="utf-8")
        dataset = _find(path, "manifest")
        if dataset is not None:
            assert all(case.images for case in dataset.cases)


@SETTINGS
@given(json_values)
def test_manifest_json_never_crashes(data: Any) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "m.json"
        path.write_text(json.dumps(data), encoding="utf-8")
        _find(path, "manifest")


@SETTINGS
@given(
    st.fixed_dictionaries(
        {},
        optional={
            "labels": json_values,
            "channel_names": json_values,
            "modality": json_values,
            "training": json_values,
            "file_ending": json_values,
            "dataset": json_values,
            "numTraining": json_values,
        },
    )
)
def test_dataset_json_never_crashes(meta: dict[str, Any]) -> None:
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        (root / "dataset.json").write_text(json.dumps(meta), encoding="utf-8")
        (root / "imagesTr").mkdir()
        (root / "imagesTr" / "a_0000.nii.gz").write_bytes(b"")
        _find(root, "msd")


SECTIONS = ["data", "preprocess", "augment", "model", "loss", "train", "infer"]
KEYS = [
    "root",
    "labels",
    "regions",
    "val_fraction",
    "target_spacing",
    "normalize",
    "transforms",
    "name",
    "kwargs",
    "epochs",
    "batch_size",
    "patch_size",
    "optimizer",
    "lr",
    "runtime",
    "amp",
    "window",
    "overlap",
    "precision",
    "threshold",
]


@SETTINGS
@given(
    st.dictionaries(
        st.sampled_from([*SECTIONS, "run_dir", "extra"]),
        st.dictionaries(st.sampled_from(KEYS), json_values, max_size=4) | json_values,
        max_size=4,
    )
)
def test_config_from_dict_raises_only_config_errors(data: dict[str, Any]) -> None:
    try:
        config = config_from_dict(data, warn_moved=False)
    except ConfigError as err:
        assert str(err) and "\n" not in str(err).strip()
        return
    assert isinstance(config, Config)
    assert config_from_dict(config_to_dict(config), warn_moved=False) == config  # round trip


@SETTINGS
@given(st.text(max_size=80))
def test_config_yaml_text_never_crashes(text: str) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "c.yaml"
        path.write_text(text, encoding="utf-8")
        try:
            load_config(path)
        except ConfigError as err:
            assert str(path) in str(err)
