"""Training throughput (samples/s): volseg's training step vs a plain PyTorch loop over MONAI's net.

Run: ``python benchmarks/training.py`` (``--quick`` halves every side; ``--amp bf16`` runs both
sides under bf16 autocast). Two cases, one process, interleaved:

* V-Net, one channel 128x128x64, batch 2, 2 classes: volseg's ``vnet`` through
  :func:`volseg.training.trainer.train_step` (SGD momentum 0.99, V-Net Dice, LR scheduler, scaler)
  vs MONAI ``VNet`` in a plain loop (zero_grad, forward, the same volseg loss, backward, step).
* Myronenko U-Net + VAE, 4 channels 128^3, batch 1, 3 regions: volseg's ``segresnet_vae`` with
  its VAE loss (soft Dice + 0.1 L2 + 0.1 KL, Adam) vs MONAI ``SegResNetVAE`` (32 initial filters,
  the same soft Dice + MONAI's own VAE L2 + KL term, Adam).

Prints median seconds per step, samples/s, volseg / MONAI throughput and each side's median minor
page faults per timed step. The two sides of a case are timed in turn, one step each per repeat,
so load drift hits both alike, after ``--warmup`` untimed steps of each (default 2: with freed
memory kept, both nets' heaps stop growing, and their steps stop faulting, from the third step
on). A side still faulting in its timed steps was not in its steady state: its time includes
the kernel zeroing fresh pages, which the allocator, not the network, decides. Warning: a step
of the full-size V-Net takes tens of seconds on 2 CPU cores; this script takes minutes.

``--only vnet|vae`` runs one case. ``--compile`` adds a row for the U-Net+VAE trained with
``train.compile: true`` (``torch.compile``): the first step's time (compilation included) is
printed apart, the row itself times the steps after it.

Both sides run with glibc keeping freed memory for reuse, as ``volseg train`` sets it
(``train.runtime.reuse_memory``, :mod:`volseg._allocator`); ``--system-allocator`` leaves glibc's
defaults, under which every new activation is faulted in afresh (MONAI's loop in its own process
runs so unless its user changes the allocator). Likewise both flush subnormal floats to zero, as
``volseg train`` does (``train.runtime.flush_denormal``); ``--keep-denormals`` computes with them.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).parent))
from common import Timing, setup_threads, time_call, time_interleaved

from volseg._allocator import reuse_freed_memory
from volseg.config import (
    Config,
    LossConfig,
    ModelConfig,
    OptimizerConfig,
    RuntimeConfig,
    TrainConfig,
)
from volseg.losses import create_loss
from volseg.nn import create_model
from volseg.training.distributed import DistInfo
from volseg.training.schedules import (
    build_optimizer,
    build_scheduler,
)
from volseg.training.state import TrainState
from volseg.training.step import train_step


def volseg_step(
    model: nn.Module, loss: nn.Module, train: TrainConfig, image: torch.Tensor, target: torch.Tensor
) -> Callable[[], object]:
    optimizer = build_optimizer(train.optimizer, list(model.parameters()))
    config = Config(model=ModelConfig(), loss=LossConfig(), train=train)
    state = TrainState(
        config=config,
        run_dir=Path("."),
        model=model,
        optimizer=optimizer,
        scheduler=build_scheduler(train, optimizer),
        scaler=torch.amp.GradScaler("cpu", enabled=False),
        dist=DistInfo(),
        labels=[0, 1],
        in_channels=image.shape[1],
    )
    device = torch.device("cpu")
    model.train()
    return lambda: train_step(model, image, target, loss, state, device)


def plain_step(
    model: nn.Module,
    loss_of: Callable[[object], torch.Tensor],
    optimizer: torch.optim.Optimizer,
    image: torch.Tensor,
    amp: bool,
) -> Callable[[], object]:
    model.train()

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):
            output = model(image)
        loss_of(output).backward()
        optimizer.step()

    return step


def _float(x: torch.Tensor) -> torch.Tensor:
    return x.float()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="half-size volumes")
    parser.add_argument("--amp", choices=("none", "bf16"), default="none")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps of each side first")
    parser.add_argument("--only", choices=("vnet", "vae"))
    parser.add_argument("--compile", action="store_true", help="also time train.compile: true")
    parser.add_argument(
        "--system-allocator",
        action="store_true",
        help="leave glibc's defaults (volseg train keeps freed memory: train.runtime.reuse_memory)",
    )
    parser.add_argument(
        "--keep-denormals",
        action="store_true",
        help="compute with subnormal floats (volseg train flushes them: flush_denormal)",
    )
    args = parser.parse_args()
    # as `volseg train` does; both sides run in this process, so both get it
    allocator = "glibc defaults" if args.system_allocator else "freed memory reused"
    if not args.system_allocator and not reuse_freed_memory():
        allocator = "glibc defaults (no mallopt here)"
    # as `volseg train` does (train.runtime.flush_denormal), for both sides
    flush = not args.keep_denormals and torch.set_flush_denormal(True)
    from monai.networks.nets import SegResNetVAE as MonaiSegResNetVAE
    from monai.networks.nets import VNet as MonaiVNet

    threads = setup_threads()
    torch.manual_seed(0)
    f = 2 if args.quick else 1
    amp = args.amp == "bf16"
    rows: list[tuple[str, int, Timing, Timing]] = []

    if args.only in (None, "vnet"):
        # V-Net 128x128x64 (z, y, x = 64, 128, 128), batch 2
        shape = (64 // f, 128 // f, 128 // f)
        image = torch.randn(2, 1, *shape)
        target = (torch.rand(2, 1, *shape) > 0.7).long()
        dice = create_loss("vnet_dice")
        train = TrainConfig(
            optimizer=OptimizerConfig("sgd", lr=1e-4, momentum=0.99),
            runtime=RuntimeConfig(amp=args.amp),
        )
        ours = volseg_step(
            create_model("vnet", in_channels=1, out_channels=2), dice, train, image, target
        )
        peer = MonaiVNet(spatial_dims=3, in_channels=1, out_channels=2)
        peer_opt = torch.optim.SGD(peer.parameters(), lr=1e-4, momentum=0.99)
        theirs = plain_step(peer, lambda out: dice(_float(out), target).total, peer_opt, image, amp)
        t_ours, t_theirs = time_interleaved([ours, theirs], args.repeat, args.warmup)
        rows.append((f"V-Net 1x{shape[2]}x{shape[1]}x{shape[0]}, batch 2", 2, t_ours, t_theirs))
        del ours, theirs, peer, peer_opt

    if args.only in (None, "vae"):
        # Myronenko U-Net + VAE, 4 x 128^3, batch 1
        side = 128 // f
        image = torch.randn(1, 4, side, side, side)
        regions = (torch.rand(1, 3, side, side, side) > 0.8).float()
        vae_loss = create_loss("vae")
        train = TrainConfig(
            optimizer=OptimizerConfig("adam", lr=1e-4, weight_decay=1e-5),
            runtime=RuntimeConfig(amp=args.amp),
        )
        model = create_model("segresnet_vae", in_channels=4, out_channels=3, vae_input_size=side)
        ours = volseg_step(model, vae_loss, train, image, regions)
        peer = MonaiSegResNetVAE(
            input_image_size=(side, side, side),
            in_channels=4,
            out_channels=3,
            init_filters=32,
            vae_nz=128,
            dropout_prob=0.2,
        )
        soft_dice = create_loss("soft_dice")
        peer_opt = torch.optim.Adam(peer.parameters(), lr=1e-4, weight_decay=1e-5)

        def peer_loss(out: object) -> torch.Tensor:
            seg, vae_term = out  # type: ignore[misc]
            return soft_dice(_float(seg), regions).total + vae_term

        theirs = plain_step(peer, peer_loss, peer_opt, image, amp)
        t_ours, t_theirs = time_interleaved([ours, theirs], args.repeat, args.warmup)
        rows.append((f"U-Net+VAE 4x{side}^3, batch 1", 1, t_ours, t_theirs))

        if args.compile:
            fast = create_model("segresnet_vae", in_channels=4, out_channels=3, vae_input_size=side)
            fast.load_state_dict(model.state_dict())
            compiled_train = dataclasses.replace(train, compile=True)
            step = volseg_step(fast, vae_loss, compiled_train, image, regions)
            start = time.perf_counter()
            step()
            print(
                f"train.compile: true, first step (compiles): {time.perf_counter() - start:.1f} s"
            )
            label = f"U-Net+VAE {side}^3 compiled/eager"  # the ratio against eager volseg
            rows.append((label, 1, time_call(step, args.repeat), t_ours))

    print(
        f"torch {torch.__version__}, {threads} threads, amp {args.amp}, repeat {args.repeat}, "
        f"warm-up {args.warmup}, "
        f"allocator: {allocator}, subnormals {'flushed' if flush else 'kept'}"
    )
    print(
        f"{'case':<32} {'volseg s/step':>13} {'MONAI s/step':>12} {'volseg sps':>10} "
        f"{'MONAI sps':>9} {'ratio':>6} {'faults/step':>17}"
    )
    for name, batch, a, b in rows:
        ratio = b.median / a.median  # throughput ratio = inverse time ratio
        print(
            f"{name:<32} {a.median:>13.2f} {b.median:>12.2f} {batch / a.median:>10.3f} "
            f"{batch / b.median:>9.3f} {ratio:>6.2f} {_faults(a):>8} {_faults(b):>8}"
        )


def _faults(timing: Timing) -> str:
    """Median minor page faults per timed step, or '-' where they were not counted."""
    return str(int(statistics.median(timing.faults))) if timing.faults else "-"


if __name__ == "__main__":
    main()
