"""Preprocessing speed and memory: ``preprocess`` + ``restore`` on a 4-channel anisotropic scan.

The scan: 4 channels of 160x192x192 voxels (array order z, y, x), float32, spacing
(0.9, 0.9, 3.0) mm, a sagittal-like direction tilted by 10 degrees (so reorientation permutes
and flips axes and resampling is oblique), zeros around a noisy ellipsoid (so the non-zero crop
cuts something). The recipe: ``orient: LPS``, ``target_spacing: [1.2, 1.2, 2.0]``, crop to
non-zero, ``zscore_nonzero``; once with ``interpolation: linear``, once with ``bspline`` (the
anisotropic two-step path). ``restore`` maps 4-channel probabilities back (``linear``, fill
``[1, 0, 0, 0]``), as the Predictor does. N4 is left out (minutes on this size).

The peer is volseg itself at an older revision (``--baseline REV``, default ``dee432a``, the
last single-module ``preprocessing.py``), loaded from git into the same process. The two are
timed alternately (new, old, new, old...), so that on a shared machine both see the same load;
the table gives median wall seconds and peak RSS above the baseline, then median CPU seconds of
this process (less sensitive to other users of the machine than wall time).

Run: ``PYTHONPATH=src python benchmarks/preprocessing.py [--repeat 3] [--baseline REV|none]``.
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
from common import PeakRSS, Timing, print_table, setup_threads

from volseg.config import PreprocessConfig
from volseg.data import preprocessing
from volseg.io import Volume

SHAPE = (160, 192, 192)
CHANNELS = 4


def make_scan(shape: tuple[int, int, int] = SHAPE, seed: int = 0) -> Volume:
    """A 4-channel anisotropic scan with a tilted, permuted direction (see the module doc)."""
    rng = np.random.default_rng(seed)
    z, y, x = np.ogrid[tuple(slice(0, s) for s in shape)]
    centre = [(s - 1) / 2 for s in shape]
    radii = [0.4 * s for s in shape]
    inside = sum(((g - c) / r) ** 2 for g, c, r in zip((z, y, x), centre, radii)) <= 1.0
    array = np.zeros((CHANNELS, *shape), dtype=np.float32)
    for c in range(CHANNELS):
        noise = rng.normal(100.0 * (c + 1), 10.0, shape).astype(np.float32)
        array[c][inside] = noise[inside]
    t = np.deg2rad(10.0)
    tilt = np.array([[1, 0, 0], [0, np.cos(t), -np.sin(t)], [0, np.sin(t), np.cos(t)]])
    sagittal = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])
    direction = tuple(float(v) for v in (tilt @ sagittal).ravel())
    return Volume(array, (0.9, 0.9, 3.0), (12.0, -40.0, 7.5), direction, "bench")


def load_baseline(rev: str) -> ModuleType:
    """``src/volseg/data/preprocessing.py`` at ``rev`` as a standalone module."""
    root = Path(__file__).resolve().parents[1]
    text = subprocess.run(
        ["git", "-C", str(root), "show", f"{rev}:src/volseg/data/preprocessing.py"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    path = Path(tempfile.mkdtemp()) / f"preprocessing_{rev}.py"
    path.write_text(text, encoding="utf-8")
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[path.stem] = module
    spec.loader.exec_module(module)
    return module


def time_alternately(fns: list[Callable[[], object]], repeat: int) -> list[tuple[Timing, float]]:
    """Each ``fn`` once untimed, then ``repeat`` rounds of each once; (Timing, median CPU s)."""
    for fn in fns:
        fn()
    wall: list[list[float]] = [[] for _ in fns]
    cpu: list[list[float]] = [[] for _ in fns]
    peak = [0] * len(fns)
    for _ in range(repeat):
        for i, fn in enumerate(fns):
            with PeakRSS() as mem:
                start, start_cpu = time.perf_counter(), time.process_time()
                fn()
                wall[i].append(time.perf_counter() - start)
                cpu[i].append(time.process_time() - start_cpu)
            peak[i] = max(peak[i], mem.bytes)
    return [(Timing(tuple(w), p), statistics.median(c)) for w, c, p in zip(wall, cpu, peak)]


def _preprocess(module: Any, scan: Volume, config: PreprocessConfig) -> None:
    module.preprocess(scan, config)


def _round_trip(module: Any, scan: Volume, config: PreprocessConfig) -> None:
    work, _, record = module.preprocess(scan, config)
    probs = np.full((CHANNELS, *work.shape), 0.25, dtype=np.float32)
    placed = Volume(probs, record.grid.spacing, record.grid.origin, record.grid.direction)
    module.restore(placed, record, "linear", [1.0] + [0.0] * (CHANNELS - 1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--baseline", default="dee432a", help="git revision, or 'none'")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    threads = setup_threads(args.threads)
    old = None if args.baseline == "none" else load_baseline(args.baseline)
    scan = make_scan()
    print(f"scan {CHANNELS}x{'x'.join(map(str, SHAPE))} float32, {threads} threads")
    rows: list[tuple[str, Timing, Timing | None]] = []
    cpu_rows: list[tuple[str, list[float]]] = []
    for interpolation in ("linear", "bspline"):
        config = PreprocessConfig(
            orient="LPS", target_spacing=(1.2, 1.2, 2.0), interpolation=interpolation
        )
        work, _, record = preprocessing.preprocess(scan, config)
        if old is not None:
            before, _, old_record = old.preprocess(scan, config)
            fill = [1.0] + [0.0] * (CHANNELS - 1)
            probs = work.with_array(np.random.default_rng(1).random(work.array.shape, np.float32))
            restored = preprocessing.restore(probs, record, "linear", fill).array
            restored_old = old.restore(probs, old_record, "linear", fill).array
            print(
                f"{interpolation}: grid {work.shape}, max |new - old| preprocess "
                f"{float(np.abs(work.array - before.array).max()):.3g}, restore "
                f"{float(np.abs(restored - restored_old).max()):.3g}"
            )
            del before, probs, restored, restored_old
        for name, run in (("preprocess", _preprocess), ("preprocess + restore", _round_trip)):
            modules = [preprocessing] if old is None else [preprocessing, old]
            timings = time_alternately(
                [lambda m=m, c=config, r=run: r(m, scan, c) for m in modules], args.repeat
            )
            label = f"{name} ({interpolation})"
            rows.append((label, timings[0][0], timings[1][0] if old is not None else None))
            cpu_rows.append((label, [t[1] for t in timings]))
        del work, record
    print_table(rows, ours_name="new", peer_name="old")
    print("\nCPU seconds (median):")
    for label, cpu in cpu_rows:
        print(f"{label:<34} " + " ".join(f"{v:>10.3f}" for v in cpu))


if __name__ == "__main__":
    main()
