"""FC-ResNet with long skips only, short skips only, or both (Drozdzal et al. 2016).

Claim (ISBI 2012 EM): in a very deep fully convolutional net, short (residual) skips inside the
blocks and long skips from the contracting to the expanding path together segment best, and
the paper looks at gradient flow: per-layer gradient norms during training. Here on
``em-membranes`` (label 1 = membrane). The three variants are the same FC-ResNet (same
widths, repeats and block types, so the same depth) with ``long_skips`` / ``short_skips``
switched; every run logs its per-layer gradient norms (``train.runtime.log_grad_norms``) and
``grad_norms.png`` overlays the last epoch's norm against depth, one line per variant.
The claims compare both with long only and both with short only.

Sizes:

* ``smoke``: 128 x 128 images, 3 training + 2 held-out; widths 4-8-16, one basic block per
  level; patches 32^2, batch 2, 1 epoch of 2 iterations, 2 seeds.
* ``full``: 256 x 256 images, 12 training + 4 held-out; widths 16-32-64-128, repeats 1-2-3-2,
  basic then bottleneck blocks (about 40 convolutions deep: CPU-sized, not the paper's
  hundreds); patches 64^2, batch 4, Adam lr 1e-3, 30 epochs of 20 iterations, 3 seeds.
"""

from __future__ import annotations

from volseg.config import (
    Config,
    DataConfig,
    InferConfig,
    LossConfig,
    ModelConfig,
    OptimizerConfig,
    PreprocessConfig,
    RuntimeConfig,
    TrainConfig,
)
from volseg.experiments.base import (
    Claim,
    Experiment,
    Profile,
    Variant,
    register_experiment,
)
from volseg.experiments.plots import plot_grad_norms


@register_experiment("drozdzal-skips")
def drozdzal_skips(profile: Profile = "smoke") -> Experiment:
    smoke = profile == "smoke"
    net = {
        "spatial_dims": 2,
        "in_channels": 1,
        "out_channels": 2,
        "stem_channels": 4 if smoke else 16,
        "widths": [4, 8, 16] if smoke else [16, 32, 64, 128],
        "repeats": [1, 1, 1] if smoke else [1, 2, 3, 2],
        "block_types": ["basic"] * 3
        if smoke
        else ["basic", "bottleneck", "bottleneck", "bottleneck"],
    }
    switches = {"both": (True, True), "long": (True, False), "short": (False, True)}
    variants = tuple(
        Variant(
            name,
            ModelConfig("fcresnet", {**net, "long_skips": long, "short_skips": short}),
            LossConfig("cross_entropy"),
        )
        for name, (long, short) in switches.items()
    )
    base = Config(
        data=DataConfig(labels=(0, 1)),
        preprocess=PreprocessConfig(orient=None),  # 2-D images: DICOMOrient is 3-D only
        train=TrainConfig(
            epochs=1 if smoke else 30,
            iterations_per_epoch=2 if smoke else 20,
            batch_size=2 if smoke else 4,
            patch_size=(32, 32) if smoke else (64, 64),
            optimizer=OptimizerConfig(name="adam", lr=1e-3),
            runtime=RuntimeConfig(device="cpu", threads=2, log_grad_norms=True),
        ),
        infer=InferConfig(window=None),
    )
    return Experiment(
        name="drozdzal-skips",
        title="FC-ResNet long / short / both skips (Drozdzal et al. 2016)",
        paper="long and short skips together best on ISBI 2012 EM; short skips keep the "
        "gradient flowing through the deep layers",
        dataset="em-membranes",
        synth={"cases": 3, "test_cases": 2, "size": 128}
        if smoke
        else {"cases": 12, "test_cases": 4},
        base=base,
        variants=variants,
        claims=(
            Claim("long and short skips together beat long skips only", "both", "long"),
            Claim("long and short skips together beat short skips only", "both", "short"),
        ),
        seeds=2 if smoke else 3,
        plots=(plot_grad_norms,),
        notes="Loss: unweighted cross-entropy for all three (the switch is the skips).",
    )
