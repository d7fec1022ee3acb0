"""Stop (or skip the batch) on a non-finite loss, before it reaches the weights.

The check runs on the loss before backward, and a skipped batch has its gradients
dropped before the optimiser step. A finite loss can still take the weights to NaN or
make the model diverge (a huge learning rate), so before every validation, the point
where checkpoints are written, the weights and the validation numbers are checked too:
if either is not finite the run stops before a checkpoint holds them. Lightning writes
no checkpoint when a run stops with an error, so the last good checkpoint stays the
newest one. A run whose every step was skipped trained nothing and fails.
"""

from __future__ import annotations

import logging
import math
from typing import Any, Literal, cast

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from typing_extensions import override

from vaelab.config.constraints import NonNegativeInt
from vaelab.errors import VaelabError

log = logging.getLogger(__name__)


class NonFiniteLossError(VaelabError):
    """Training produced a NaN or infinite loss."""


class NonFiniteGuard(L.Callback):
    """`action='stop'`: raise a one-line error naming the step and the last good
    checkpoint. `action='skip'`: drop that batch's update; stop after `max_skips`."""

    def __init__(
        self, action: Literal["stop", "skip"] = "stop", max_skips: NonNegativeInt = 10
    ) -> None:
        self.action = action
        self.max_skips = max_skips
        self.skipped = 0
        self.stepped = 0
        self._skip_step = False

    @override
    def on_before_backward(
        self, trainer: L.Trainer, pl_module: L.LightningModule, loss: torch.Tensor
    ) -> None:
        # One scalar check per step, on the Python float: `torch.isfinite` would build a
        # tensor first (a measurable cost per step on a CPU). Checking every gradient
        # tensor instead costs a large share of a small model's step.
        value = loss.detach().item()
        if math.isfinite(value):
            return
        if self.action == "skip" and (self._skip_step or self.skipped < self.max_skips):
            # One skip per optimiser step, however many accumulated batches it drops.
            if not self._skip_step:
                self.skipped += 1
                self._skip_step = True
            return
        raise NonFiniteLossError(
            f"loss {value} at step {trainer.global_step} (epoch {trainer.current_epoch}); "
            f"last good checkpoint: {last_checkpoint(trainer) or 'none written yet'}; lower the "
            "learning rate, clip gradients (trainer.gradient_clip_val=1) or set "
            "callbacks.nonfinite_guard.action=skip"
        )

    @override
    def on_validation_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking or (not trainer.training and trainer.state.fn != "fit"):
            return
        bad = next((n for n, p in pl_module.named_parameters() if not p.isfinite().all()), None)
        if bad is not None:
            self._diverged(trainer, f"weights ({bad}) are not finite")

    @override
    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # Before ModelCheckpoint, which Lightning runs after every other callback.
        if trainer.sanity_checking or trainer.state.fn != "fit":
            return
        for key, value in trainer.callback_metrics.items():
            if key.startswith("val/") and not math.isfinite(float(value)):
                self._diverged(trainer, f"{key} is {float(value)}")

    @override
    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.skipped and not self.stepped:
            raise NonFiniteLossError(
                f"every one of the {self.skipped} training steps had a non-finite loss and "
                "was skipped: nothing was trained; lower the learning rate or check the data"
            )
        if self.skipped:
            log.warning(
                "skipped %d of %d training steps for a non-finite loss (metrics.json: "
                "skipped_steps)",
                self.skipped,
                self.skipped + self.stepped,
            )

    def _diverged(self, trainer: L.Trainer, what: str) -> None:
        raise NonFiniteLossError(
            f"{what} after step {trainer.global_step} (epoch {trainer.current_epoch}): the "
            f"model diverged; last good checkpoint: "
            f"{last_checkpoint(trainer) or 'none written yet'}; lower the learning rate or "
            "clip gradients (trainer.gradient_clip_val=1)"
        )

    @override
    def state_dict(self) -> dict[str, int]:
        return {"skipped": self.skipped, "stepped": self.stepped}

    @override
    def load_state_dict(self, state_dict: dict[str, int]) -> None:
        self.skipped = int(state_dict.get("skipped", 0))
        self.stepped = int(state_dict.get("stepped", 0))

    @override
    def on_before_optimizer_step(
        self, trainer: L.Trainer, pl_module: L.LightningModule, optimizer: torch.optim.Optimizer
    ) -> None:
        # Per optimiser step (after 1, or n accumulated, batches); with an objective's own
        # optimiser (FactorVAE) the step ends with the last of the trainer's optimisers.
        optimizers = trainer.optimizers
        if self._skip_step:
            for group in optimizer.param_groups:
                for param in group["params"]:
                    param.grad = None  # the optimiser skips parameters without a gradient
        elif optimizer is optimizers[0]:
            self.stepped += 1
        if optimizer is optimizers[-1]:
            self._skip_step = False


def last_checkpoint(trainer: L.Trainer) -> str | None:
    # set by Lightning's callback connector; Trainer does not declare it
    callbacks: list[Callback] = cast(Any, trainer).callbacks
    for callback in callbacks:
        if isinstance(callback, ModelCheckpoint):
            return callback.last_model_path or callback.best_model_path or None
    return None
