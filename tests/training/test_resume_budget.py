"""The time budget is per invocation: a run stopped by ``train.stopping.max_minutes`` is extended
with ``volseg train --resume RUN --epochs N --set train.stopping.max_minutes=M``, exactly."""

from __future__ import annotations

import types
from pathlib import Path

import pytest
import torch
import yaml

from volseg.cli import main
from volseg.config import (
    Config,
    DataConfig,
    InferConfig,
    LossConfig,
    ModelConfig,
    OptimizerConfig,
    PreprocessConfig,
    StoppingConfig,
    TrainConfig,
    load_config,
)
from volseg.data.synthetic import write_phantom_dataset
from volseg.training import trainer
from volseg.training.callbacks import CheckpointSaver
from volseg.training.checkpoint import CheckpointError, load_checkpoint, resume_config
from volseg.training.trainer import train

EPOCH_SECONDS = 100.0  # what the fake clock advances per epoch


@pytest.fixture(scope="module")
def phantoms(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_phantom_dataset(tmp_path_factory.mktemp("phantoms"), cases=3, nested=True)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The trainer's clock, advanced by EPOCH_SECONDS after each epoch's budget check (when
    the checkpoint is written), so where a budget binds does not depend on the machine."""
    now = [0.0]
    monkeypatch.setattr(trainer, "time", types.SimpleNamespace(monotonic=lambda: now[0]))
    original = CheckpointSaver.on_epoch_end

    def on_epoch_end(self: CheckpointSaver, state: trainer.TrainState) -> None:
        original(self, state)
        now[0] += EPOCH_SECONDS

    monkeypatch.setattr(CheckpointSaver, "on_epoch_end", on_epoch_end)
    return now


def tiny(root: Path, run_dir: Path, epochs: int, max_minutes: float | None) -> Config:
    # a constant rate: the schedule does not depend on train.epochs, so 3 epochs extended to
    # 4 and 4 straight take the same steps
    return Config(
        data=DataConfig(root=str(root), labels=(0, 1, 2), val_cases=("case02",)),
        preprocess=PreprocessConfig(target_spacing=(1.5, 1.5, 1.5)),
        model=ModelConfig("vnet", {"base_channels": 4, "kernel_size": 3}),
        loss=LossConfig("dice_ce"),
        train=TrainConfig(
            epochs=epochs,
            iterations_per_epoch=2,
            batch_size=2,
            patch_size=(16, 16, 16),
            optimizer=OptimizerConfig("adam", lr=1e-3),
            stopping=StoppingConfig(max_minutes=max_minutes),
        ),
        infer=InferConfig(window=None),
        run_dir=str(run_dir),
    )


def test_a_budget_stopped_run_is_extended_exactly(
    phantoms: Path, tmp_path: Path, clock: list[float], capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "budget"
    # 1 min = 60 s: epoch 1 ends at 0 s, epoch 2 at 100 s > 60 s -> stops after epoch 2 of 3
    first = train(tiny(phantoms, run, epochs=3, max_minutes=1.0), progress=False)
    assert first.epochs == 2
    assert first.stop_reason == "time budget of 1.0 min reached"
    # the whole budget again from the resume (2 min): epochs 3 and 4 end at 0 s and 100 s of
    # this invocation; counted over the run (200 s and 300 s) it would stop at once
    extend = ["--resume", str(run), "--epochs", "4", "--set", "train.stopping.max_minutes=2"]
    code = main(["train", *extend, "-q"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "epochs: 4" in out and "stopped early" not in out
    extended = load_checkpoint(run / "checkpoint_last.pt")
    assert extended.epoch == 4 and extended.trainer.stop_reason is None
    assert extended.run_config().train.stopping.max_minutes == 2.0
    # where the budget did not bind, the weights are those of one uninterrupted run
    straight = train(tiny(phantoms, tmp_path / "straight", epochs=4, max_minutes=None))
    assert straight.epochs == 4
    reference = load_checkpoint(tmp_path / "straight" / "checkpoint_last.pt")
    assert all(torch.equal(extended.model[k], reference.model[k]) for k in reference.model)
    assert extended.trainer.step == reference.trainer.step == 8


def test_resume_refuses_recipe_keys_before_reading_the_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # the run does not even exist: the refusal comes first, and nothing is created
    run = tmp_path / "absent"
    code = main(["train", "--resume", str(run), "--set", "train.optimizer.lr=0.1", "-q"])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err == (
        "volseg: error: --resume: train.optimizer.lr cannot change on resume (it changes the "
        "run's recipe); start a new run " + err.split("start a new run ", 1)[1]
    )
    assert "\n" not in err and not run.exists()


def test_config_copy_may_differ_only_at_resumable_keys(
    phantoms: Path, tmp_path: Path, clock: list[float], capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "run"
    train(tiny(phantoms, run, epochs=1, max_minutes=None), progress=False)
    # `volseg config show RUN` prints the checkpoint's config
    assert main(["config", "show", str(run)]) == 0
    (tmp_path / "shown.yaml").write_text(capsys.readouterr().out, encoding="utf-8")
    assert load_config(tmp_path / "shown.yaml") == resume_config(run)
    copy = run / "config.yaml"
    data = yaml.safe_load(copy.read_text(encoding="utf-8"))
    # a resume with --set rewrites config.yaml before its first epoch is checkpointed
    data["train"]["epochs"] = 9
    data["train"]["stopping"]["max_minutes"] = 5.0
    copy.write_text(yaml.safe_dump(data), encoding="utf-8")
    assert resume_config(run).train.epochs == 1  # the checkpoint's config is the run's
    data["train"]["optimizer"]["lr"] = 0.5
    copy.write_text(yaml.safe_dump(data), encoding="utf-8")
    with pytest.raises(CheckpointError, match=r"train\.optimizer\.lr"):
        resume_config(run)
