"""Residual volumetric network with vs without residual units (Yu, Heng et al., ISLES).

Claim: residual learning makes the volumetric net converge faster and to a better Dice. Here
on ``brain-structures``; the variants differ only in ``model.kwargs.residual`` (``resvolnet``
keeps its convolutions, norms and summed long skips either way; only the identity skips inside
the units go). ``val_dice_curve.png`` draws each variant's validation Dice against epochs
(mean over seeds, from each run's ``log.csv``); ``summary.md`` adds the last epoch's and the
mean-over-epochs validation Dice (a convergence-speed summary). Loss: ``dice_ce`` for both (the
paper's loss is not in the text we have).

Sizes:

* ``smoke``: data at 3 mm, 3 training + 2 held-out; channels 4-8, one unit per level, 16^3
  patches, batch 1, 2 epochs of 2 iterations, 2 seeds.
* ``full``: data at 2 mm, 12 training + 4 held-out; channels 8-16-32-64, 1 unit per level,
  32^3 patches, batch 2, Adam lr 1e-3, 30 epochs of 20 iterations, 3 seeds.
"""

from __future__ import annotations

from volseg.config import (
    Config,
    DataConfig,
    InferConfig,
    LossConfig,
    ModelConfig,
    OptimizerConfig,
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
from volseg.experiments.plots import plot_curves


@register_experiment("yu-heng-residual")
def yu_heng_residual(profile: Profile = "smoke") -> Experiment:
    smoke = profile == "smoke"
    patch = (16, 16, 16) if smoke else (32, 32, 32)
    net = {
        "in_channels": 1,
        "out_channels": 5,
        "channels": [4, 8] if smoke else [8, 16, 32, 64],
        "units": 1,
    }
    base = Config(
        data=DataConfig(labels=(0, 1, 2, 3, 4)),
        train=TrainConfig(
            epochs=2 if smoke else 30,
            iterations_per_epoch=2 if smoke else 20,
            batch_size=1 if smoke else 2,
            patch_size=patch,
            optimizer=OptimizerConfig(name="adam", lr=1e-3),
            runtime=RuntimeConfig(device="cpu", threads=2),
        ),
        infer=InferConfig(window=patch if smoke else (48, 48, 48), overlap=0.25),
    )
    return Experiment(
        name="yu-heng-residual",
        title="Residual volumetric net with vs without residual units (Yu, Heng et al.)",
        paper="residual learning converges faster and to a better Dice (no figure in our text)",
        dataset="brain-structures",
        synth={"cases": 3, "test_cases": 2, "spacing": 3.0}
        if smoke
        else {"cases": 12, "test_cases": 4},
        base=base,
        variants=(
            Variant(
                "residual",
                ModelConfig("resvolnet", {**net, "residual": True}),
                LossConfig("dice_ce"),
            ),
            Variant(
                "plain", ModelConfig("resvolnet", {**net, "residual": False}), LossConfig("dice_ce")
            ),
        ),
        claims=(
            Claim(
                "residual units converge faster (higher validation Dice over the epochs)",
                "residual",
                "plain",
                "mean:val_dice",
            ),
            Claim("residual units converge to a better held-out Dice", "residual", "plain"),
        ),
        seeds=2 if smoke else 3,
        plots=(plot_curves(("val_dice",), "val_dice_curve.png", "validation Dice"),),
        curves=("val_dice",),
        notes="Dice is the mean over the four labels.",
    )
