"""Hooks into the training loop: the built-in checkpoint writer and logger, and your own."""

from __future__ import annotations

from volseg.training.checkpoint import save_checkpoint
from volseg.training.run_log import GradNormTracker, RunLog
from volseg.training.state import TrainState

__all__ = ["Callback", "CheckpointSaver", "LogWriter"]


class Callback:
    """Hooks into the loop; override any. Called on every rank (check ``state.dist.is_main``)."""

    def on_train_start(self, state: TrainState) -> None:
        """After setup (and after loading the checkpoint when resuming)."""

    def on_after_backward(self, state: TrainState) -> None:
        """Gradients are ready and unscaled, before clipping and the optimiser step."""

    def on_epoch_end(self, state: TrainState) -> None:
        """``state.metrics`` holds the epoch's scalars; ``state.trainer.stop_reason`` may be set."""

    def on_train_end(self, state: TrainState) -> None:
        """Always called, also when training fails."""


class CheckpointSaver(Callback):
    """Rank 0 writes ``checkpoint_last.pt`` every epoch and ``checkpoint_best.pt`` on a
    validation gain (a run without validation cases has no best: its model is the last)."""

    def on_epoch_end(self, state: TrainState) -> None:
        if not state.dist.is_main:
            return
        checkpoint = state.checkpoint()
        save_checkpoint(checkpoint, state.run_dir / "checkpoint_last.pt")
        if state.improved:
            save_checkpoint(checkpoint, state.run_dir / "checkpoint_best.pt")


class LogWriter(Callback):
    """Rank 0 writes ``log.csv``, TensorBoard events, curves and (optionally) gradient norms."""

    def __init__(self, grad_norms: bool = False) -> None:
        self.grad_norms = grad_norms
        self.log: RunLog | None = None
        self.tracker: GradNormTracker | None = None

    def on_train_start(self, state: TrainState) -> None:
        if not state.dist.is_main:
            return
        self.log = RunLog(state.run_dir, resume_epoch=state.epoch)
        if self.grad_norms:
            self.tracker = GradNormTracker(state.run_dir, state.epoch, self.log.writer)

    def on_after_backward(self, state: TrainState) -> None:
        if self.tracker is not None:
            self.tracker.accumulate(state.model)

    def on_epoch_end(self, state: TrainState) -> None:
        if self.log is not None:
            self.log.log_epoch(state.epoch, state.metrics)
        if self.tracker is not None:
            self.tracker.finish_epoch(state.epoch)

    def on_train_end(self, state: TrainState) -> None:
        if self.log is not None:
            self.log.close()
