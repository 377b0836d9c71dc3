"""``plan_recipe``: a paper's recipe adapted to a dataset's fingerprint and to a device.

What is changed for the data (each with its reason in the written recipe):

* ``data``: the dataset's folder, layout, labels and channels (regions kept when they fit the
  labels);
* ``preprocess``: the target spacing (:func:`volseg.plan.spacing.target_spacing`); the
  normalisation (CT: clip to the pooled foreground 0.5-99.5th percentiles, then z-score; MR and
  other images: the recipe's per-case z-score); a paper's fixed crop size dropped;
* ``model``: 2-D or 3-D; the depth for the patch (:mod:`volseg.plan.nets`); the channels from the
  data; on a CPU budget, the width;
* ``train``: patch and batch size that fit the memory (``gpu:``) or the time (``cpu:``), both
  measured by trial steps (:mod:`volseg.plan.memory`); on a CPU budget the number of steps;
* ``infer.window``: the training patch.

What stays as the paper has it: the loss, the net's blocks and skips, the optimiser and its
schedule, the augmentation (flip axes limited to the planned dimensions).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from volseg.fingerprint import Fingerprint
from volseg.plan import nets
from volseg.plan.budget import Budget, training_length
from volseg.plan.memory import SAFETY, Trial, TrialResult, run_trial
from volseg.plan.spacing import shape_at, target_spacing

__all__ = ["Plan", "paper_recipe", "plan_recipe"]

_CONFIGS = Path(__file__).resolve().parents[1] / "recipes"  # configs/ links here

MAX_TRIALS = 6
"""Trial steps a plan may run (each costs seconds on a CPU)."""

MIN_PATCH = 16
"""No patch axis is shrunk below this many voxels (or one divisor step, if larger)."""

TIME_STEPS = 3
"""Timed steps of a CPU-budget trial; the fastest counts (other jobs on a shared machine only
ever slow a step down)."""

VERIFY_BYTES = 4 * 2**30
"""On a CPU machine, the chosen patch of a ``gpu:`` plan is checked by a trial step of its own
when its predicted peak is below this (larger ones would take minutes of CPU time)."""


@dataclass(frozen=True)
class Plan:
    """A planned recipe.

    Attributes:
        recipe: the recipe as plain nested data (what ``volseg.config.config_from_dict`` reads).
        notes: dotted key -> the reason for its value (written as a comment after the key).
        header: the comment block at the top: what was changed, kept and given up, the trials.
        trials: every trial step run, with its result.
    """

    recipe: dict[str, Any]
    notes: dict[str, str]
    header: tuple[str, ...]
    trials: tuple[tuple[Trial, TrialResult], ...]

    def yaml(self) -> str:
        """The recipe as YAML with its reasons as comments."""
        from volseg.plan.recipe import recipe_yaml

        return recipe_yaml(self.recipe, self.notes, self.header)


def paper_recipe(net: str) -> Path:
    """The paper recipe ``configs/<file>.yaml`` of a registered net (``volseg/recipes/`` in an
    installed package; ``configs/`` of a checkout links there)."""
    if net not in nets.PAPER_RECIPES:
        raise ValueError(
            f"no paper recipe for net {net!r}; known: {', '.join(sorted(nets.PAPER_RECIPES))} "
            "(or give one with --recipe)"
        )
    path = _CONFIGS / nets.PAPER_RECIPES[net]
    if not path.is_file():
        raise ValueError(f"{path}: paper recipe not found (give one with --recipe)")
    return path


def _mb(n: float) -> str:
    return f"{n / 1e6:.0f} MB" if n < 1e9 else f"{n / 1e9:.2f} GB"


def _itk_axes(n: int) -> str:
    """``(x, y, z)`` or ``(x, y)``: the order of ``preprocess.target_spacing``."""
    return "(x, y, z)" if n == 3 else "(x, y)"


def _x(values: Sequence[float]) -> str:
    return "x".join(f"{v:.4g}" for v in values)


class _Planner:
    def __init__(
        self,
        fp: Fingerprint,
        net: str,
        budget: Budget,
        recipe: dict[str, Any],
        dims: str,
        device: str,
        log: Callable[[str], None],
        runner: Callable[[Trial], TrialResult],
    ) -> None:
        self.fp, self.net, self.budget, self.r = fp, net, budget, recipe
        self.runner = runner
        self.dims_arg, self.device, self.log = dims, device, log
        self.notes: dict[str, str] = {}
        self.changed: dict[str, str] = {}
        self.gave_up: list[str] = []
        self.trials: list[tuple[Trial, TrialResult]] = []

    # -- helpers ---------------------------------------------------------------------------
    def section(self, name: str) -> dict[str, Any]:
        value = self.r.setdefault(name, {})
        if value is None:
            value = self.r[name] = {}
        return value

    def set(
        self, path: str, value: Any, note: str | None = None, change: str | None = None
    ) -> None:
        *parents, key = path.split(".")
        node = self.r
        for p in parents:
            if node.get(p) is None:
                node[p] = {}
            node = node[p]
        old = node.get(key)
        node[key] = value
        if note:
            self.notes[path] = note
        if change is not None or old != value:
            self.changed[path] = f"{path}: {change or note or value}"

    def drop(self, path: str, why: str) -> None:
        *parents, key = path.split(".")
        node = self.r
        for p in parents:
            node = node.get(p) or {}
        if key in node:
            del node[key]
            self.changed[path] = f"{path} removed: {why}"

    def trial(
        self,
        kwargs: dict[str, Any],
        patch: tuple[int, ...],
        batch: int,
        steps: int = 1,
        amp: str | None = None,
    ) -> TrialResult:
        if len(self.trials) >= MAX_TRIALS:
            raise _OutOfTrials
        loss = self.r.get("loss") or {}
        t = Trial(
            net=self.net,
            kwargs=kwargs,
            patch=patch,
            batch=batch,
            loss=str(loss.get("name", "vnet_dice")),
            loss_kwargs=dict(loss.get("kwargs") or {}),
            regions=self.out_channels if self.regions else 0,
            optimizer=str(((self.r.get("train") or {}).get("optimizer") or {}).get("name", "adam")),
            amp=amp or str(((self.r.get("train") or {}).get("runtime") or {}).get("amp", "none")),
            device=self.device,
            threads=self.budget.threads,
            steps=steps,
        )
        result = self.runner(t)
        self.trials.append((t, result))
        self.log(
            f"  trial {len(self.trials)}: patch {_x(patch)} x batch {batch}, "
            f"{nets.first_channels(self.net, kwargs)} first-level channels: peak "
            f"{_mb(result.peak_bytes)}, {result.seconds:.2f} s/step"
        )
        return result

    # -- the steps -------------------------------------------------------------------------
    def data(self) -> None:
        d = self.fp.dataset
        self.set("data.root", d.root, "the fingerprinted dataset")
        self.set("data.layout", d.layout)
        labels = list(d.declared_labels or [0, *(lab.label for lab in self.fp.summary.labels)])
        self.labels = labels
        self.set("data.labels", labels, "from the dataset")
        data = self.section("data")
        if "channels" in data:
            self.set("data.channels", list(d.channel_names), "the dataset's channels, in order")
        self.regions = None
        if data.get("regions") is not None:
            from volseg.regions import get_regions

            try:
                regions = get_regions(data["regions"])
                if {v for r in regions for v in r.labels} - set(labels):
                    raise ValueError
                self.regions = regions
                self.notes["data.regions"] = "the paper's regions fit the dataset's labels"
            except ValueError:
                self.drop("data.regions", f"the paper's regions do not fit labels {labels}")
        self.in_channels = len(d.channel_names) or 1
        self.out_channels = len(self.regions) if self.regions else len(labels)

    def dims(self) -> None:
        kwargs = self.section("model").setdefault("kwargs", {}) or {}
        self.r["model"]["kwargs"] = kwargs
        defaults = nets.constructor_defaults(self.net)
        paper_dims = int(kwargs.get("spatial_dims", defaults.get("spatial_dims", 3)))
        self.spacing_choice = sc = target_spacing(
            [c.spacing for c in self.fp.cases], [c.shape for c in self.fp.cases]
        )
        takes = nets.takes_spatial_dims(self.net)
        if self.fp.dataset.dims == 2:
            dims, why = 2, "2-D images"
        elif self.dims_arg in ("2", "3"):
            dims, why = int(self.dims_arg), f"--dims {self.dims_arg}"
        elif paper_dims == 3 and sc.thick_axis == 0 and takes:  # slices: the first array axis
            dims, why = (
                2,
                (
                    "2-D slices: the data is strongly anisotropic ("
                    + sc.reason.split(", but ")[-1]
                    + "); the net is built in 2-D too"
                ),
            )
        else:
            dims, why = paper_dims, "the paper's dimensions"
        if dims != paper_dims and not takes:
            raise ValueError(f"net {self.net} is {paper_dims}-D only; cannot plan it in {dims}-D")
        self.ndim = dims
        if takes and (dims != paper_dims or "spatial_dims" in kwargs):
            self.set("model.kwargs.spatial_dims", dims, why if dims != paper_dims else None)
        for key in ("in_channels", "out_channels"):
            if key in kwargs:
                self.drop(f"model.kwargs.{key}", "taken from the data")

    def spacing(self) -> None:
        sc = self.spacing_choice
        spacing, shape = list(sc.spacing), list(sc.median_shape)
        if self.fp.dataset.dims == 3 and self.ndim == 2:  # slices along the first array axis
            spacing, shape, mspacing = spacing[1:], shape[1:], list(sc.median_spacing)[1:]
        else:
            mspacing = list(sc.median_spacing)
        self.spacing_zyx = spacing
        self.median_shape = shape_at(shape, mspacing, spacing)
        self.set(
            "preprocess.target_spacing",
            list(reversed(spacing)),
            f"{_itk_axes(len(spacing))} mm: {sc.reason}"
            + ("; z kept (2-D slices)" if len(spacing) < len(sc.spacing) else ""),
        )
        self.drop("preprocess.crop_size", "the paper's fixed crop fits its dataset only")

    def normalisation(self) -> None:
        channels = self.fp.summary.channels
        pre = self.section("preprocess")
        if channels and all(c.modality == "CT" for c in channels):
            lows = [c.intensity.p0_5 for c in channels if c.intensity.p0_5 is not None]
            highs = [c.intensity.p99_5 for c in channels if c.intensity.p99_5 is not None]
            if lows and highs:
                window = [round(float(min(lows)), 3), round(float(max(highs)), 3)]
                self.set(
                    "preprocess.clip_window",
                    window,
                    "CT: the pooled foreground 0.5th-99.5th percentiles (nnU-Net's CT clip)",
                )
                self.set("preprocess.normalize", "zscore", "CT: z-score after clipping")
                if pre.get("n4"):
                    self.set("preprocess.n4", False, "CT has no MR bias field")
                return
        kinds = ", ".join(f"{c.name} {c.modality}" for c in channels)
        if pre.get("normalize", "zscore_nonzero") not in ("zscore", "zscore_nonzero", "percentile"):
            self.set("preprocess.normalize", "zscore_nonzero", f"{kinds}: per-case z-score")
        else:
            self.notes["preprocess.normalize"] = f"{kinds}: the paper's per-case normalisation"
        if pre.get("clip_window") is not None:
            self.drop("preprocess.clip_window", f"not CT ({kinds})")

    # -- patch, depth, width ---------------------------------------------------------------
    def configure(
        self, patch: Sequence[float], width: float
    ) -> tuple[tuple[int, ...], dict[str, Any]]:
        """Round ``patch`` up to the net's step for the depth it allows; narrow by ``width``."""
        base = dict(self.r["model"]["kwargs"])
        base.update(in_channels=self.in_channels, out_channels=self.out_channels)
        paper = nets.downsamplings(self.net, base)
        if paper is None:
            from volseg.nn import create_model
            from volseg.nn.network import check_network

            divisor = check_network(create_model(self.net, **base)).divisor
            kw, step = base, divisor
        else:
            downs = nets.depth_for(int(min(patch)), paper)
            kw = nets.with_downsamplings(self.net, base, downs)
            step = nets.patch_step(self.net, kw, 2**downs)
        if width != 1 and nets.first_channels(self.net, kw) is not None:
            kw = nets.with_width(self.net, kw, width)
        size = tuple(max(step, math.ceil(p / step - 1e-9) * step) for p in patch)
        if self.net == "segresnet_vae" and kw.get("vae", True):
            kw["vae_input_size"] = list(size)
        return size, kw

    def shrink(
        self, patch: tuple[int, ...], spacing: Sequence[float], width: float
    ) -> tuple[int, ...] | None:
        """One step smaller: the axis with the largest extent in mm loses one step."""
        _, kw = self.configure(patch, width)
        step = nets.patch_step(self.net, kw, 2 ** (nets.downsamplings(self.net, kw) or 0))
        order = sorted(range(len(patch)), key=lambda i: -patch[i] * spacing[i])
        for i in order:
            if patch[i] - step >= max(step, MIN_PATCH):
                new = list(patch)
                new[i] -= step
                return tuple(new)
        return None

    def plan_memory(self) -> tuple[tuple[int, ...], dict[str, Any], int, str]:
        budget = SAFETY * (self.budget.memory_bytes or 0)
        batch = int(self.section("train").get("batch_size", 2))
        full, _ = self.configure(self.median_shape, 1.0)
        # two trial steps at the smallest patch of the full depth fit memory = a + b * samples
        paper = nets.downsamplings(self.net, {**self.r["model"]["kwargs"]})
        smallest = [min(nets.MIN_EDGE * 2 ** (paper or 0), f) for f in full]
        small, kw_small = self.configure(smallest, 1.0)
        one = self.trial(kw_small, small, 1)
        two = self.trial(kw_small, small, 2)
        voxels = math.prod(small)
        per_voxel = max(1.0, (two.peak_bytes - one.peak_bytes) / voxels)
        fixed_act = one.peak_bytes - one.static_bytes - per_voxel * voxels

        def predict(patch: tuple[int, ...], kw: dict[str, Any], b: int) -> float:
            return (
                _static_bytes(self.net, kw, self.r) + fixed_act + per_voxel * b * math.prod(patch)
            )

        patch = full
        while True:
            size, kw = self.configure(patch, 1.0)
            if predict(size, kw, batch) <= budget:
                break
            smaller = self.shrink(size, self.spacing_zyx, 1.0)
            if smaller is None:
                if batch == 1:
                    raise ValueError(
                        f"--budget {self.budget}: even patch {_x(size)} x batch 1 needs "
                        f"{_mb(predict(size, kw, 1))} (planned to {SAFETY:.0%} of the budget)"
                    )
                batch -= 1
                self.gave_up.append(
                    f"batch size lowered to {batch}: the smallest patch did not fit"
                )
                patch = full
                continue
            patch = smaller
        predicted = predict(size, kw, batch)
        how = (
            f"predicted {_mb(predicted)} from trial steps at {_x(small)} x batch 1 and 2 "
            f"({_mb(per_voxel)} per sample-voxel x 1e6)"
        )
        verify = self.device == "cuda" or predicted < VERIFY_BYTES
        while verify:
            same = [r for t, r in self.trials if (t.kwargs, t.patch, t.batch) == (kw, size, batch)]
            try:
                measured = same[0].peak_bytes if same else self.trial(kw, size, batch).peak_bytes
            except _OutOfTrials:
                break
            how = f"measured {_mb(measured)} by a trial step (predicted {_mb(predicted)})"
            if measured <= budget:
                break
            smaller = self.shrink(size, self.spacing_zyx, 1.0)
            if smaller is None:
                raise ValueError(
                    f"--budget {self.budget}: no patch fits (measured {_mb(measured)})"
                )
            size, kw = self.configure(smaller, 1.0)
            predicted = predict(size, kw, batch)
        why = (
            f"largest that fits {SAFETY:.0%} of {_mb(self.budget.memory_bytes or 0)} with batch "
            f"{batch} ({how}); median shape {_x(self.median_shape)} at the target spacing"
        )
        return size, kw, batch, why

    def plan_time(self) -> tuple[tuple[int, ...], dict[str, Any], int, str, float]:
        """The first rung of the ladder (width, batch, spacing, patch: what is given up, in
        that order) whose measured step fits the time; found from a cheap reference step and
        a cost model ``width^2 x batch x voxels``, corrected by each measured rung."""
        allowed = self.budget.step_seconds()
        batch = int(self.section("train").get("batch_size", 2))
        first = nets.first_channels(self.net, {**self.r["model"]["kwargs"]})
        widths = [1.0]
        while first is not None and first * widths[-1] / 2 >= nets.MIN_CHANNELS:
            widths.append(widths[-1] / 2)
        spacing = list(self.spacing_zyx)
        full, _ = self.configure(self.median_shape, 1.0)
        ladder: list[_Rung] = [
            _Rung(
                w,
                batch,
                tuple(spacing),
                self.configure(self.median_shape, w)[0],
                "the paper's width" if w == 1 else f"width x{w:g}",
            )
            for w in widths
        ]
        w, b = widths[-1], batch
        while b > 2:
            b = max(2, b // 2)
            ladder.append(_Rung(w, b, tuple(spacing), full, f"batch {b}"))
        coarse = list(spacing)  # finest axes first (nnU-Net's low-resolution stage), <= 2x
        while True:
            finer = [i for i in range(len(coarse)) if coarse[i] < max(coarse) - 1e-9]
            axes = finer or list(range(len(coarse)))
            nxt = [
                (min(c * 1.26, max(coarse)) if finer else c * 1.26) if i in axes else c
                for i, c in enumerate(coarse)
            ]
            if any(n > 2 * s + 1e-9 for n, s in zip(nxt, spacing, strict=True)):
                break
            coarse = [round(c, 4) for c in nxt]
            size, _ = self.configure(shape_at(self.median_shape, spacing, coarse), w)
            ladder.append(
                _Rung(
                    w,
                    b,
                    tuple(coarse),
                    size,
                    f"spacing {_x(list(reversed(coarse)))} mm {_itk_axes(len(coarse))}",
                )
            )
        size = ladder[-1].patch
        while (smaller := self.shrink(size, coarse, w)) is not None:
            size = smaller
            ladder.append(_Rung(w, b, tuple(coarse), size, f"patch {_x(size)}"))

        measured: dict[int, float] = {}
        amp = str(((self.r.get("train") or {}).get("runtime") or {}).get("amp", "none"))
        # the reference: a small patch at the last width, cheap on any CPU
        ref_size, ref_kw = self.configure([min(nets.MIN_EDGE * 8, f) for f in full], widths[-1])
        ref = self.trial(ref_kw, ref_size, batch, steps=TIME_STEPS)
        ref_cost = widths[-1] ** 2 * batch * math.prod(ref_size)
        scale = ref.seconds / ref_cost
        if amp == "none" and self.device == "cpu" and ref.seconds >= 0.25 and _bf16_fast():
            bf16 = self.trial(ref_kw, ref_size, batch, steps=TIME_STEPS, amp="bf16")
            if bf16.seconds < 0.8 * ref.seconds:
                self.set(
                    "train.runtime.amp",
                    "bf16",
                    f"measured {ref.seconds:.2f} s per step in fp32, {bf16.seconds:.2f} s with "
                    "bf16 autocast (this CPU has native bf16)",
                )
                scale = bf16.seconds / ref_cost
        lo, hi = -1, len(ladder)  # rungs known too slow / known to fit
        while True:
            candidates = [i for i in range(lo + 1, hi) if ladder[i].cost * scale <= allowed]
            index = candidates[0] if candidates else hi - 1
            if index <= lo or index in measured:
                break
            rung = ladder[index]
            size_i, kw_i = self.configure(rung.patch, rung.width)
            try:
                result = self.trial(kw_i, size_i, rung.batch, steps=TIME_STEPS)
            except _OutOfTrials:
                break
            measured[index] = result.seconds
            scale = result.seconds / rung.cost
            if result.seconds <= allowed:
                hi = index
            else:
                lo = index
            if hi - lo <= 1:
                break
        fitting = [i for i, s in measured.items() if s <= allowed]
        index = min(fitting) if fitting else max(measured, default=len(ladder) - 1)
        seconds = measured.get(index, ladder[index].cost * scale)
        rung = ladder[index]
        size, kw = self.configure(rung.patch, rung.width)
        given = [r.label for r in ladder[1 : index + 1] if not r.label.startswith("patch ")]
        if rung.label.startswith("patch ") and rung.patch != ladder[0].patch:
            before = next(
                r.patch for r in reversed(ladder[:index]) if not r.label.startswith("patch ")
            )
            given.append(f"patch {_x(before)} shrunk to {_x(size)} (largest mm axis first)")
        self.gave_up += [g for g in given if g != "the paper's width"]
        if list(rung.spacing) != list(self.spacing_zyx):
            self.spacing_zyx = list(rung.spacing)
            self.set(
                "preprocess.target_spacing",
                list(reversed(rung.spacing)),
                f"{_itk_axes(len(spacing))} mm: coarser than the median "
                f"{_x(list(reversed(spacing)))} mm "
                "to fit the CPU time (finest axes first, as nnU-Net's low-resolution stage)",
            )
        fits = "fits" if seconds <= allowed else "is the fastest tried; it does NOT fit"
        how = "measured" if index in measured else "predicted (out of trial steps)"
        why = (
            f"{seconds:.2f} s per step {how} on {self.budget.threads} thread(s) {fits} "
            f"{allowed:.2f} s ({self.budget.minutes:g} min for >= 400 steps, 75% of the time "
            f"for steps); median shape {_x(shape_at(self.median_shape, spacing, rung.spacing))} "
            "at this spacing"
        )
        return size, kw, rung.batch, why, seconds

    def run(self) -> Plan:
        recipe_name = (self.r.get("model") or {}).get("name")
        if recipe_name != self.net:
            raise ValueError(f"the recipe trains model {recipe_name!r}, not --net {self.net}")
        self.data()
        self.dims()
        self.spacing()
        self.normalisation()
        train = self.section("train")
        paper_kwargs = dict(self.r["model"]["kwargs"])
        if self.budget.kind == "gpu":
            size, kw, batch, why = self.plan_memory()
            seconds = None
        else:
            size, kw, batch, why, seconds = self.plan_time()
        kw = {k: v for k, v in kw.items() if k not in ("in_channels", "out_channels")}
        for key, value in kw.items():
            old = paper_kwargs.get(key, nets.constructor_defaults(self.net).get(key))
            if _plain(value) != _plain(old):
                self.set(f"model.kwargs.{key}", _plain(value), self._kw_note(key, old, value, size))
        self.set("train.patch_size", list(size), why, change=f"patch {_x(size)}")
        self.set("train.batch_size", batch, None)
        self.set("infer.window", list(size), "sliding window of the training patch")
        transforms = (self.r.get("augment") or {}).get("transforms") or []
        for t in transforms:
            axes = (t.get("kwargs") or {}).get("axes")
            if t.get("name") == "flip" and axes is not None and any(a >= self.ndim for a in axes):
                t["kwargs"]["axes"] = [a for a in axes if a < self.ndim]
                self.changed["augment"] = f"augment: flip axes limited to {self.ndim}-D"
        if seconds is not None and self.budget.minutes is not None:
            epochs, per_epoch = training_length(
                seconds,
                self.budget.minutes,
                int(train.get("epochs", 50)),
                int(train.get("iterations_per_epoch", 20)),
            )
            self.set(
                "train.epochs",
                epochs,
                f"{epochs * per_epoch} steps x {seconds:.2f} s fit "
                f"75% of {self.budget.minutes:g} min",
            )
            self.set("train.iterations_per_epoch", per_epoch)
            self.set("train.stopping.max_minutes", float(self.budget.minutes), "the CPU budget")
            self.set("train.validate_every", max(1, epochs // 10), "about 10 validations")
        self.r["run_dir"] = self.r.get("run_dir", f"runs/plan_{self.net}")
        return Plan(self.r, self.notes, tuple(self.header(size)), tuple(self.trials))

    def _kw_note(self, key: str, old: Any, value: Any, size: tuple[int, ...]) -> str:
        if key == "vae_input_size":
            return "the VAE branch is built for the training patch"
        if key == "spatial_dims":
            return self.notes.get("model.kwargs.spatial_dims", "")
        downs = nets.downsamplings(self.net, {key: value})
        if (
            key in nets.KNOBS[self.net].depth_keys + nets.KNOBS[self.net].up_keys
            and downs is not None
        ):
            return (
                f"paper {_plain(old)}: {downs} downsampling(s) keep >= {nets.MIN_EDGE} voxels of "
                f"patch {_x(size)} in the deepest map"
            )
        return f"paper {_plain(old)}: narrowed to fit the CPU time"

    def header(self, size: tuple[int, ...]) -> list[str]:
        d = self.fp.dataset
        lines = [
            f"volseg plan: {self.net} for {d.root} ({d.cases} cases, {d.layout} layout), "
            f"budget {self.budget}",
            f"from the paper recipe {self.recipe_source}",
            "",
            "changed for the data and the device:",
            *(f"  - {c}" for c in self.changed.values()),
        ]
        if self.gave_up:
            lines += [
                "given up to fit the budget (in this order):",
                *(f"  - {g}" for g in self.gave_up),
            ]
        loss = (self.r.get("loss") or {}).get("name")
        lines += [
            "kept from the paper: the loss "
            f"({loss}), the net's blocks and skips, the optimiser and schedule, the augmentation",
            "trial steps (forward + backward + optimiser step on a random batch, after a warm-up "
            "step):",
        ]
        for t, res in self.trials:
            lines.append(
                f"  - patch {_x(t.patch)} x batch {t.batch}, first level "
                f"{nets.first_channels(self.net, t.kwargs)} channels, {t.amp}: peak "
                f"{_mb(res.peak_bytes)} ({res.method}), {res.seconds:.2f} s/step"
                + (f" on {t.threads} thread(s)" if t.threads else "")
            )
        if self.budget.kind == "gpu" and self.device == "cpu":
            lines.append(
                "  (measured on the CPU: activation memory without cuDNN workspaces or the CUDA "
                f"context; planned to {SAFETY:.0%} of the budget)"
            )
        return lines

    recipe_source = ""


@dataclass(frozen=True)
class _Rung:
    """One candidate of a CPU plan: what it keeps, and what it gave up (``label``)."""

    width: float
    batch: int
    spacing: tuple[float, ...]
    patch: tuple[int, ...]
    label: str

    @property
    def cost(self) -> float:
        """Relative step time: convolutions cost width^2 x samples x voxels."""
        return self.width**2 * self.batch * math.prod(self.patch)


def _bf16_fast() -> bool:
    """Whether this CPU has native bf16 (oneDNN's fast path); measured before it is used."""
    import torch

    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


class _OutOfTrials(Exception):
    """The plan has run :data:`MAX_TRIALS` trial steps."""


def _plain(value: Any) -> Any:
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    return value


def _static_bytes(net: str, kwargs: dict[str, Any], recipe: dict[str, Any]) -> float:
    """Weights + gradients + optimiser state of the net built with ``kwargs``, in bytes."""
    import torch

    from volseg.nn import create_model

    with torch.device("meta"):
        model = create_model(net, **kwargs)
    params = sum(p.numel() * p.element_size() for p in model.parameters())
    optimizer = str(((recipe.get("train") or {}).get("optimizer") or {}).get("name", "adam"))
    states = {"adam": 2, "adamw": 2, "sgd": 1}.get(optimizer, 0)
    return float(params * (1 + states))


def plan_recipe(
    fingerprint: Fingerprint,
    net: str,
    budget: Budget,
    *,
    recipe: str | Path | None = None,
    dims: str = "auto",
    device: str | None = None,
    log: Callable[[str], None] = lambda _: None,
    runner: Callable[[Trial], TrialResult] = run_trial,
) -> Plan:
    """Plan ``net``'s paper recipe for the fingerprinted dataset and the budget.

    Args:
        fingerprint: the dataset's :class:`~volseg.fingerprint.Fingerprint`.
        net: a registered net (``volseg.nn.list_models()``).
        budget: ``Budget.parse("gpu:24GB")`` or ``Budget.parse("cpu:2", minutes=30)``.
        recipe: the recipe to start from; default the net's paper recipe in ``configs/``.
        dims: ``auto`` (the paper's, or 2-D slices for strongly anisotropic data where the net
            allows), ``2`` or ``3``.
        device: where trial steps run: ``cuda`` for a ``gpu`` budget when CUDA is available,
            else ``cpu``.
        log: called with one line per trial step.
        runner: runs a trial step (:func:`~volseg.plan.memory.run_trial`; tests pass a model).

    Warning:
        Runs up to :data:`MAX_TRIALS` real training steps (seconds each on a CPU).
    """
    from volseg.nn import list_models

    if net not in list_models():
        raise ValueError(f"--net {net!r}: not a registered net; known: {', '.join(list_models())}")
    path = Path(recipe) if recipe is not None else paper_recipe(net)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except FileNotFoundError:
        raise ValueError(f"{path}: recipe not found") from None
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: top level must be a mapping")
    if dims not in ("auto", "2", "3"):
        raise ValueError(f"--dims {dims!r}: expected auto, 2 or 3")
    if device is None:
        import torch

        device = "cuda" if budget.kind == "gpu" and torch.cuda.is_available() else "cpu"
    planner = _Planner(fingerprint, net, budget, copy.deepcopy(raw), dims, device, log, runner)
    planner.recipe_source = str(path)
    plan = planner.run()
    from volseg.config import config_from_dict

    config_from_dict(copy.deepcopy(plan.recipe), warn_moved=False)  # a recipe train accepts
    return plan
