"""How well ``volseg plan``'s CPU peak measurement tracks an independent count.

Run: ``python benchmarks/plan_memory.py``. For a few nets and patch sizes it runs
:func:`volseg.plan.run_trial` (peak resident set of one training step in a fresh process, plus
the weights, optimiser state and batch counted from their tensors) and, in this process, the
same step under ``torch.profiler`` with ``profile_memory=True``, whose allocation and free
events give the peak of live tensor bytes (the CPU twin of ``torch.cuda.max_memory_allocated``).
It prints both and their ratio.
"""

from __future__ import annotations

import torch
from torch.profiler import ProfilerActivity, profile

from volseg.losses import create_loss
from volseg.nn import create_model
from volseg.plan import Trial, run_trial
from volseg.plan.memory import _tensor_bytes
from volseg.training.step import to_float


def profiler_peak(trial: Trial) -> int:
    """Weights + optimiser state + batch, plus the peak of the step's live allocations."""
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


def main() -> None:
    nets = [
        ("vnet", {"base_channels": 8, "norm": "instance"}),
        ("resvolnet", {"channels": [16, 32, 64, 128]}),
    ]
    for net, kwargs in nets:
        for patch in [(32, 32, 32), (48, 48, 48), (64, 64, 64)]:
            trial = Trial(net, {**kwargs, "in_channels": 1, "out_channels": 2}, patch, 2)
            measured = run_trial(trial).peak_bytes
            reference = profiler_peak(trial)
            print(
                f"{net} {'x'.join(map(str, patch))} x 2: trial {measured / 1e6:.0f} MB, "
                f"profiler {reference / 1e6:.0f} MB, ratio {measured / reference:.3f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
