"""Seconds per training iteration of each recipe in ``configs/``, at the recipe's own sizes.

Run: ``python benchmarks/recipe_cost.py`` (every recipe, one after the other) or
``python benchmarks/recipe_cost.py configs/segresnet_vae_brats.yaml --patch 64 80 80
--kwarg vae_input_size=[64,80,80] --kwarg init_filters=8`` (one recipe with levers changed:
``--patch``, ``--batch``, ``--kwarg KEY=VALUE`` for ``model.kwargs``, repeatable).

For each recipe it builds the model (:func:`volseg.nn.build.build_model`, channels from the
recipe: ``model.kwargs.in_channels`` or ``data.channels``, else 1), the loss and the optimiser,
and times one optimiser step (zero_grad, forward, loss, backward, step) on random input of the
recipe's ``train.patch_size`` and ``train.batch_size``: 1 warm-up step, then ``--repeat`` steps
(default 3), or 1 step when the warm-up took longer than ``--slow`` seconds (default 20).
Prints the median wall seconds and this process's CPU seconds per step. Data loading and
augmentation are not included, nor validation. Threads: torch's default (every CPU
this process may use) unless ``--threads``; set nothing else. On a shared machine the figure is
an upper bound: other processes take CPU time from the step.

Warning: a full-size recipe step takes tens of seconds on 2 CPU cores and several GB of memory;
all five recipes take several minutes.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch
import yaml

from volseg.config import Config, load_config
from volseg.losses import create_loss
from volseg.nn.build import build_model
from volseg.regions import get_regions
from volseg.training.schedules import build_optimizer
from volseg.training.step import region_targets

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def recipe_channels(config: Config) -> int:
    """Input channels the recipe states (``model.kwargs.in_channels``, ``data.channels``) or 1."""
    declared = config.model.kwargs.get("in_channels")
    if declared is not None:
        return int(declared)
    return len(config.data.channels) if config.data.channels else 1


def step_seconds(config: Config, repeat: int, slow: float) -> list[tuple[float, float]]:
    """(wall, CPU) seconds of each timed optimiser step (the warm-up step is not returned).

    CPU seconds are this process's, over all its threads (``time.process_time``): other
    processes on a shared machine inflate the wall time much more than this.
    """
    torch.manual_seed(0)
    labels = list(config.data.labels or (0, 1))
    channels = recipe_channels(config)
    model = build_model(config, channels, len(labels))
    loss_fn = create_loss(config.loss.name, **config.loss.kwargs)
    optimizer = build_optimizer(config.train.optimizer, list(model.parameters()))
    batch, patch = config.train.batch_size, config.train.patch_size
    image = torch.randn(batch, channels, *patch)
    target = torch.randint(0, len(labels), (batch, 1, *patch))
    if config.data.regions is not None:
        target = region_targets(target, labels, get_regions(config.data.regions))
    model.train()

    def step() -> tuple[float, float]:
        start, cpu = time.perf_counter(), time.process_time()
        optimizer.zero_grad(set_to_none=True)
        output = model(image)
        loss = loss_fn(output, target, image)
        loss.total.backward()
        optimizer.step()
        return time.perf_counter() - start, time.process_time() - cpu

    warm, _ = step()
    return [step() for _ in range(1 if warm > slow else repeat)]


def _parse_value(text: str) -> Any:
    return yaml.safe_load(text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("configs", nargs="*", type=Path, help="recipes (default: configs/*.yaml)")
    parser.add_argument("--patch", type=int, nargs="+", help="override train.patch_size")
    parser.add_argument("--batch", type=int, help="override train.batch_size")
    parser.add_argument(
        "--kwarg", action="append", default=[], metavar="KEY=VALUE", help="set model.kwargs.KEY"
    )
    parser.add_argument("--repeat", type=int, default=3, help="timed steps after the warm-up")
    parser.add_argument("--slow", type=float, default=20.0, help="time 1 step above this (s)")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's own)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    paths = args.configs or sorted(CONFIGS.glob("*.yaml"))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads", flush=True)
    for path in paths:
        config = load_config(path)
        train, kwargs = config.train, dict(config.model.kwargs)
        for item in args.kwarg:
            key, _, value = item.partition("=")
            kwargs[key] = _parse_value(value)
        if args.patch:
            train = dataclasses.replace(train, patch_size=tuple(args.patch))
        if args.batch:
            train = dataclasses.replace(train, batch_size=args.batch)
        config = dataclasses.replace(
            config, train=train, model=dataclasses.replace(config.model, kwargs=kwargs)
        )
        times = step_seconds(config, args.repeat, args.slow)
        wall = [t for t, _ in times]
        print(
            f"{path.name}: patch {list(train.patch_size)}, batch {train.batch_size}, "
            f"{recipe_channels(config)} channel(s)"
            + (f", {' '.join(args.kwarg)}" if args.kwarg else "")
            + f": {statistics.median(wall):.2f} s/iteration (median of {len(wall)}: "
            + ", ".join(f"{t:.2f}" for t in wall)
            + f"), CPU {statistics.median(c for _, c in times):.2f} s",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
