"""Small anisotropic samples for the transform tests."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import torch

from volseg.data.transforms import Sample

SPACING = {2: (1.5, 0.8), 3: (2.5, 0.9, 1.2)}  # mm, array order


def random_sample(shape: tuple[int, ...], seed: int = 0) -> Sample:
    """Two random channels and a label with values {0, 2, 7}, anisotropic spacing."""
    gen = torch.Generator().manual_seed(seed)
    image = torch.randn((2, *shape), generator=gen)
    label = (torch.rand((1, *shape), generator=gen) * 3).to(torch.uint8)
    label = label * 2 + 3 * (label == 2)
    return Sample(image, label, SPACING[len(shape)])


def blob(shape: tuple[int, ...]) -> np.ndarray:
    """A smooth image that is exactly 0 within a few voxels of the border (boundary-free tests)."""
    axes = np.meshgrid(*[np.linspace(-1, 1, n) for n in shape], indexing="ij")
    radius2 = sum((a / 0.6) ** 2 for a in axes)
    image = np.cos(3 * axes[-1]) * np.clip(1 - radius2, 0, None) ** 2
    return image.astype(np.float32)


@pytest.fixture
def make_sample() -> Callable[..., Sample]:
    return random_sample


@pytest.fixture
def make_blob() -> Callable[[tuple[int, ...]], np.ndarray]:
    return blob
