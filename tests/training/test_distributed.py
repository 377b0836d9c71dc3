"""DDP with the gloo backend on CPU via torchrun: 2 processes vs 1 with the same global batch."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from volseg._atomic import is_temp
from volseg.cli import main
from volseg.config import (
    Config,
    DataConfig,
    InferConfig,
    ModelConfig,
    OptimizerConfig,
    PreprocessConfig,
    RuntimeConfig,
    ScheduleConfig,
    TrainConfig,
    dump_config,
)
from volseg.data.synthetic import write_phantom_dataset
from volseg.nn.build import build_model
from volseg.training.checkpoint import load_checkpoint
from volseg.training.distributed import torchrun_command
from volseg.training.trainer import train

HERE = Path(__file__).resolve().parent
SRC = HERE.parents[1] / "src"

# 2 processes x batch 1 vs 1 process x batch 2: same samples, same mean loss, gradients summed in
# another order. With SGD (linear in the gradient) the weights then agree to float32 rounding:
# the largest weight difference must stay below 1e-4 of the largest weight change of training.
# (With Adam, g / sqrt(v) amplifies rounding on near-zero gradients: about 1e-4 absolute.)
TOLERANCE = 1e-4


def config(root: Path, run_dir: Path, batch_size: int) -> Config:
    return Config(
        data=DataConfig(root=str(root), labels=(0, 1, 2), val_cases=("case02",)),
        preprocess=PreprocessConfig(target_spacing=(1.5, 1.5, 1.5)),
        model=ModelConfig("vnet", {"base_channels": 4, "kernel_size": 3}),
        train=TrainConfig(
            epochs=2,
            iterations_per_epoch=2,
            batch_size=batch_size,
            patch_size=(16, 16, 16),
            optimizer=OptimizerConfig("sgd", lr=0.01, momentum=0.9),
            schedule=ScheduleConfig("poly"),
            runtime=RuntimeConfig(threads=1),
        ),
        infer=InferConfig(window=None),
        run_dir=str(run_dir),
    )


def _torchrun_worker(
    cfg: Config, config_path: Path, out: Path, fail_epoch: int | None = None
) -> subprocess.CompletedProcess[str]:
    """``ddp_worker.py`` in 2 gloo processes under torchrun (rank 1 raises after
    ``fail_epoch`` when given); torchrun's output decoded as UTF-8 whatever the locale."""
    dump_config(cfg, config_path)
    out.mkdir()
    env = {**os.environ, "PYTHONPATH": str(SRC), "OMP_NUM_THREADS": "1"}
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        str(HERE / "ddp_worker.py"),
        str(config_path),
        str(out),
        *([str(fail_epoch)] if fail_epoch is not None else []),
    ]
    return subprocess.run(
        cmd, env=env, capture_output=True, encoding="utf-8", errors="replace", timeout=300
    )


def test_two_gloo_processes_match_one_process(tmp_path: Path) -> None:
    root = write_phantom_dataset(tmp_path / "data", cases=3, nested=True)
    ddp_config = config(root, tmp_path / "ddp", batch_size=1)
    out = tmp_path / "weights"
    done = _torchrun_worker(ddp_config, tmp_path / "ddp.yaml", out)
    assert done.returncode == 0, done.stderr[-3000:]
    rank0 = torch.load(out / "rank0.pt", weights_only=True)
    rank1 = torch.load(out / "rank1.pt", weights_only=True)
    assert all(torch.equal(rank0[k], rank1[k]) for k in rank0)  # DDP keeps ranks in lockstep
    # rank 0 alone wrote the run directory
    checkpoint = load_checkpoint(tmp_path / "ddp" / "checkpoint_last.pt")
    assert checkpoint.epoch == 2 and checkpoint.trainer.step == 4
    assert all(torch.equal(checkpoint.model[k], rank0[k]) for k in rank0)

    single_config = config(root, tmp_path / "single", batch_size=2)
    torch.manual_seed(single_config.train.seed)  # the initial weights, as train() draws them
    start = {
        k: v.detach().clone() for k, v in build_model(single_config, 1, 3).state_dict().items()
    }
    single = train(single_config, progress=False)
    assert single.epochs == 2
    reference = load_checkpoint(tmp_path / "single" / "checkpoint_last.pt").model
    worst = max(float((rank0[k].float() - reference[k].float()).abs().max()) for k in rank0)
    change = max(float((reference[k].float() - start[k].float()).abs().max()) for k in start)
    print(f"largest weight difference {worst:.3g}, largest weight change {change:.3g}")
    assert change > 1e-3 and worst < TOLERANCE * change
    # the all-reduced validation Dice equals the single process's (one validation case)
    assert checkpoint.metrics["val_dice"] == pytest.approx(
        load_checkpoint(tmp_path / "single" / "checkpoint_last.pt").metrics["val_dice"], abs=1e-3
    )


def test_nproc_wraps_torchrun(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    calls: list[list[str]] = []

    def fake_run(cmd: list[str], check: bool = False) -> subprocess.CompletedProcess[str]:
        calls.append(cmd)
        return subprocess.CompletedProcess(cmd, 0)

    monkeypatch.delenv("RANK", raising=False)
    monkeypatch.setattr(subprocess, "run", fake_run)
    assert main(["train", "cfg.yaml", "--nproc", "2", "--epochs", "7", "-q"]) == 0
    assert calls == [torchrun_command(2, ["train", "cfg.yaml", "--epochs", "7", "-q"])]
    assert calls[0][1:6] == [
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        "-m",
    ]
    with pytest.raises(ValueError, match="--nproc must be >= 1"):
        torchrun_command(0, [])


def test_resume_and_config_together_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "a.yaml", "--resume", "run"]) == 2
    assert "either CONFIG or --resume RUN_DIR" in capsys.readouterr().err


def test_a_failing_rank_stops_every_rank_and_keeps_the_last_checkpoint(tmp_path: Path) -> None:
    """Rank 1 raises after epoch 2 of 4: torchrun exits non-zero promptly (rank 0, waiting in a
    collective, is stopped rather than hanging until the 10-minute timeout), and the checkpoint
    rank 0 wrote is whole and loadable (atomic writes)."""
    root = write_phantom_dataset(tmp_path / "data", cases=3, nested=True)
    cfg = config(root, tmp_path / "ddp", batch_size=1)
    cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, epochs=4))
    start = time.monotonic()
    done = _torchrun_worker(cfg, tmp_path / "ddp.yaml", tmp_path / "weights", fail_epoch=2)
    seconds = time.monotonic() - start
    assert done.returncode != 0
    assert "rank 1 fails on purpose" in done.stderr
    assert seconds < 120, f"ranks took {seconds:.0f} s to stop"
    checkpoint = load_checkpoint(tmp_path / "ddp" / "checkpoint_last.pt")
    assert 1 <= checkpoint.epoch <= 3
    assert not [p for p in (tmp_path / "ddp").rglob("*") if is_temp(p)]
