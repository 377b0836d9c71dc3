"""``fingerprint_dataset``: read every case once, in a pool of processes, and pool the numbers.

Each case is read (its image files and label map, once each) and measured in a worker process
(:func:`volseg.fingerprint.stats.case_stats`); the dataset's summary and outliers are computed
from the cases in ``case_id`` order, so one worker and two give equal fingerprints.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Sequence
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

import numpy as np

from volseg.data.layouts import Case, Dataset, find_cases
from volseg.fingerprint.outliers import find_outliers
from volseg.fingerprint.schema import FORMAT, CaseFingerprint, DatasetInfo, Fingerprint
from volseg.fingerprint.stats import align_labels, case_stats, summarize
from volseg.io import Volume, VolumeReadError, read_label, read_volume

__all__ = ["fingerprint_case", "fingerprint_dataset"]

_Result = tuple[CaseFingerprint, list[np.ndarray]]


def fingerprint_case(case: Case, channel_names: Sequence[str], classes: Sequence[int]) -> _Result:
    """Read one case (each file once) and measure it; see :func:`~.stats.case_stats`.

    Raises:
        VolumeReadError: naming the file, when one cannot be read or the label map is not on
            the images' grid.
    """
    image = read_volume(list(case.images))
    label: Volume | None = None
    if case.label is not None:
        label = read_label(case.label)
        diff = image.grid_difference(label)
        if diff:
            raise VolumeReadError(f"{case.label}: grid differs from {case.images[0]} ({diff})")
        if label.channels != 1:
            raise VolumeReadError(f"{case.label}: label map has {label.channels} channels")
    files = (tuple(str(p) for p in case.images), None if case.label is None else str(case.label))
    return case_stats(case.case_id, image, label, channel_names, classes, files)


def _run(
    cases: Sequence[Case],
    channel_names: Sequence[str],
    classes: Sequence[int],
    workers: int,
    progress: bool,
) -> list[_Result]:
    from tqdm import tqdm

    bar = tqdm(total=len(cases), desc="fingerprint", unit="case", disable=not progress)
    results: list[_Result | None] = [None] * len(cases)
    try:
        if workers <= 1 or len(cases) == 1:
            for i, case in enumerate(cases):
                results[i] = fingerprint_case(case, channel_names, classes)
                bar.update()
        else:
            # spawn: a clean interpreter per worker, safe whatever threads the parent runs
            context = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(min(workers, len(cases)), mp_context=context) as pool:
                futures: dict[Future[_Result], int] = {
                    pool.submit(fingerprint_case, case, channel_names, classes): i
                    for i, case in enumerate(cases)
                }
                try:
                    for future in as_completed(futures):
                        results[futures[future]] = future.result()
                        bar.update()
                except BrokenProcessPool:
                    raise RuntimeError(
                        "fingerprint: a worker process died (out of memory? or called from "
                        "a script without an `if __name__ == '__main__':` guard, or from "
                        "stdin); try workers=1"
                    ) from None
                except BaseException:
                    for future in futures:
                        future.cancel()
                    raise
    finally:
        bar.close()
    return [r for r in results if r is not None]


def fingerprint_dataset(
    dataset: Dataset | str | Path,
    workers: int = 2,
    progress: bool = True,
    *,
    layout: str = "auto",
) -> Fingerprint:
    """The fingerprint of a dataset: per case and over the cases, with the outliers.

    Args:
        dataset: a :class:`~volseg.data.layouts.Dataset`, or a path that
            :func:`~volseg.data.layouts.find_cases` reads with ``layout``.
        workers: processes reading and measuring cases (1: in this process). The result does
            not depend on it.
        progress: show a progress bar (tqdm, on stderr).
        layout: the layout for a path (``auto``: detected).

    Raises:
        LayoutError, VolumeReadError: naming the dataset or the file that cannot be read.
        ValueError: cases that disagree in their number of dimensions or channels.

    Warning:
        Every voxel of every case is read: minutes for a large dataset. Workers are started
        with ``spawn`` (about a second each; SimpleITK's thread pool does not survive a
        ``fork``), so a script calling this with ``workers > 1`` needs the usual
        ``if __name__ == "__main__":`` guard; for a handful of small cases one worker is faster.
    """
    from volseg import __version__

    if not isinstance(dataset, Dataset):
        dataset = find_cases(dataset, layout=layout)
    if workers < 1:
        raise ValueError(f"workers: expected 1 or more, got {workers}")
    declared = dataset.labels
    classes = tuple(v for v in (declared or ()) if v > 0)
    results = _run(dataset.cases, dataset.channel_names, classes, workers, progress)
    cases = align_labels([r[0] for r in results])
    samples = [r[1] for r in results]
    dims = {len(c.shape) for c in cases}
    if len(dims) > 1:
        odd = next(c for c in cases if len(c.shape) != len(cases[0].shape))
        raise ValueError(
            f"{odd.images[0]}: {len(odd.shape)}-D, but case {cases[0].case_id} is "
            f"{len(cases[0].shape)}-D; a dataset's cases share their number of dimensions"
        )
    summary = summarize(cases, samples)
    ndim = len(cases[0].shape)
    info = DatasetInfo(
        root=str(Path(dataset.root).resolve()),
        layout=dataset.layout,
        channel_names=tuple(dataset.channel_names),
        declared_labels=None if declared is None else tuple(int(v) for v in declared),
        dims=ndim,
        axes="zyx"[3 - ndim :],
        size_unit="mL" if ndim == 3 else "mm2",
        cases=len(cases),
        labeled=sum(1 for c in cases if c.foreground_voxels is not None),
    )
    return Fingerprint(
        format=FORMAT,
        volseg_version=__version__,
        dataset=info,
        summary=summary,
        outliers=find_outliers(cases, summary),
        cases=tuple(cases),
    )
