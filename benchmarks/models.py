"""Forward and training-step time and peak memory of every paper-size net, beside MONAI's.

Run: ``python benchmarks/models.py`` (all nets, paper input sizes, batch 1, CPU). Each volseg net
is timed at its paper input size; V-Net and the Myronenko net are timed beside MONAI's ``VNet``
(PReLU) and ``SegResNetVAE`` of the same size, interleaved in this one process, and the table
gives volseg time / MONAI time. A training step is zero-grad, forward, a cheap loss (mean of the
squared logits, plus the VAE terms for the Myronenko nets), backward and an SGD step.

Options: ``--only vnet segresnet_vae`` picks nets; ``--repeat``/``--warmup`` set the timed and
untimed runs (default 3 and 1); ``--scale 0.5`` shrinks every input axis (rounded to the net's
divisor) for a quick look; ``--profile`` prints the ops that dominate each compared forward.

Warning: at paper size this takes minutes on 2 cores (the Myronenko net at 4 x 128 x 144 x 144
with 32 initial filters is 1.5 TFLOP per forward pass).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).parent))
from common import Timing, print_table, setup_threads, time_call

from volseg.nn import create_model
from volseg.nn.analysis import analyze_model


@dataclass(frozen=True)
class Case:
    """One paper-size net: its registry name, arguments, input and (optionally) MONAI's peer."""

    name: str
    kwargs: dict[str, Any]
    in_channels: int
    size: tuple[int, ...]
    multiple: int  # every axis of the input must be a multiple of this
    note: str
    peer: Callable[[tuple[int, ...]], nn.Module] | None = field(default=None)


def _monai_vnet(size: tuple[int, ...]) -> nn.Module:
    from monai.networks.nets import VNet

    # PReLU as in the paper; dropout off, as in volseg's default (it only costs in training).
    return VNet(
        spatial_dims=3,
        in_channels=1,
        out_channels=2,
        act=("prelu", {"init": 0.25}),
        dropout_prob_down=0.0,
        dropout_prob_up=(0.0, 0.0),
    )


def _monai_segresnet_vae(size: tuple[int, ...]) -> nn.Module:
    from monai.networks.nets import SegResNetVAE

    return SegResNetVAE(
        input_image_size=size,
        spatial_dims=3,
        init_filters=32,
        in_channels=4,
        out_channels=3,
        blocks_down=(1, 2, 2, 4),
        blocks_up=(1, 1, 1),
    )


CASES = {
    # Milletari: 128 x 128 x 64 volumes, one MRI channel.
    "vnet": Case("vnet", {}, 1, (128, 128, 64), 16, "paper size", _monai_vnet),
    # The same V-Net code built with MONAI's smaller conv plan: equal work, so the ratio compares
    # implementations rather than the paper's 1.37x larger decoder.
    "vnet_monai_plan": Case(
        "vnet",
        {"convs_per_stage": (1, 1, 2, 3, 2), "decoder_convs": (2, 2, 1, 1)},
        1,
        (128, 128, 64),
        16,
        "paper size, MONAI's conv plan",
        _monai_vnet,
    ),
    # Myronenko's net (32 initial filters) on Adeniji's 144 x 144 x 128 crops, 4 modalities.
    "segresnet_vae": Case(
        "segresnet_vae",
        {"out_channels": 3, "init_filters": 32},
        4,
        (128, 144, 144),
        16,
        "paper size",
        _monai_segresnet_vae,
    ),
    # The papers give no input size for these three: sizes of their datasets, our choice.
    "resvolnet": Case("resvolnet", {}, 6, (32, 128, 128), 8, "ISLES 2017: 6 maps, our crop"),
    "resunet": Case(
        "resunet", {"spatial_dims": 2}, 5, (256, 256), 16, "ISLES 2018 CTP slice, 5 maps"
    ),
    "fcresnet": Case("fcresnet", {"spatial_dims": 2}, 1, (512, 512), 32, "ISBI 2012 EM slice"),
}


def _scaled(case: Case, scale: float) -> tuple[int, ...]:
    m = case.multiple
    return tuple(max(m, round(s * scale / m) * m) for s in case.size)


def _loss(out: Any, x: torch.Tensor) -> torch.Tensor:
    """Mean squared logits (+ the VAE's L2 and KL terms when the net returns them)."""
    if isinstance(out, torch.Tensor):
        return out.square().mean()
    if hasattr(out, "reconstruction"):  # volseg's VAEOutput
        kl = (out.mu.square() + out.logvar.exp() - out.logvar - 1).mean()
        recon = (out.reconstruction - x).square().mean()
        return out.logits.square().mean() + 0.1 * recon + 0.1 * kl
    logits, vae_loss = out  # MONAI's SegResNetVAE: (logits, vae_loss)
    loss: torch.Tensor = logits.square().mean() + vae_loss
    return loss


def _forward(model: nn.Module, x: torch.Tensor) -> Callable[[], object]:
    def run() -> object:
        with torch.no_grad():
            return model(x)

    return run


def _train_step(model: nn.Module, x: torch.Tensor) -> Callable[[], object]:
    opt = torch.optim.SGD(model.parameters(), lr=1e-6, momentum=0.99)

    def run() -> object:
        opt.zero_grad(set_to_none=True)
        loss = _loss(model(x), x)
        loss.backward()
        opt.step()
        return None

    return run


def _profile(label: str, model: nn.Module, x: torch.Tensor) -> None:
    from torch.profiler import ProfilerActivity, profile

    model.eval()
    with torch.no_grad(), profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        model(x)
    print(f"\nprofile of {label} forward (self CPU time, top ops by input shape)")
    print(
        prof.key_averages(group_by_input_shape=True).table(
            sort_by="self_cpu_time_total", row_limit=12, max_name_column_width=28
        )
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", choices=sorted(CASES), help="nets to run")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--scale", type=float, default=1.0, help="input size factor per axis")
    parser.add_argument("--no-peer", action="store_true", help="skip the MONAI nets")
    parser.add_argument("--profile", action="store_true", help="profile each compared forward")
    args = parser.parse_args(argv)

    threads = setup_threads(args.threads)
    print(f"torch {torch.__version__}, {threads} threads, batch 1, fp32, CPU")
    print(f"median of {args.repeat} timed runs after {args.warmup} warm-up run(s)")
    torch.manual_seed(0)
    rows: list[tuple[str, Timing, Timing | None]] = []
    for key in args.only or list(CASES):
        case = CASES[key]
        size = _scaled(case, args.scale)
        x = torch.randn(1, case.in_channels, *size)
        kwargs = dict(case.kwargs, in_channels=case.in_channels)
        if case.name == "segresnet_vae":
            kwargs["vae_input_size"] = size
        ours = create_model(case.name, **kwargs)
        peer = None if args.no_peer or case.peer is None else case.peer(size)
        a = analyze_model(ours, size)
        note = case.note if size == case.size else f"scaled from {case.size}"
        line = f"{key}: input {case.in_channels}x{'x'.join(map(str, size))} ({note}), "
        line += f"{a.parameters / 1e6:.1f}M params, {a.flops / 1e9:.0f} GFLOP forward"
        if peer is not None:
            b = analyze_model(peer, size, case.in_channels)
            line += f"; MONAI {b.parameters / 1e6:.1f}M params, {b.flops / 1e9:.0f} GFLOP"
            line += f" (FLOP ratio {a.flops / b.flops:.2f})"
        print(line, flush=True)

        for phase, make in (("forward", _forward), ("train step", _train_step)):
            ours.train(phase != "forward")
            t_ours = time_call(make(ours, x), args.repeat, args.warmup)
            t_peer = None
            if peer is not None:
                peer.train(phase != "forward")
                t_peer = time_call(make(peer, x), args.repeat, args.warmup)
            rows.append((f"{key} {phase}", t_ours, t_peer))
            gflops = a.flops / 1e9 / t_ours.median
            extra = "" if phase != "forward" else f" ({gflops:.0f} GFLOP/s)"
            print(f"  {phase}: volseg {t_ours.median:.2f} s{extra}", end="")
            if t_peer is not None:
                print(f", MONAI {t_peer.median:.2f} s", end="")
            print(flush=True)
        if args.profile and peer is not None:
            _profile(f"volseg {key}", ours, x)
            _profile(f"MONAI {key}", peer, x)
        del ours, peer

    print()
    print_table(rows, ours_name="volseg", peer_name="MONAI")
    print("ratio = volseg median time / MONAI median time; MiB = peak RSS above the start of a run")
    return 0


if __name__ == "__main__":
    sys.exit(main())
