"""V-Net histogram matching against SimpleITK's HistogramMatchingImageFilter."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import SimpleITK as sitk
import torch

from volseg.data.transforms import (
    Context,
    RandomHistogramMatching,
    Sample,
    create_transform,
    histogram_table,
    match_histogram,
)


def test_histogram_matching_agrees_with_simpleitk(shared_data: Path) -> None:
    """Colin27 T1 matched to the MNI152 T1: within 1e-3 of ITK's filter (range 0..255)."""
    source = sitk.ReadImage(str(shared_data / "colin27" / "ch2.nii.gz"), sitk.sitkFloat32)
    reference = sitk.ReadImage(
        str(shared_data / "mni152" / "mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz"),
        sitk.sitkFloat32,
    )
    expected = sitk.GetArrayFromImage(sitk.HistogramMatching(source, reference, 1024, 7, True))
    image = torch.from_numpy(sitk.GetArrayFromImage(source)[None])
    transform = create_transform("histogram_matching", levels=1024, points=7)
    assert isinstance(transform, RandomHistogramMatching)
    transform.prepare([image, torch.from_numpy(sitk.GetArrayFromImage(reference)[None])])
    sample = Sample(image, spacing=tuple(reversed(source.GetSpacing())))
    context = Context(image, sample.spacing_mm, sample.shape, (), case=0)
    params = transform.get_params(np.random.default_rng(0), context)
    assert params is not None and params.reference == 1
    out = transform.apply(sample, params).image[0].numpy()
    assert np.abs(out - expected).max() < 1e-3


def test_histogram_matching_maps_quantiles_onto_reference() -> None:
    rng = np.random.default_rng(0)
    source = torch.from_numpy(rng.gamma(2.0, 10.0, 50_000).astype(np.float32))
    target = rng.normal(100.0, 5.0, 50_000).astype(np.float32)
    src_table = histogram_table(source.numpy(), threshold_at_mean=False)
    ref_table = histogram_table(target, threshold_at_mean=False)
    mapped = histogram_table(match_histogram(source, src_table, ref_table), threshold_at_mean=False)
    np.testing.assert_allclose(mapped.quantiles, ref_table.quantiles, rtol=1e-3)


def test_a_case_is_matched_to_another_case_only() -> None:
    images = [torch.rand(1, 6, 6, 6) * (i + 1) for i in range(3)]
    transform = RandomHistogramMatching()
    transform.prepare(images)
    sample = Sample(images[1])
    for seed in range(20):
        params = transform.get_params(np.random.default_rng(seed), Context.of(sample, case=1))
        assert params is not None and params.reference in (0, 2)
    transform.prepare(images[:1])  # a single case has no other case: never fires
    assert transform.get_params(np.random.default_rng(0), Context.of(sample, case=0)) is None
