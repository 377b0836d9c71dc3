"""Augmentation speed: volseg's B-spline deformation vs TorchIO, and the loader vs a V-Net step.

1. ``RandomBSplineDeformation(grid=2, sigma_voxels=5)`` (registered as ``bspline``) against
   TorchIO's ``RandomElasticDeformation(num_control_points=5)`` (the same 5x5x5 control grid,
   i.e. a mesh of 2 cells), image (linear) + label (nearest), on 128x128x64 and 160x192x160
   volumes. Target: volseg >= 20x faster (issue 14).
2. The training loader (:class:`volseg.data.sampling.PatchDataset` with the V-Net recipe from the
   registry: ``flip``, ``bspline``, ``histogram_matching``) producing one 128x128x64 sample,
   against one V-Net training step (forward + backward + SGD) on it. Target: loading < 10% of
   the step.

Both run with glibc keeping freed memory for reuse, as training and its forked loader workers do
(``train.runtime.reuse_memory``); ``--system-allocator`` leaves glibc's defaults.

Run: ``PYTHONPATH=src python benchmarks/augmentation.py [--quick]``.
"""

from __future__ import annotations

import argparse

import numpy as np
import SimpleITK as sitk
import torch
import torchio as tio
from common import Timing, print_table, setup_threads, time_call

from volseg._allocator import reuse_freed_memory
from volseg.config import AugmentConfig, PreprocessConfig, TransformConfig
from volseg.data.preprocessing import preprocess
from volseg.data.sampling import LoadedCase, PatchDataset, labels_to_indices
from volseg.data.synthetic import make_phantom
from volseg.data.transforms import RandomBSplineDeformation, Sample
from volseg.nn import create_model


def _sample(shape: tuple[int, ...]) -> Sample:
    gen = torch.Generator().manual_seed(0)
    image = torch.randn((1, *shape), generator=gen)
    label = (torch.rand((1, *shape), generator=gen) > 0.7).to(torch.int64)
    return Sample(image, label)


def _pair(shape: tuple[int, ...], repeat: int) -> tuple[Timing, Timing]:
    sample = _sample(shape)
    ours = RandomBSplineDeformation(grid=2, sigma_voxels=5.0)
    rng = np.random.default_rng(0)
    subject = tio.Subject(
        image=tio.ScalarImage(tensor=sample.image),
        label=tio.LabelMap(tensor=sample.label),
    )
    peer = tio.RandomElasticDeformation(num_control_points=5, max_displacement=7.5)
    return (
        time_call(lambda: ours(sample, rng), repeat=repeat),
        time_call(lambda: peer(subject), repeat=repeat),
    )


def bspline_rows(shapes: list[tuple[int, ...]], repeat: int) -> list:
    rows = []
    for shape in shapes:
        t_ours, t_peer = _pair(shape, repeat)
        rows.append((f"B-spline image+label {'x'.join(map(str, shape))}", t_ours, t_peer))
    return rows


def loader_vs_step(repeat: int) -> None:
    cases = []
    for seed in range(2):
        image, label = make_phantom(shape=(80, 150, 150), spacing=(1.0, 1.0, 1.5), seed=seed)
        work, work_label, record = preprocess(image, PreprocessConfig(orient=None), label)
        assert work_label is not None
        target = labels_to_indices(work_label.array, [0, 1], "phantom")
        cases.append(
            LoadedCase(
                f"c{seed}",
                torch.from_numpy(work.array),
                torch.from_numpy(target),
                np.argwhere(target[0] > 0),
                record,
            )
        )
    vnet = AugmentConfig(
        (
            TransformConfig("flip", 0.5, {"axes": [0, 1, 2]}),
            TransformConfig("bspline", 1.0, {"grid": 2, "sigma_voxels": 15.0}),
            TransformConfig("histogram_matching", 1.0),
        )
    )
    data = PatchDataset(cases, (64, 128, 128), vnet, 0.5, 1000, seed=0)
    counter = iter(range(10**6))
    load = time_call(lambda: data[next(counter)], repeat=repeat)
    model = create_model("vnet", in_channels=1, out_channels=2)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-4, momentum=0.99)
    batch, target = data[0]

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        logits = model(batch[None])
        loss = torch.nn.functional.cross_entropy(logits, target)
        loss.backward()
        optimizer.step()

    train = time_call(step, repeat=1)
    print(f"loader, one V-Net sample 64x128x128 (z,y,x): {load.median:.3f} s")
    print(f"V-Net train step (batch 1, fp32):             {train.median:.3f} s")
    print(f"loading / step = {load.median / train.median:.1%} (target < 10%)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller volumes, fewer repeats")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--system-allocator",
        action="store_true",
        help="leave glibc's defaults (training and its loader workers keep freed memory)",
    )
    args = parser.parse_args()
    # the loader's workers run under `volseg train`'s setting (train.runtime.reuse_memory);
    # TorchIO runs in this process too, so it gets the same
    reused = not args.system_allocator and reuse_freed_memory()
    print(f"allocator: {'freed memory reused' if reused else 'glibc defaults'}")
    setup_threads(args.threads)
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(args.threads)  # TorchIO resamples in ITK
    shapes = [(64, 64, 32)] if args.quick else [(128, 128, 64), (160, 192, 160)]
    rows = bspline_rows(shapes, repeat=2 if args.quick else 5)
    print_table(rows, ours_name="volseg", peer_name="TorchIO")
    for label, ours, peer in rows:
        print(f"{label}: volseg {peer.median / ours.median:.1f}x faster")
    if not args.quick:
        loader_vs_step(repeat=3)


if __name__ == "__main__":
    main()
