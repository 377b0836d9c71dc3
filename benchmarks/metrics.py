"""HD95 + Dice on two 256x256x160 masks: volseg beside MONAI and MedPy, in one process.

Masks: two overlapping noisy spheres (radius 50 and 46 voxels, offset by (6, -5, 4)) plus 300
isolated false-positive voxels scattered over the whole volume (so the union's bounding box is
the full array), 1 mm isotropic; the recipe of ``BASELINES.md``.

The three HD95 definitions differ; each peer is compared under its own convention:

* MONAI ``compute_hausdorff_distance(percentile=95)``: max of the two directed 95th percentiles
  = volseg ``hausdorff_distance(p, r, spacing, 95)`` (default ``combine="max"``);
* MedPy ``hd95``: 95th percentile of both directed sets pooled
  = volseg ``hausdorff_distance(p, r, spacing, 95, combine="pooled")``.

Run: ``python benchmarks/metrics.py [--runs 3]`` (needs the ``bench`` extra: monai, medpy).
"""

from __future__ import annotations

import argparse
import statistics
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

import numpy as np
from scipy.ndimage import gaussian_filter

from volseg.metrics import dice, hausdorff_distance


def make_masks(shape: tuple[int, int, int] = (256, 256, 160), seed: int = 0) -> tuple[Any, Any]:
    """Reference and prediction: noisy spheres plus scattered false-positive voxels."""
    rng = np.random.default_rng(seed)
    grid = np.ogrid[tuple(slice(0, s) for s in shape)]

    def sphere(center: tuple[int, int, int], radius: float) -> np.ndarray:
        d2 = sum((g - c).astype(np.float32) ** 2 for g, c in zip(grid, center, strict=True))
        noise = gaussian_filter(rng.standard_normal(shape, dtype=np.float32), sigma=3)
        noise *= 2.0 / noise.std()
        return np.asarray(np.sqrt(d2) < radius + noise)

    ref = sphere((128, 128, 80), 50.0)
    pred = sphere((134, 123, 84), 46.0)
    pred.reshape(-1)[rng.integers(0, pred.size, 300)] = True
    return pred, ref


def timed(fn: Callable[[], Any], runs: int) -> tuple[float, Any, float]:
    """(median seconds, value, peak traced heap MiB) over ``runs`` calls after one warm-up."""
    value = fn()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        value = fn()
        times.append(time.perf_counter() - t0)
    tracemalloc.start()
    fn()
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    return statistics.median(times), value, peak


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()

    import torch
    from medpy.metric import binary as medpy_binary
    from monai.metrics import compute_dice, compute_hausdorff_distance

    torch.set_num_threads(2)
    pred, ref = make_masks()
    spacing = (1.0, 1.0, 1.0)
    p_t, r_t = torch.from_numpy(pred)[None, None], torch.from_numpy(ref)[None, None]

    def volseg_max() -> tuple[float, float]:
        return hausdorff_distance(pred, ref, spacing, 95), dice(pred, ref)

    def volseg_pooled() -> tuple[float, float]:
        return hausdorff_distance(pred, ref, spacing, 95, combine="pooled"), dice(pred, ref)

    def monai() -> tuple[float, float]:
        hd = compute_hausdorff_distance(p_t, r_t, include_background=True, percentile=95)
        d = compute_dice(p_t.float(), r_t.float(), include_background=True)
        return float(hd.item()), float(d.item())

    def medpy() -> tuple[float, float]:
        return float(medpy_binary.hd95(pred, ref, spacing)), float(medpy_binary.dc(pred, ref))

    results = {
        "volseg (combine='max')": timed(volseg_max, args.runs),
        "MONAI": timed(monai, args.runs),
        "volseg (combine='pooled')": timed(volseg_pooled, args.runs),
        "MedPy": timed(medpy, args.runs),
    }
    print(f"masks 256x256x160: ref {int(ref.sum())} voxels, pred {int(pred.sum())} voxels")
    print(f"{'method':28s} {'HD95 mm':>12s} {'Dice':>10s} {'median s':>9s} {'peak MiB':>9s}")
    for name, (seconds, (hd95, d), peak) in results.items():
        print(f"{name:28s} {hd95:12.6f} {d:10.6f} {seconds:9.3f} {peak:9.1f}")

    pairs = (("volseg (combine='max')", "MONAI"), ("volseg (combine='pooled')", "MedPy"))
    for ours, peer in pairs:
        (t_ours, (hd_ours, d_ours), _), (t_peer, (hd_peer, d_peer), _) = (
            results[ours],
            results[peer],
        )
        # MONAI returns float32 distances: allow its rounding (~1 ulp of float32 at ~10 mm)
        tol = 1e-6 if peer == "MedPy" else max(1e-6, float(np.spacing(np.float32(hd_peer))))
        assert abs(hd_ours - hd_peer) <= tol, f"HD95 {ours} {hd_ours} != {peer} {hd_peer}"
        assert abs(d_ours - d_peer) <= 1e-6, f"Dice {ours} {d_ours} != {peer} {d_peer}"
        print(f"{ours} vs {peer}: equal values; {t_peer / t_ours:.1f}x faster")
    fastest_peer = min(results["MONAI"][0], results["MedPy"][0])
    ours_slowest = max(
        results["volseg (combine='max')"][0], results["volseg (combine='pooled')"][0]
    )
    print(f"volseg vs the faster peer: {fastest_peer / ours_slowest:.1f}x (target >= 5x)")
    print("peak MiB: tracemalloc peak of one call (numpy/Python heap; misses torch and C++ heaps)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
