"""Inference speed and memory: sliding window against MONAI, V-Net, peak RSS, onnxruntime.

1. V-Net (volseg, Milletari channels 16-256) on one 128x128x64 volume, whole-volume forward,
   float32 and bf16 autocast (``train.amp: bf16`` runs make the Predictor use it).
2. Sliding-window prediction of a 256x256x160 volume with one 3D U-Net (MONAI's ``UNet``, the
   same instance for both) against MONAI's ``sliding_window_inference``: same window, overlap and
   Gaussian blending, same windows per batch. Checks outputs equal within 1e-5 and prints
   volseg / MONAI time (target <= 0.8). volseg runs the net channels-last end to end as
   :class:`volseg.inference.Predictor` does (:func:`volseg.nn.layout.to_channels_last`).
   ``--only layout`` times one forward pass of that net and of two 2-D nets channels-last
   against the default layout (outputs checked equal to a relative 1e-4).
3. Peak RSS of the whole process for ``Predictor.predict`` of a 512x512x300 scan (crop + restore,
   Gaussian windows of 128^3), each in a child process: with a pointwise net (the pipeline's own
   memory, 2 windows per batch) and with a real 3-D net (V-Net layout, 8 base channels, 3^3
   kernels) at the default 1 window per batch and at 2, whose activations come on top.
4. onnxruntime against PyTorch for the exported V-Net (small: base 8 channels) on 128x128x64.

Run: ``PYTHONPATH=src python benchmarks/inference.py [--quick]`` (``--quick``: 160x160x96
sliding window, 256x256x150 for memory, one repeat).
"""

from __future__ import annotations

import argparse
import copy
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from common import print_table, setup_threads, time_call
from monai.inferers import sliding_window_inference
from monai.networks.nets import UNet

from volseg.nn import create_model
from volseg.nn.layout import to_channels_last
from volseg.nn.sliding_window import sliding_window_forward

MEMORY_CHILD = r"""
import resource, sys, time
import numpy as np, torch
from torch import nn
from volseg.config import Config, InferConfig, PreprocessConfig, TrainConfig
from volseg.inference import Predictor
from volseg.io import Volume

shape = tuple(int(s) for s in sys.argv[1:4])
net_name, batch = sys.argv[4], int(sys.argv[5])
class Pointwise(nn.Module):
    spatial_dims, divisor, in_channels, out_channels, output_kind = 3, 1, 1, 2, "logits"
    def forward(self, x):
        return torch.cat([70.0 - x, x - 70.0], 1)
array = np.zeros((1, *shape), np.float32)
rng = np.random.default_rng(0)
for z in range(10, shape[0] - 10):  # float32 slice by slice: no float64 temporary of the volume
    array[0, z, 20:-20, 20:-20] = 100.0 + 40.0 * rng.standard_normal(
        (shape[1] - 40, shape[2] - 40), dtype=np.float32)
image = Volume(array, (0.7, 0.7, 1.2), (0.0, 0.0, 0.0), (1, 0, 0, 0, 1, 0, 0, 0, 1))
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
config = Config(
    preprocess=PreprocessConfig(normalize="none", crop_nonzero=True),
    train=TrainConfig(patch_size=(128, 128, 128)),
    infer=InferConfig(window=(128, 128, 128), overlap=0.25, batch_size=batch),
)
start = time.perf_counter()
if net_name == "pointwise":
    net = Pointwise()
else:  # a real 3-D net: V-Net layout, 8 base channels, 3x3x3 kernels
    from volseg.nn import create_model
    torch.manual_seed(0)
    net = create_model("vnet", base_channels=8, kernel_size=3).eval()
label = Predictor(net, config, [0, 1], 1).predict(image)
seconds = time.perf_counter() - start
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(f"{seconds:.1f} {base / 1e6:.3f} {peak / 1e6:.3f} {label.array.nbytes / 1e9:.3f}")
"""


def bench_vnet(repeat: int) -> None:
    """V-Net as the Predictor runs it (channels-last), in float32 and under bf16 autocast."""
    torch.manual_seed(0)
    net = to_channels_last(create_model("vnet", in_channels=1, out_channels=2).eval())
    x = torch.randn(1, 1, 128, 128, 64)
    rows = []
    for amp in (False, True):
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):
            t = time_call(lambda: sliding_window_forward(net, x[0], divisor=16), repeat=repeat)
        rows.append((f"V-Net 128x128x64 whole volume, {'bf16' if amp else 'fp32'}", t, None))
    print_table(rows)


def bench_sliding_window(shape: tuple[int, ...], repeat: int) -> None:
    torch.manual_seed(0)
    net = UNet(3, 1, 2, channels=(16, 32, 64, 128), strides=(2, 2, 2), num_res_units=1).eval()
    ours_net = to_channels_last(copy.deepcopy(net))  # what Predictor does to a 3-D net
    x = torch.randn(1, 1, *shape)
    window, overlap, batch = (96, 96, 96), 0.5, 4

    def ours() -> torch.Tensor:
        return sliding_window_forward(ours_net, x[0], window, overlap, batch, blend="gaussian")

    def theirs() -> torch.Tensor:
        with torch.no_grad():
            return sliding_window_inference(x, window, batch, net, overlap=overlap, mode="gaussian")

    diff = float((ours() - theirs()[0]).abs().max())
    t_ours, t_theirs = [], []
    for _ in range(repeat):  # interleaved: the CPU is shared
        t_ours.append(time_call(ours, repeat=1, warmup=0, memory_apart=False))
        t_theirs.append(time_call(theirs, repeat=1, warmup=0, memory_apart=False))
    a = min(t_ours, key=lambda t: t.median)
    b = min(t_theirs, key=lambda t: t.median)
    label = f"sliding window {'x'.join(map(str, shape))}, UNet, 96^3, overlap 0.5, Gaussian"
    print_table([(label, a, b)], peer_name="MONAI")
    print(f"max |volseg - MONAI| = {diff:.2e} (target < 1e-5); best-of-{repeat} times")


def bench_layout(repeat: int) -> None:
    """One forward pass per net in channels-last layout against the default layout.

    MONAI's 3-D ``UNet`` of the sliding-window case (4 windows of 96^3) converted by plain
    ``.to(channels_last_3d)`` and by :func:`to_channels_last`; volseg's 2-D nets of the ISLES
    2018 and ISBI 2012 recipes (4 slices of 256^2) by :func:`to_channels_last`.
    """
    torch.manual_seed(0)
    unet = UNet(3, 1, 2, channels=(16, 32, 64, 128), strides=(2, 2, 2), num_res_units=1).eval()
    x3 = torch.randn(4, 1, 96, 96, 96)
    x2 = torch.randn(4, 1, 256, 256)
    cases = [
        (
            "UNet 4x96^3, .to(channels_last_3d)",
            unet,
            x3,
            lambda m: m.to(memory_format=torch.channels_last_3d),
        ),
        ("UNet 4x96^3, to_channels_last", unet, x3, to_channels_last),
        (
            "resunet 2-D instance norm 4x256^2",
            create_model("resunet", spatial_dims=2, in_channels=1, norm="instance").eval(),
            x2,
            to_channels_last,
        ),
        (
            "fcresnet 2-D 4x256^2",
            create_model("fcresnet", spatial_dims=2).eval(),
            x2,
            to_channels_last,
        ),
    ]
    rows = []
    with torch.no_grad():
        for name, net, x, convert in cases:
            converted = convert(copy.deepcopy(net))
            expected = net(x)
            error = float((converted(x) - expected).abs().max() / expected.abs().max())
            assert error < 1e-4, f"{name}: relative difference {error:.1e}"
            ours = time_call(lambda m=converted, x=x: m(x), repeat=repeat)
            theirs = time_call(lambda m=net, x=x: m(x), repeat=repeat)
            rows.append((name, ours, theirs))
    print_table(rows, ours_name="layout", peer_name="default")


def bench_memory(shape: tuple[int, ...], net: str, batch: int) -> None:
    src = Path(__file__).resolve().parents[1] / "src"
    out = subprocess.run(
        [sys.executable, "-c", MEMORY_CHILD, *map(str, shape), net, str(batch)],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONPATH": str(src), "PATH": "/usr/bin:/bin"},
    )
    seconds, base, peak, _ = out.stdout.split()
    print(
        f"Predictor.predict {'x'.join(map(str, shape))} with {net} net, {batch} window(s) "
        f"per batch "
        f"(float32 input {np.prod(shape) * 4 / 1e9:.2f} GB): peak RSS {float(peak):.2f} GB "
        f"(imports + input {float(base):.2f} GB), {seconds} s"
    )


def bench_onnx(repeat: int) -> None:
    from volseg.export import OnnxNetwork, export_model

    torch.manual_seed(0)
    net = create_model("vnet", in_channels=1, out_channels=2, base_channels=8).eval()
    x = torch.randn(1, 1, 128, 128, 64)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "vnet.onnx"
        start = time.perf_counter()
        result = export_model(net, path, "onnx", [(1, 1, 64, 64, 32)])
        print(
            f"ONNX export + check: {time.perf_counter() - start:.1f} s, "
            f"max diff {result.max_abs_diff:.1e}"
        )
        runner = OnnxNetwork(path, 3)
        with torch.no_grad():
            t_torch = time_call(lambda: net(x), repeat=repeat)
            t_onnx = time_call(lambda: runner(x), repeat=repeat)
    print_table([("V-Net (base 8) 128x128x64", t_onnx, t_torch)], "onnxruntime", "PyTorch")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--only", choices=["vnet", "layout", "window", "memory", "onnx"])
    args = parser.parse_args()
    threads = setup_threads()
    repeat = 1 if args.quick else 3
    print(f"torch {torch.__version__}, {threads} threads")
    if args.only in (None, "vnet"):
        bench_vnet(repeat)
    if args.only in (None, "layout"):
        bench_layout(repeat)
    if args.only in (None, "window"):
        bench_sliding_window((160, 160, 96) if args.quick else (256, 256, 160), repeat)
    if args.only in (None, "memory"):
        for net, batch in (("pointwise", 2), ("vnet", 1), ("vnet", 2)):
            bench_memory((150, 256, 256) if args.quick else (300, 512, 512), net, batch)
    if args.only in (None, "onnx"):
        bench_onnx(repeat)


if __name__ == "__main__":
    main()
