"""ONNX vs PyTorch (fp32) and bf16 vs fp32 on the bundled held-out heads (docs/inference.md).

Usage (an idle machine; the demo run takes a few CPU minutes to train):

    PYTHONPATH=src python -m volseg demo --run-dir /tmp/demo_run -q
    PYTHONPATH=src python benchmarks/onnx_heldout.py /tmp/demo_run

First, on the low-resolution head preprocessed like the run, the network's outputs in PyTorch
fp32, in the ONNX graph volseg exports, and in a plain ``torch.onnx`` export (instance norm as
``InstanceNormalization``) are compared with the same network in float64. Then, for each
held-out head, it predicts the probabilities with PyTorch in fp32, PyTorch in bf16 and the run
exported to ONNX (fp32, onnxruntime), and prints the fraction of voxels whose label agrees, the
number that differ, and the largest absolute probability difference.
"""

from __future__ import annotations

import argparse
import copy
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch

from volseg.data.preprocessing import preprocess
from volseg.demo import DEMO_DATA
from volseg.export import OnnxNetwork, _export_onnx, _SegmentationOnly, export_run
from volseg.inference import Predictor
from volseg.io import read_volume
from volseg.nn.sliding_window import pad_to_multiple
from volseg.training.checkpoint import load_run


def float64_errors(run_dir: str, exported: Path, folder: Path) -> None:
    """Largest |logit - float64 logit| of PyTorch fp32, volseg's ONNX and a plain ONNX export."""
    run = load_run(run_dir)
    model = _SegmentationOnly(run.model.eval()).eval()
    head = read_volume(DEMO_DATA / "heldout" / "colin27_lowres_t1.nii.gz")
    work, _, _ = preprocess(head, run.config.preprocess)
    x, _ = pad_to_multiple(torch.from_numpy(work.array[None]).float(), 16)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _export_onnx(model, x, folder / "plain.onnx", {})
    with torch.no_grad():
        reference = copy.deepcopy(model).double()(x.double()).numpy()
        outputs = {"torch fp32": model(x).numpy()}
    outputs["volseg onnx"] = OnnxNetwork(exported, x.ndim - 2)(x).numpy()
    outputs["plain onnx"] = OnnxNetwork(folder / "plain.onnx", x.ndim - 2)(x).numpy()
    scale = float(np.abs(reference).max())
    print(f"logits vs float64 on {tuple(x.shape[2:])} (largest |logit| {scale:.3g}):")
    for name, out in outputs.items():
        print(f"  {name}: max abs diff {np.abs(out - reference).max():.2e}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        onnx_path = Path(folder) / "model.onnx"
        result = export_run(args.run_dir, onnx_path)
        print(f"export: max abs diff {result.max_abs_diff:.2g} on {result.real_input}")
        float64_errors(args.run_dir, onnx_path, Path(folder))
        predictors = {
            "torch fp32": Predictor.from_run(args.run_dir, precision="fp32"),
            "torch bf16": Predictor.from_run(args.run_dir, precision="bf16"),
            "onnx fp32": Predictor.from_run(onnx_path),
        }
        print("| head | pair | label agreement | labels differing | max prob diff |")
        print("|---|---|---|---|---|")
        for path in sorted((DEMO_DATA / "heldout").glob("*_t1.nii.gz")):
            scan = read_volume(path)
            probs = {k: p.predict_probabilities(scan) for k, p in predictors.items()}
            labels = {k: predictors[k].labels_from_probabilities(v).array for k, v in probs.items()}
            for other in ("onnx fp32", "torch bf16"):
                same = labels[other] == labels["torch fp32"]
                diff = np.abs(probs[other].array - probs["torch fp32"].array).max()
                print(
                    f"| {path.name} | {other} vs torch fp32 | {same.mean():.6f} | "
                    f"{int((~same).sum())} of {same.size} | {diff:.2e} |"
                )


if __name__ == "__main__":
    main()
