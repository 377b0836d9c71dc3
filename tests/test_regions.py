"""Regions: BraTS label maps <-> (WT, TC, ET) masks, in numpy and torch, by hand (labels
0, 1, 2, 4 up to BraTS 2021; 0, 1, 2, 3 from BraTS 2023)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from volseg.regions import (
    BRATS2023_REGIONS,
    BRATS_REGIONS,
    Region,
    batch_labels_to_regions,
    get_regions,
    labels_to_regions,
    paint_labels,
    region_sets,
    regions_to_labels,
)

LABELS = np.array([[0, 1, 2, 4], [4, 2, 1, 0]], dtype=np.int64)
WT = [[0, 1, 1, 1], [1, 1, 1, 0]]
TC = [[0, 1, 0, 1], [1, 0, 1, 0]]
ET = [[0, 0, 0, 1], [1, 0, 0, 0]]


def test_brats_mapping_is_data() -> None:
    assert [(r.name, r.labels) for r in BRATS_REGIONS] == [
        ("WT", (1, 2, 4)),
        ("TC", (1, 4)),
        ("ET", (4,)),
    ]
    assert get_regions("BraTS") == BRATS_REGIONS
    assert paint_labels("brats") == (2, 1, 4)
    with pytest.raises(ValueError, match="unknown region set"):
        get_regions("nope")


@pytest.mark.parametrize("with_channel", [False, True])
def test_labels_to_regions_numpy(with_channel: bool) -> None:
    label = LABELS[None] if with_channel else LABELS
    out = labels_to_regions(label, "brats")
    assert out.dtype == bool and out.shape == (3, 2, 4)
    np.testing.assert_array_equal(out.astype(int), np.array([WT, TC, ET]))


def test_labels_to_regions_torch_and_batch() -> None:
    label = torch.from_numpy(LABELS)[None]
    out = labels_to_regions(label, "brats")
    assert isinstance(out, torch.Tensor) and out.dtype == torch.bool
    assert out.int().tolist() == [WT, TC, ET]
    batch = batch_labels_to_regions(torch.stack([label, label.flip(-1)]), "brats")
    assert batch.shape == (2, 3, 2, 4)
    assert batch[0].int().tolist() == [WT, TC, ET]
    assert torch.equal(batch[1], out.flip(-1))
    with pytest.raises(ValueError):
        batch_labels_to_regions(label, "brats")


def test_round_trip_numpy_and_torch() -> None:
    rng = np.random.default_rng(0)
    label = rng.choice([0, 1, 2, 4], size=(5, 6, 7))
    probs = labels_to_regions(label).astype(np.float32) * 0.9 + 0.05
    back = regions_to_labels(probs, "brats")
    assert back.dtype == np.uint8
    np.testing.assert_array_equal(back, label)
    back_t = regions_to_labels(torch.from_numpy(probs), "brats")
    assert back_t.dtype == torch.int64
    np.testing.assert_array_equal(back_t.numpy(), label)
    np.testing.assert_array_equal(regions_to_labels(labels_to_regions(label)), label)


def test_regions_to_labels_priority_and_threshold() -> None:
    # voxels: nothing; WT only; WT+TC; ET alone (not inside TC: ET still wins -> 4); all at 0.5
    probs = np.array(
        [
            [0.1, 0.9, 0.9, 0.2, 0.5],  # WT
            [0.1, 0.2, 0.8, 0.3, 0.5],  # TC
            [0.1, 0.3, 0.4, 0.7, 0.5],  # ET
        ]
    )
    assert regions_to_labels(probs).tolist() == [0, 2, 1, 4, 0]  # p > threshold, strictly
    assert regions_to_labels(probs, threshold=0.35).tolist() == [0, 2, 4, 4, 4]
    with pytest.raises(ValueError, match="channels"):
        regions_to_labels(probs[:2])


def test_custom_regions_and_bad_order() -> None:
    disjoint = (Region("a", (3,)), Region("b", (7,)))
    assert paint_labels(disjoint) == (3, 7)
    masks = labels_to_regions(np.array([0, 3, 7]), disjoint)
    assert regions_to_labels(masks, disjoint).tolist() == [0, 3, 7]
    with pytest.raises(ValueError, match="largest first"):
        paint_labels((Region("ET", (4,)), Region("WT", (1, 2, 4))))


def test_brats2023_enhancing_tumour_is_label_3() -> None:
    assert region_sets() == ["brats", "brats2023"]
    assert get_regions("brats2023") == BRATS2023_REGIONS
    assert [(r.name, r.labels) for r in BRATS2023_REGIONS] == [
        ("WT", (1, 2, 3)),
        ("TC", (1, 3)),
        ("ET", (3,)),
    ]
    assert paint_labels("brats2023") == (2, 1, 3)
    # the BraTS 2017 map with 4 -> 3: the same masks, by hand
    label = np.where(LABELS == 4, 3, LABELS)
    out = labels_to_regions(label, "brats2023")
    np.testing.assert_array_equal(out.astype(int), np.array([WT, TC, ET]))
    batch = batch_labels_to_regions(torch.from_numpy(label)[None, None], "brats2023")
    assert batch[0].int().tolist() == [WT, TC, ET]
    # label 4 is not part of any 2023 region (BraTS 2024's resection cavity stays background)
    assert labels_to_regions(np.array([4]), "brats2023").tolist() == [[False], [False], [False]]


def test_brats2023_back_to_labels() -> None:
    probs = np.array(
        [
            [0.1, 0.9, 0.9, 0.2],  # WT
            [0.1, 0.2, 0.8, 0.3],  # TC
            [0.1, 0.3, 0.4, 0.7],  # ET
        ]
    )
    assert regions_to_labels(probs, "brats2023").tolist() == [0, 2, 1, 3]
    assert regions_to_labels(torch.from_numpy(probs), "brats2023").tolist() == [0, 2, 1, 3]
    rng = np.random.default_rng(1)
    label = rng.choice([0, 1, 2, 3], size=(4, 5, 6))
    back = regions_to_labels(labels_to_regions(label, "brats2023"), "brats2023")
    np.testing.assert_array_equal(back, label)
