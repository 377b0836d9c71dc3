"""Shows the CPU bf16 autocast weight-gradient error for convolutions larger than their input.

Run: ``python benchmarks/bf16_small_conv.py``. For each (kernel, input size) it prints the
relative error of the bf16 weight gradient against fp32, for ``torch.nn.Conv3d`` and for
volseg's guarded ``Conv3d`` (which runs such convs in fp32). Errors near or above 1 (or NaN)
mean the gradient is wrong; bf16 rounding alone gives about 0.01.
"""

from __future__ import annotations

import torch

from volseg.nn.blocks import Conv3d


def relative_error(conv: torch.nn.Conv3d, size: int) -> float:
    x = torch.randn(2, conv.in_channels, size, size, size)
    g = torch.randn(2, conv.out_channels, size, size, size)
    conv.zero_grad()
    (conv(x) * g).sum().backward()
    reference = conv.weight.grad.clone()
    conv.zero_grad()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = conv(x)
    (y.float() * g).sum().backward()
    return float((conv.weight.grad - reference).abs().max() / reference.abs().max())


def main() -> None:
    torch.manual_seed(0)
    print(f"torch {torch.__version__}")
    print(f"{'kernel':>6} {'input':>5} {'torch.nn.Conv3d':>16} {'volseg Conv3d':>14}")
    for kernel, size in [(5, 2), (5, 4), (5, 8), (3, 2), (3, 4)]:
        plain = torch.nn.Conv3d(32, 32, kernel, padding=kernel // 2)
        guarded = Conv3d(32, 32, kernel, padding=kernel // 2)
        guarded.load_state_dict(plain.state_dict())
        print(
            f"{kernel:>6} {size:>5} {relative_error(plain, size):>16.3g} "
            f"{relative_error(guarded, size):>14.3g}"
        )


if __name__ == "__main__":
    main()
