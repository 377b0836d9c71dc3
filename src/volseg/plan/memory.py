"""A trial training step: the peak memory and the time of one forward + backward + update.

The planner does not guess what fits: it builds the net, the loss and the optimiser of the
recipe, feeds a random batch of the candidate patch size and measures one full training step
(forward under the recipe's autocast, loss, backward, optimiser step), after one warm-up step
that creates the optimiser state and the kernels' primitives.

* **CUDA**: ``torch.cuda.max_memory_allocated`` around the step (everything the caching
  allocator handed out: weights, gradients, optimiser state, activations, the batch); cuDNN
  workspaces come from the same allocator and are included.
* **CPU** (the stand-in when no GPU is at hand): the step runs in a fresh Python process with
  glibc's ``MALLOC_MMAP_THRESHOLD_`` fixed at 64 KiB, so every tensor buffer is its own
  ``mmap`` and goes back to the system when freed; the peak resident set of the step
  (``VmHWM`` after resetting it, minus the resident set just before) is then what the step
  allocated at its peak: gradients, activations, oneDNN scratch. The weights, the optimiser
  state and the batch, allocated before, are counted exactly from their tensors and added.
  This is the CPU's activation memory, not a GPU's: a ``gpu:XGB`` budget planned on a CPU
  machine excludes the cuDNN workspaces and the CUDA context (about 0.3-0.5 GB outside
  ``max_memory_allocated``), which is why the planner plans to :data:`SAFETY` of a GPU budget.

Run as ``python -m volseg.plan.memory '<trial as JSON>'`` (what :func:`run_trial` does on the
CPU) it prints the result as one JSON line.
"""

from __future__ import annotations

import dataclasses
import gc
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Any

__all__ = ["SAFETY", "Trial", "TrialResult", "measure", "profiler_peak", "run_trial"]

SAFETY = 0.85
"""Share of a memory budget the planner fills: the rest is left for what a trial does not see
(cuDNN workspaces, allocator fragmentation, the CUDA context, a validation pass)."""


@dataclass(frozen=True)
class Trial:
    """One candidate training step.

    Attributes:
        net: registered net name; kwargs: its arguments, ``in_channels``, ``out_channels`` and
            ``spatial_dims`` included.
        patch: spatial size of one sample (array order); batch: samples per step.
        loss, loss_kwargs: the registered loss and its arguments.
        regions: 0 for class-index targets (softmax), else the number of region masks.
        optimizer: ``sgd``, ``adam`` or ``adamw`` (its state is memory too).
        amp: ``none``, ``bf16`` or ``fp16`` (autocast as in training).
        device: ``cpu`` or ``cuda``.
        threads: torch threads for the step (0: torch's default).
        steps: timed steps after the warm-up (the time is their minimum; the memory is the
            first's).
    """

    net: str
    kwargs: dict[str, Any]
    patch: tuple[int, ...]
    batch: int
    loss: str = "dice_ce"
    loss_kwargs: dict[str, Any] = field(default_factory=dict)
    regions: int = 0
    optimizer: str = "adam"
    amp: str = "none"
    device: str = "cpu"
    threads: int = 0
    steps: int = 1


@dataclass(frozen=True)
class TrialResult:
    """What one trial step took.

    Attributes:
        peak_bytes: the step's peak memory, the weights, optimiser state and batch included.
        static_bytes: the part of it counted from tensors (weights, optimiser state, batch).
        seconds: wall time of one step (the fastest of the timed steps).
        method: how the peak was measured (``cuda max_memory_allocated`` or ``cpu peak RSS``).
    """

    peak_bytes: int
    static_bytes: int
    seconds: float
    method: str


def _status_bytes(key: str) -> int:
    with open("/proc/self/status", encoding="utf-8") as status:
        for line in status:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    raise OSError(f"/proc/self/status has no {key}")


def _tensor_bytes(tensors: Any) -> int:
    import torch

    seen: set[int] = set()
    total = 0
    for t in tensors:
        if isinstance(t, torch.Tensor) and t.untyped_storage().data_ptr() not in seen:
            seen.add(t.untyped_storage().data_ptr())
            total += t.untyped_storage().nbytes()
    return total


def measure(trial: Trial) -> TrialResult:
    """Run ``trial`` in this process and measure it (CPU: needs the fixed ``mmap`` threshold
    that :func:`run_trial` sets, or freed memory is reused without showing in the peak)."""
    import torch

    from volseg._typed import from_plain
    from volseg.config import OptimizerConfig
    from volseg.losses import create_loss
    from volseg.nn import create_model
    from volseg.training.schedules import build_optimizer
    from volseg.training.step import autocast, to_float

    torch.manual_seed(0)
    if trial.threads:
        torch.set_num_threads(trial.threads)
    device = torch.device(trial.device)
    model = create_model(trial.net, **trial.kwargs).to(device).train()
    loss_fn = create_loss(trial.loss, **trial.loss_kwargs).to(device)
    optimizer = build_optimizer(
        from_plain(OptimizerConfig, {"name": trial.optimizer}, "optimizer"),
        list(model.parameters()),
    )
    channels = int(trial.kwargs.get("in_channels", 1))
    shape = (trial.batch, *trial.patch)
    image = torch.randn(trial.batch, channels, *trial.patch, device=device)
    if trial.regions:
        target = (torch.rand(trial.batch, trial.regions, *trial.patch, device=device) > 0.5).float()
    else:
        classes = int(trial.kwargs.get("out_channels", 2))
        target = torch.randint(0, classes, (shape[0], 1, *shape[1:]), device=device)

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        with autocast(trial.amp, device):
            output = model(image)
        loss = loss_fn(to_float(output), target, image)
        loss.total.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    step()  # warm-up: optimiser state, kernel primitives
    gc.collect()
    state = [t for s in optimizer.state.values() for t in s.values()]
    static = _tensor_bytes([*model.parameters(), *model.buffers(), *state, image, target])
    times = []
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        start = time.perf_counter()
        step()
        torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
        peak = int(torch.cuda.max_memory_allocated())
        method = "cuda max_memory_allocated"
    else:
        before = _status_bytes("VmRSS")
        with open("/proc/self/clear_refs", "w", encoding="utf-8") as refs:
            refs.write("5")  # resets VmHWM to the current resident set
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
        peak = static + max(0, _status_bytes("VmHWM") - before)
        method = "cpu peak RSS"
    for _ in range(trial.steps - 1):
        start = time.perf_counter()
        step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return TrialResult(peak, static, min(times), method)


def run_trial(trial: Trial, timeout: float = 600.0) -> TrialResult:
    """Measure ``trial``: in this process on CUDA, in a fresh process on the CPU.

    Raises:
        RuntimeError: the trial failed (out of memory, a net that rejects the size); the
            message is the child's last line.
    """
    if trial.device == "cuda":
        return measure(trial)
    env = dict(os.environ)
    env["MALLOC_MMAP_THRESHOLD_"] = "65536"  # fixed: every large buffer is returned on free
    env["MALLOC_TRIM_THRESHOLD_"] = "0"
    if trial.threads:
        env["OMP_NUM_THREADS"] = str(trial.threads)
    payload = json.dumps(dataclasses.asdict(trial))
    done = subprocess.run(
        [sys.executable, "-m", "volseg.plan.memory", payload],
        capture_output=True,
        text=True,
        encoding="utf-8",
        env=env,
        timeout=timeout,
        check=False,
    )
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise RuntimeError(
            f"trial step of {trial.net} at patch {list(trial.patch)} x batch {trial.batch} "
            f"failed: {tail}"
        )
    return TrialResult(**json.loads(lines[-1]))


def _main(argv: list[str]) -> int:
    raw = json.loads(argv[0])
    raw["patch"] = tuple(raw["patch"])
    result = measure(Trial(**raw))
    print(json.dumps(dataclasses.asdict(result)))
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))


def profiler_peak(trial: Trial) -> int:
    """The same step's memory counted another way, to check :func:`run_trial`'s CPU figure:
    weights + optimiser state + batch, plus the peak of the step's live allocations as
    ``torch.profiler`` records them (in this process; seconds for small nets)."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    from volseg.losses import create_loss
    from volseg.nn import create_model
    from volseg.training.step import to_float

    torch.manual_seed(0)
    model = create_model(trial.net, **trial.kwargs).train()
    loss_fn = create_loss(trial.loss)
    optimizer = torch.optim.Adam(model.parameters())
    image = torch.randn(trial.batch, 1, *trial.patch)
    target = torch.randint(0, 2, (trial.batch, 1, *trial.patch))

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        loss_fn(to_float(model(image)), target, image).total.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    step()
    state = [t for s in optimizer.state.values() for t in s.values()]
    static = _tensor_bytes([*model.parameters(), *model.buffers(), *state, image, target])
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        step()
    events = [e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"]
    now = peak = 0
    for event in sorted(events, key=lambda e: e.start_ns()):
        now += event.nbytes()
        peak = max(peak, now)
    return static + peak
