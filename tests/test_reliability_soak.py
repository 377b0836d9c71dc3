"""Soak: a batch of 100 small volumes predicted in one process keeps its memory bounded.

After a warm-up of 10 cases the remaining 90 may grow the resident set by < 5 % (the bound of
issue 18). With a resident set of a few hundred MB that catches a leak of a few hundred KB per
case (a case's probabilities and label map here are ~60 KB), not a leak of a few bytes.
"""

from __future__ import annotations

import gc
from pathlib import Path

import pytest
import torch
from torch import nn

from volseg.config import Config, InferConfig, PreprocessConfig
from volseg.data.synthetic import make_phantom
from volseg.inference import Predictor
from volseg.io import read_volume, write_volume

STATM = Path("/proc/self/statm")


class Pointwise(nn.Module):
    """A 1x1x1 convolution: the whole pipeline around it runs, the network costs nothing."""

    spatial_dims, divisor, in_channels, out_channels, output_kind = 3, 1, 1, 2, "logits"

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv3d(1, 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


def _rss() -> int:
    import os

    return int(STATM.read_text(encoding="utf-8").split()[1]) * os.sysconf("SC_PAGE_SIZE")


@pytest.mark.slow
@pytest.mark.skipif(not STATM.exists(), reason="needs /proc/self/statm (Linux)")
def test_100_volumes_predict_with_bounded_memory(tmp_path: Path) -> None:
    config = Config(preprocess=PreprocessConfig(orient=None), infer=InferConfig(window=None))
    predictor = Predictor(Pointwise(), config, [0, 1], 1)
    (tmp_path / "in").mkdir()
    scans = [
        write_volume(make_phantom((16, 20, 24), seed=i)[0], tmp_path / "in" / f"c{i:03d}.nii.gz")
        for i in range(100)
    ]
    rss = []
    for i, scan in enumerate(scans):
        predictor.predict_file(scan, tmp_path / "out" / scan.name)
        if i in (9, 99):
            gc.collect()
            rss.append(_rss())
    assert len(list((tmp_path / "out").iterdir())) == 100
    assert read_volume(tmp_path / "out" / "c099.nii.gz").shape == (16, 20, 24)
    assert rss[1] < 1.05 * rss[0], f"RSS grew from {rss[0] / 2**20:.0f} to {rss[1] / 2**20:.0f} MiB"
