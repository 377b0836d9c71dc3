"""Surface metrics on 256x256x160 mask pairs: volseg beside MONAI and MedPy, in one process.

Masks (``--part hd95``), 1 mm isotropic:

* ``clean``: two overlapping spheres (radius 46 and 50 voxels, centres offset by (6, -5, 4)), no
  noise, no stray voxel (the union's box is ~107^3 voxels, 3 % of the array);
* ``noisy``: the same spheres with smoothed noise on their radii plus 300 isolated
  false-positive voxels scattered over the whole volume (so the prediction's bounding box is
  the full array); the recipe of ``BASELINES.md``.

Each pair: HD, HD95, ASSD and surface Dice at 1 mm beside MONAI, HD95 pooled beside MedPy; the
calls of volseg and its peer alternate within each round and the best of ``--runs`` rounds is
kept (a shared machine's busy spells hit both alike); values are asserted equal to 1e-6
relative. The HD95 row also times the floor: one bounding-box pass over each mask plus the k-d
tree builds and queries alone. The definitions differ; each peer is compared under its own:

* MONAI ``compute_hausdorff_distance(percentile=95)``: max of the two directed 95th percentiles
  = volseg ``hausdorff_distance(p, r, spacing, 95)`` (default ``combine="max"``); MONAI's
  ``compute_average_surface_distance(symmetric=True)`` and ``compute_surface_dice`` = volseg's
  ``average_surface_distance`` and ``surface_dice``;
* MedPy ``hd95``: 95th percentile of both directed sets pooled
  = volseg ``hausdorff_distance(p, r, spacing, 95, combine="pooled")``.

DeepMind's surface-distance (area-weighted surfels) = volseg ``convention="surfel"``; its row is
added when the package is installed.

Lesion-wise scores (``--part lesions``): 256x256x160 masks with a few hundred lesions (balls of
radius 2-6 voxels); the prediction moves most of them by a voxel or two, misses some, splits
some and adds false positives. volseg's :func:`~volseg.metrics.lesion_scores` is timed under
both conventions; no installed peer computes lesion-wise scores (BraTS 2023 and ISLES 2022
publish scripts, not packages), so there is no peer row.

Conventions (``--part conventions``): DeepMind's published cases (slabs, two voxels, squares)
under volseg's two conventions, MONAI, MedPy and DeepMind, as a markdown table.

``--part floor``: HD95's steps in single-thread CPU time on both pairs, the floor beside them.

Run: ``python benchmarks/metrics.py [--runs 5] [--part all|hd95|floor|lesions|conventions]`` (needs
the ``bench`` extra: monai, medpy, surface-distance).
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

import numpy as np
from scipy.ndimage import gaussian_filter

from volseg.metrics import LesionRules, hausdorff_distance, lesion_scores


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


def lesion_masks(
    shape: tuple[int, int, int] = (256, 256, 160), n: int = 300, seed: int = 0
) -> tuple[Any, Any]:
    """Prediction and reference with ``n`` reference lesions: 80 % found (moved by up to two
    voxels, radius changed by one), 10 % missed, 10 % split in two; plus n/10 false positives."""
    rng = np.random.default_rng(seed)
    ref = np.zeros(shape, dtype=bool)
    pred = np.zeros(shape, dtype=bool)

    def ball(mask: np.ndarray, center: np.ndarray, radius: float) -> None:
        lo = np.maximum(center - int(radius) - 1, 0)
        hi = np.minimum(center + int(radius) + 2, shape)
        grid = np.ogrid[tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))]
        d2 = sum((g - c) ** 2 for g, c in zip(grid, center, strict=True))
        mask[tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))] |= d2 <= radius**2

    for _ in range(n):
        center = rng.integers(8, np.array(shape) - 8)
        radius = float(rng.uniform(2, 6))
        ball(ref, center, radius)
        fate = rng.random()
        if fate < 0.8:
            ball(pred, center + rng.integers(-2, 3, 3), max(radius + rng.uniform(-1, 1), 1.0))
        elif fate < 0.9:  # split: two small balls at either end
            for sign in (-1, 1):
                ball(pred, center + sign * np.array([0, 0, int(radius)]), radius / 2)
    for _ in range(n // 10):
        ball(pred, rng.integers(8, np.array(shape) - 8), float(rng.uniform(2, 4)))
    return pred, ref


def bench_lesions(runs: int) -> None:
    """Time lesion_scores on the many-lesion masks (module docstring)."""
    from scipy import ndimage

    pred, ref = lesion_masks()
    spacing = (1.0, 1.0, 1.0)
    n_ref, n_pred = ndimage.label(ref)[1], ndimage.label(pred)[1]
    print(f"lesion masks 256x256x160: {n_ref} reference lesions, {n_pred} predicted components")
    cases = {
        "volseg lesion_scores (voxel)": ("voxel", LesionRules()),
        "volseg lesion_scores (surfel)": ("surfel", LesionRules()),
        "volseg BraTS-GLI rules (surfel)": (
            "surfel",
            LesionRules(dilation=3, min_volume=50, miss_distance=374),
        ),
    }
    print(f"{'method':32s} {'dice':>8s} {'hd95':>8s} {'F1':>6s} {'median s':>9s} {'peak MiB':>9s}")
    for name, (convention, rules) in cases.items():
        seconds, res, peak = timed(
            lambda c=convention, r=rules: lesion_scores(pred, ref, spacing, r, convention=c),
            runs,
        )
        sc = res.scores
        print(
            f"{name:32s} {sc['lesion_dice']:8.4f} {sc['lesion_hd95']:8.3f} "
            f"{sc['lesion_f1']:6.3f} {seconds:9.3f} {peak:9.1f}"
        )


def bench_surfel_peer(pred: Any, ref: Any, runs: int) -> None:
    """volseg's surfel HD95 beside DeepMind's surface-distance, when it is installed."""
    try:
        import surface_distance as sd
    except ImportError:
        print("surface-distance not installed: no surfel row")
        return
    spacing = (1.0, 1.0, 1.0)

    def volseg_surfel() -> float:
        return hausdorff_distance(pred, ref, spacing, 95, convention="surfel")

    def deepmind() -> float:
        dist = sd.compute_surface_distances(ref, pred, spacing)
        return float(sd.compute_robust_hausdorff(dist, 95))

    t_ours, hd_ours, m_ours = timed(volseg_surfel, runs)
    t_peer, hd_peer, m_peer = timed(deepmind, runs)
    print(
        f"{'volseg (convention=surfel)':28s} {hd_ours:12.6f} {'':10s} {t_ours:9.3f} {m_ours:9.1f}"
    )
    print(f"{'DeepMind surface-distance':28s} {hd_peer:12.6f} {'':10s} {t_peer:9.3f} {m_peer:9.1f}")
    assert abs(hd_ours - hd_peer) <= 1e-9, f"surfel HD95 {hd_ours} != DeepMind {hd_peer}"
    print(f"volseg surfel vs DeepMind: equal values; {t_peer / t_ours:.1f}x faster")


def convention_cases() -> dict[str, tuple[Any, Any, tuple[float, ...]]]:
    """DeepMind surface-distance's published test cases: (pred, ref, spacing) in array order."""
    slab_ref, slab_pred = np.zeros((100, 100, 100), bool), np.zeros((100, 100, 100), bool)
    slab_ref[0:50] = True
    slab_pred[0:51] = True
    px_ref, px_pred = np.zeros((128, 128, 128), bool), np.zeros((128, 128, 128), bool)
    px_ref[50, 60, 70] = px_pred[50, 60, 72] = True
    sq_ref, sq_pred = np.zeros((6, 6), bool), np.zeros((6, 6), bool)
    sq_ref[1:3, 1:3] = True
    sq_pred[1:4, 1:3] = True
    return {
        "slabs [0:50] vs [0:51], 100^3, (2, 1, 1) mm": (slab_pred, slab_ref, (2.0, 1.0, 1.0)),
        "two voxels 2 mm apart, (3, 2, 1) mm": (px_pred, px_ref, (3.0, 2.0, 1.0)),
        "2-D squares shifted by a pixel, (2, 1) mm": (sq_pred, sq_ref, (2.0, 1.0)),
    }


def bench_conventions() -> None:
    """Surface Dice at 1 mm, HD95 and ASSD of the cases under each convention and peer."""
    import warnings

    import torch
    from medpy.metric import binary as medpy_binary
    from monai.metrics import (
        compute_average_surface_distance,
        compute_hausdorff_distance,
        compute_surface_dice,
    )

    from volseg.metrics import average_surface_distance, surface_dice

    try:
        import surface_distance as sd
    except ImportError:
        sd = None
    warnings.simplefilter("ignore")
    print("| case | method | surface Dice 1 mm | HD95 mm | ASSD mm |")
    print("|---|---|---|---|---|")
    for case, (pred, ref, sp) in convention_cases().items():
        rows: dict[str, tuple[float, float, float]] = {}
        for conv in ("voxel", "surfel"):
            rows[f"volseg `{conv}`"] = (
                surface_dice(pred, ref, sp, 1.0, convention=conv),  # type: ignore[arg-type]
                hausdorff_distance(pred, ref, sp, 95, convention=conv),  # type: ignore[arg-type]
                average_surface_distance(pred, ref, sp, convention=conv),  # type: ignore[arg-type]
            )
        p_t, r_t = torch.from_numpy(pred)[None, None], torch.from_numpy(ref)[None, None]
        kw: dict[str, Any] = {"include_background": True, "spacing": list(sp)}
        rows["MONAI 1.6"] = (
            float(compute_surface_dice(p_t, r_t, [1.0], **kw)),
            float(compute_hausdorff_distance(p_t, r_t, percentile=95, **kw)),
            float(compute_average_surface_distance(p_t, r_t, symmetric=True, **kw)),
        )
        rows["MedPy 0.5 (no surface Dice)"] = (
            math.nan,
            float(medpy_binary.hd95(pred, ref, sp)),
            float(medpy_binary.assd(pred, ref, sp)),
        )
        if sd is not None:
            dist = sd.compute_surface_distances(ref, pred, sp)
            m_r, m_p = sd.compute_average_surface_distance(dist)
            a_r, a_p = dist["surfel_areas_gt"].sum(), dist["surfel_areas_pred"].sum()
            rows["DeepMind surface-distance"] = (
                float(sd.compute_surface_dice_at_tolerance(dist, 1.0)),
                float(sd.compute_robust_hausdorff(dist, 95)),
                float((m_r * a_r + m_p * a_p) / (a_r + a_p)),  # its two directed means, pooled
            )
        for method, values in rows.items():
            cells = " | ".join("-" if math.isnan(v) else f"{v:.6f}" for v in values)
            print(f"| {case} | {method} | {cells} |")


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


def clean_masks(shape: tuple[int, int, int] = (256, 256, 160)) -> tuple[Any, Any]:
    """Prediction and reference: two clean overlapping spheres (radius 46 and 50 voxels, centres
    offset by (6, -5, 4)), no noise and no stray voxel: the union's box is ~107^3 voxels."""
    grid = np.ogrid[tuple(slice(0, s) for s in shape)]

    def sphere(center: tuple[int, int, int], radius: int) -> np.ndarray:
        d2 = sum((g - c) ** 2 for g, c in zip(grid, center, strict=True))
        return np.asarray(d2 < radius**2)

    return sphere((134, 123, 84), 46), sphere((128, 128, 80), 50)


def interleaved(fns: dict[str, Callable[[], Any]], runs: int) -> dict[str, tuple[float, Any]]:
    """Best seconds and value of each call over ``runs`` rounds (one warm-up round first); the
    calls alternate within a round, so a busy spell of the machine hits every method alike."""
    best = {name: math.inf for name in fns}
    value = {name: fn() for name, fn in fns.items()}
    for _ in range(runs):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            value[name] = fn()
            best[name] = min(best[name], time.perf_counter() - t0)
    return {name: (best[name], value[name]) for name in fns}


def traced_peak(fn: Callable[[], Any]) -> float:
    """Peak traced heap (numpy/Python) of one call in MiB."""
    tracemalloc.start()
    fn()
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    return peak


def floor_call(pred: Any, ref: Any, spacing: tuple[float, ...]) -> Callable[[], None]:
    """The floor of a distance metric: one pass over each mask (its bounding box) plus the k-d
    tree builds and queries alone, both directions at once, every surface voxel queried
    (surfaces found beforehand; the same tree settings and threads as volseg)."""
    from volseg.metrics import surface_voxels
    from volseg.metrics.surfels import bounding_box, nearest_distances_both

    sp = np.asarray(spacing)
    s_p, s_r = surface_voxels(pred), surface_voxels(ref)

    def floor() -> None:
        bounding_box(pred), bounding_box(ref)
        nearest_distances_both(s_p, s_r, s_r, s_p, sp)

    return floor


def bench_distances(label: str, pred: Any, ref: Any, runs: int) -> list[float]:
    """HD, HD95, ASSD and surface Dice (1 mm) of one mask pair beside MONAI (and MedPy's
    pooled HD95), interleaved in one process; asserts equal values; returns the speed-ups."""
    import warnings

    import torch
    from medpy.metric import binary as medpy_binary
    from monai.metrics import (
        compute_average_surface_distance,
        compute_hausdorff_distance,
        compute_surface_dice,
    )

    from volseg.metrics import average_surface_distance, surface_dice

    warnings.simplefilter("ignore")
    spacing = (1.0, 1.0, 1.0)
    p_t, r_t = torch.from_numpy(pred)[None, None], torch.from_numpy(ref)[None, None]
    kw: dict[str, Any] = {"include_background": True}
    rows: dict[str, tuple[Callable[[], float], Callable[[], float], str]] = {
        "HD": (
            lambda: hausdorff_distance(pred, ref, spacing),
            lambda: float(compute_hausdorff_distance(p_t, r_t, **kw)),
            "MONAI",
        ),
        "HD95": (
            lambda: hausdorff_distance(pred, ref, spacing, 95),
            lambda: float(compute_hausdorff_distance(p_t, r_t, percentile=95, **kw)),
            "MONAI",
        ),
        "ASSD": (
            lambda: average_surface_distance(pred, ref, spacing),
            lambda: float(compute_average_surface_distance(p_t, r_t, symmetric=True, **kw)),
            "MONAI",
        ),
        "surface Dice 1 mm": (
            lambda: surface_dice(pred, ref, spacing, 1.0),
            lambda: float(compute_surface_dice(p_t, r_t, [1.0], **kw)),
            "MONAI",
        ),
        "HD95 pooled": (
            lambda: hausdorff_distance(pred, ref, spacing, 95, combine="pooled"),
            lambda: float(medpy_binary.hd95(pred, ref, spacing)),
            "MedPy",
        ),
    }
    print(
        f"\n{label} masks 256x256x160: ref {int(ref.sum())} voxels, pred {int(pred.sum())} voxels, "
        f"best of {runs} interleaved runs"
    )
    print(
        f"{'metric':18s} {'volseg':>12s} {'peer':>12s} {'peer':6s} "
        f"{'volseg s':>9s} {'peer s':>9s} {'ratio':>6s} {'MiB':>6s}"
    )
    ratios = []
    floor_line = ""
    for metric, (ours, peer, peer_name) in rows.items():
        # MedPy takes seconds a call: fewer rounds for it
        n = runs if peer_name == "MONAI" else max(1, min(runs, 2))
        fns = {"ours": ours, "peer": peer}
        if metric == "HD95":  # the floor, interleaved with the calls it bounds
            fns["floor"] = floor_call(pred, ref, spacing)
        res = interleaved(fns, n)
        (t_ours, v_ours), (t_peer, v_peer) = res["ours"], res["peer"]
        # MONAI returns float32: equal to 1e-6 relative
        assert math.isclose(v_ours, v_peer, rel_tol=1e-6, abs_tol=1e-9), (
            f"{label} {metric}: volseg {v_ours} != {peer_name} {v_peer}"
        )
        ratio = t_peer / t_ours
        if peer_name == "MONAI":
            ratios.append(ratio)
        print(
            f"{metric:18s} {v_ours:12.6f} {v_peer:12.6f} {peer_name:6s} {t_ours:9.4f} "
            f"{t_peer:9.4f} {ratio:5.1f}x {traced_peak(ours):6.1f}"
        )
        if "floor" in res:
            floor_line = (
                f"HD95 floor (a bounding-box pass over both masks + the k-d tree builds and "
                f"queries alone): {res['floor'][0]:.4f} s; volseg HD95 is "
                f"{t_ours / res['floor'][0]:.2f}x the floor"
            )
    print(floor_line)
    return ratios


def bench_floor(runs: int) -> None:
    """HD95's steps in single-thread CPU time (``time.process_time``, best of ``runs``), which
    a shared machine disturbs far less than wall time: the floor (one pass over each mask for
    its bounding box; the k-d tree builds and queries of every surface voxel) beside the rest."""
    from volseg.metrics import surface_voxels
    from volseg.metrics import surfels as surfels_mod
    from volseg.metrics.surfels import bounding_box, nearest_distances

    parallel_min = surfels_mod.PARALLEL_MIN_POINTS
    surfels_mod.PARALLEL_MIN_POINTS = 2**62  # one thread: CPU time is then the work
    sp = np.ones(3)
    print(
        f"\n{'CPU ms, one thread':18s} {'bbox pass':>9s} {'queries':>8s} {'floor':>7s} "
        f"{'surfaces':>8s} {'HD95':>7s} {'/floor':>6s}"
    )
    for label, (pred, ref) in (("clean", clean_masks()), ("noisy", make_masks())):
        s_p, s_r = surface_voxels(pred), surface_voxels(ref)
        steps: dict[str, Callable[[], Any]] = {
            "bbox": lambda p=pred, r=ref: (bounding_box(p), bounding_box(r)),
            "queries": lambda a=s_p, b=s_r: (
                nearest_distances(a, b, sp),
                nearest_distances(b, a, sp),
            ),
            "surfaces": lambda p=pred, r=ref: (surface_voxels(p), surface_voxels(r)),
            "hd95": lambda p=pred, r=ref: hausdorff_distance(p, r, None, 95),
        }
        best = dict.fromkeys(steps, math.inf)
        for _ in range(runs):
            for name, fn in steps.items():
                t0 = time.process_time()
                fn()
                best[name] = min(best[name], time.process_time() - t0)
        ms = {k: v * 1e3 for k, v in best.items()}
        floor = ms["bbox"] + ms["queries"]
        print(
            f"{label:18s} {ms['bbox']:9.1f} {ms['queries']:8.1f} {floor:7.1f} "
            f"{ms['surfaces']:8.1f} {ms['hd95']:7.1f} {ms['hd95'] / floor:5.2f}x"
        )
    surfels_mod.PARALLEL_MIN_POINTS = parallel_min


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument(
        "--part", choices=["all", "hd95", "floor", "lesions", "conventions"], default="all"
    )
    args = parser.parse_args()
    if args.part in ("all", "conventions"):
        bench_conventions()
    if args.part == "conventions":
        return 0
    if args.part in ("all", "lesions"):
        bench_lesions(args.runs)
    if args.part in ("all", "floor"):
        bench_floor(args.runs)
    if args.part in ("lesions", "floor"):
        return 0

    import torch

    torch.set_num_threads(2)
    worst = math.inf
    noisy = make_masks()
    for label, (pred, ref) in (("clean", clean_masks()), ("noisy", noisy)):
        worst = min(worst, *bench_distances(label, pred, ref, args.runs))
    verdict = "met" if worst >= 5 else "NOT met"
    print(
        f"\nslowest volseg/MONAI speed-up, both mask pairs: {worst:.1f}x (target >= 5x {verdict})"
    )
    print("\nsurfel convention, noisy masks:")
    bench_surfel_peer(*noisy, args.runs)
    print("MiB: tracemalloc peak of one volseg call (numpy/Python heap)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
