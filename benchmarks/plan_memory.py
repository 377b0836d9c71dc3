"""How well ``volseg plan``'s CPU peak measurement tracks an independent count.

Run: ``python benchmarks/plan_memory.py``. For a few nets and patch sizes it runs
:func:`volseg.plan.run_trial` (peak resident set of one training step in a fresh process, plus
the weights, optimiser state and batch counted from their tensors) and, in this process, the
same step under ``torch.profiler`` with ``profile_memory=True``, whose allocation and free
events give the peak of live tensor bytes (the CPU twin of ``torch.cuda.max_memory_allocated``).
It prints both and their ratio.
"""

from __future__ import annotations

from volseg.plan import Trial, run_trial
from volseg.plan.memory import profiler_peak


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
