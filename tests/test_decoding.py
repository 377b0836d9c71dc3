"""Outputs to label maps: the one decoding validation and the Predictor share."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

import volseg.decoding as decoding
from volseg.decoding import (
    decode_labels,
    keep_largest_component,
    probabilities,
    resolve_activation,
)
from volseg.regions import BRATS_REGIONS


def test_decode_softmax_argmax_and_thresholds() -> None:
    probs = np.array([[0.5, 0.2, 0.3], [0.3, 0.7, 0.3], [0.2, 0.1, 0.4]])[..., None]  # (K=3, 3, 1)
    np.testing.assert_array_equal(decode_labels(probs, [0, 2, 5], "softmax")[:, 0], [0, 2, 5])
    # thresholds per foreground class: label 2 needs > 0.25, label 5 needs > 0.35
    got = decode_labels(probs, [0, 2, 5], "softmax", threshold=(0.25, 0.35))[:, 0]
    np.testing.assert_array_equal(got, [2, 2, 5])
    got = decode_labels(probs, [0, 2, 5], "sigmoid")[:, 0]  # 0.5 for every class
    np.testing.assert_array_equal(got, [0, 2, 0])


def test_decode_brats_regions() -> None:

    # voxels: nothing, WT only, WT+TC, WT+TC+ET
    probs = np.array([[0.1, 0.9, 0.9, 0.9], [0.1, 0.2, 0.8, 0.8], [0.0, 0.1, 0.3, 0.7]])
    got = decode_labels(probs, [0, 1, 2, 4], "sigmoid", regions=BRATS_REGIONS)
    np.testing.assert_array_equal(got, [0, 2, 1, 4])
    got = decode_labels(probs, [0, 1, 2, 4], "sigmoid", (0.5, 0.5, 0.25), BRATS_REGIONS)
    np.testing.assert_array_equal(got, [0, 2, 4, 4])


@pytest.mark.parametrize(
    ("activation", "threshold", "regions"),
    [("softmax", None, False), ("softmax", (0.3, 0.2), False), ("sigmoid", None, True)],
)
def test_decode_in_slabs_equals_decoding_at_once(
    monkeypatch: pytest.MonkeyPatch, activation: str, threshold: Any, regions: bool
) -> None:

    probs = np.random.default_rng(0).random((3, 7, 5, 6))
    labels = [0, 1, 2, 4] if regions else [0, 3, 300]  # 300 never wins below: still uint16
    if not regions:
        probs[2] = 0.0
    region_set = BRATS_REGIONS if regions else None
    whole = decoding.decode_labels(probs, labels, activation, threshold, region_set)
    monkeypatch.setattr(decoding, "_DECODE_VOXELS", 40)  # slabs of one or two rows
    slabs = decoding.decode_labels(probs, labels, activation, threshold, region_set)
    np.testing.assert_array_equal(slabs, whole)
    assert slabs.dtype == (np.uint8 if regions else np.uint16)
    assert 300 not in slabs


def test_keep_largest_component_per_label() -> None:
    label = np.zeros((1, 6, 9), np.uint8)
    label[0, 0:3, 0:3] = 1  # 9 voxels
    label[0, 5, 5] = 1  # 1 voxel
    label[0, 4, 8] = 2  # diagonal neighbours are connected (full connectivity)
    label[0, 5, 7] = 2
    out = keep_largest_component(label, [1, 2])
    assert out[0, 5, 5] == 0 and (out == 1).sum() == 9 and (out == 2).sum() == 2


def test_activation_and_probabilities() -> None:
    assert resolve_activation("auto", None) == "softmax"
    assert resolve_activation("auto", BRATS_REGIONS) == "sigmoid"
    with pytest.raises(ValueError, match="auto, softmax or sigmoid"):
        resolve_activation("relu", None)
    logits = torch.tensor([[0.0, 2.0], [1.0, -1.0]])
    soft = probabilities(logits.clone(), "softmax")
    torch.testing.assert_close(soft.sum(0), torch.ones(2))
    torch.testing.assert_close(probabilities(logits.clone(), "sigmoid"), torch.sigmoid(logits))
